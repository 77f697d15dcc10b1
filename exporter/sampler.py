"""The clock of the exporter: ticks every `interval` on a fixed monotonic schedule (tick k is due at
start + k × interval, so errors never accumulate), reads the devices through a DeviceReader (one thread for all of
them, a fresh one when a read hangs, so one hung or failing GPU never stalls the others), and publishes each tick to
the store as one snapshot. A listener that fails (a recorder on a full disk) never stops the ticks."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from llm_dvfs.exporter.backends.base import Backend, DeviceError, DeviceReadError, GpuSample
from llm_dvfs.common.buckets import BucketCounts
from llm_dvfs.exporter.device_reader import DeviceReader
from llm_dvfs.exporter.store import Histogram, Snapshot, Store, frozen_histogram

TICK_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# Tick start lateness: resolves 0.1 ms (a quiet machine) up to 1 s (a stalled one).
LATENESS_BUCKETS: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                       0.5, 1.0)
LATE_FRACTION = 0.2  # a tick starting later than 20% of the interval after its due time is "late"


@dataclass(frozen=True)
class SamplerStats:
    """Self-metrics, copied out under a lock for each scrape."""

    ticks: int
    late_ticks: int
    missed_ticks: int
    tick_duration: Histogram
    tick_lateness: Histogram
    read_errors: dict[tuple[int, str], int]  # (device index, kind) -> count


class Sampler:
    """Drives the backend; `tick()` can be called directly (tests), `start()` runs the schedule in a thread."""

    def __init__(self, backend: Backend, store: Store, interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.backend, self.store, self.interval = backend, store, interval
        self._clock, self._wall = clock, wall
        self._indices = [d.index for d in store.devices]
        self._reader = DeviceReader(self._read, backend.read_budget * interval, clock)
        self._failed_listeners: set[int] = set()
        self._listeners: list[Callable[[Snapshot], None]] = []
        self._lock = threading.Lock()
        self._ticks = self._late = self._missed = 0
        self._durations = BucketCounts(TICK_BUCKETS)
        self._late_counts = BucketCounts(LATENESS_BUCKETS)
        self._errors: dict[tuple[int, str], int] = {}
        self._lateness: list[float] = []  # seconds each tick started after its due time (for benchmarks)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def subscribe(self, listener: Callable[[Snapshot], None]) -> None:
        """Call `listener(snapshot)` after every tick (the recorder writes its rows this way)."""
        self._listeners.append(listener)

    def _read(self, index: int) -> GpuSample | DeviceError:
        """One device's sample, or the error that replaces it."""
        try:
            return self.backend.read(index)
        except DeviceError as exc:
            return exc
        except Exception as exc:  # a backend bug must not kill the sampler: count it as a failed read
            return DeviceReadError(f"{type(exc).__name__}: {exc}")

    def tick(self, deadline: float | None = None) -> Snapshot:
        """Read every device (until `deadline` on the monotonic clock at most) and publish."""
        started = self._clock()
        wall_time = self._wall()
        results, timed_out = self._reader.read_all(self._indices, deadline)
        errors: list[tuple[int, str]] = []
        for index, result in results.items():
            if isinstance(result, GpuSample):
                if result.failed_fields:
                    errors += [(index, name) for name in result.failed_fields]
            else:
                errors.append((index, "timeout" if index in timed_out else result.kind))
        with self._lock:
            self._ticks += 1
            tick_number = self._ticks
            for key in errors:
                self._errors[key] = self._errors.get(key, 0) + 1
        snapshot = self.store.update(tick_number, wall_time, results)
        for number, listener in enumerate(self._listeners):
            self._notify(number, listener, snapshot)
        duration = self._clock() - started
        with self._lock:
            self._durations.observe(duration)
        return snapshot

    def _notify(self, number: int, listener: Callable[[Snapshot], None], snapshot: Snapshot) -> None:
        """A listener's bug must not stop sampling: say so once on stderr and keep ticking."""
        try:
            listener(snapshot)
        except Exception as exc:
            if number not in self._failed_listeners:
                self._failed_listeners.add(number)
                print(f"llm-dvfs exporter: {listener!r} failed ({type(exc).__name__}: {exc}); sampling goes on",
                      file=sys.stderr, flush=True)

    def run(self, stop: threading.Event | None = None) -> None:
        """Tick on schedule until stopped; skipped slots count as missed, starts later than
        LATE_FRACTION × interval count as late."""
        stop = stop or self._stop
        start = self._clock()
        k = 0
        while not stop.is_set():
            due = start + k * self.interval
            now = self._clock()
            if now < due:
                if stop.wait(due - now):
                    break
                now = self._clock()
            lateness = now - due
            with self._lock:
                self._lateness.append(lateness)
                if len(self._lateness) > 100_000:
                    del self._lateness[:50_000]
                self._late_counts.observe(lateness)
                if lateness > LATE_FRACTION * self.interval:
                    self._late += 1
            self.tick(deadline=due + 0.9 * self.interval)
            behind = int((self._clock() - due) // self.interval)  # slots that passed while this tick ran
            if behind > 0:
                with self._lock:
                    self._missed += behind
            k += 1 + max(0, behind)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="exporter-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._reader.close()

    def stats(self) -> SamplerStats:
        with self._lock:
            return SamplerStats(self._ticks, self._late, self._missed,
                                frozen_histogram(self._durations), frozen_histogram(self._late_counts),
                                dict(self._errors))

    @property
    def reader_threads_started(self) -> int:
        """Reading threads started so far: 1, plus one for every read given up on as hung."""
        return self._reader.threads_started

    def lateness(self) -> list[float]:
        """Start lateness of every scheduled tick so far, seconds (benchmarks compute jitter from it)."""
        with self._lock:
            return list(self._lateness)
