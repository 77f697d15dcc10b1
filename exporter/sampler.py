"""The clock of the exporter: ticks every `interval` on a fixed monotonic schedule (tick k is due at
start + k × interval, so errors never accumulate), reads every device in its own worker so one hung or failing
GPU never stalls the others, and publishes each tick to the store as one snapshot."""

from __future__ import annotations

import bisect
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable

from llm_dvfs.exporter.backends.base import Backend, DeviceError, DeviceReadError, GpuSample
from llm_dvfs.exporter.store import Histogram, Snapshot, Store

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
        indices = [d.index for d in store.devices]
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(indices)), thread_name_prefix="exporter-read")
        self._pending: dict[int, Future] = {}
        self._listeners: list[Callable[[Snapshot], None]] = []
        self._lock = threading.Lock()
        self._ticks = self._late = self._missed = 0
        self._durations = [0] * (len(TICK_BUCKETS) + 1)
        self._duration_sum = 0.0
        self._late_counts = [0] * (len(LATENESS_BUCKETS) + 1)
        self._late_sum = 0.0
        self._errors: dict[tuple[int, str], int] = {}
        self._lateness: list[float] = []  # seconds each tick started after its due time (for benchmarks)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def subscribe(self, listener: Callable[[Snapshot], None]) -> None:
        """Call `listener(snapshot)` after every tick (the recorder writes its rows this way)."""
        self._listeners.append(listener)

    def _read(self, index: int) -> GpuSample:
        try:
            return self.backend.read(index)
        except DeviceError:
            raise
        except Exception as exc:  # a backend bug must not kill the sampler: count it as a failed read
            raise DeviceReadError(f"{type(exc).__name__}: {exc}") from exc

    def tick(self, deadline: float | None = None) -> Snapshot:
        """Read every device (waiting until `deadline` on the monotonic clock at most) and publish."""
        started = self._clock()
        wall_time = self._wall()
        futures: dict[int, Future] = {}
        results: dict[int, GpuSample | DeviceError] = {}
        for info in self.store.devices:
            pending = self._pending.get(info.index)
            if pending is not None and not pending.done():
                results[info.index] = DeviceReadError(f"GPU {info.index}: previous read still running")
                continue
            futures[info.index] = self._pool.submit(self._read, info.index)
        timeout = None if deadline is None else max(0.0, deadline - self._clock())
        wait(list(futures.values()), timeout=timeout)
        errors: list[tuple[int, str]] = []
        for index, future in futures.items():
            if not future.done():
                self._pending[index] = future
                results[index] = DeviceReadError(f"GPU {index}: read took longer than the tick")
                continue
            self._pending.pop(index, None)
            exc = future.exception()
            if exc is None:
                sample = future.result()
                results[index] = sample
                errors += [(index, name) for name in sample.failed_fields]
            else:
                results[index] = exc if isinstance(exc, DeviceError) else DeviceReadError(str(exc))
        for index, result in results.items():
            if isinstance(result, DeviceError):
                errors.append((index, "timeout" if index in self._pending else result.kind))
        with self._lock:
            self._ticks += 1
            tick_number = self._ticks
            for key in errors:
                self._errors[key] = self._errors.get(key, 0) + 1
        snapshot = self.store.update(tick_number, wall_time, results)
        for listener in self._listeners:
            listener(snapshot)
        duration = self._clock() - started
        with self._lock:
            self._durations[bisect.bisect_left(TICK_BUCKETS, duration)] += 1
            self._duration_sum += duration
        return snapshot

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
                self._late_counts[bisect.bisect_left(LATENESS_BUCKETS, lateness)] += 1
                self._late_sum += lateness
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
        self._pool.shutdown(wait=False, cancel_futures=True)

    def stats(self) -> SamplerStats:
        with self._lock:
            return SamplerStats(self._ticks, self._late, self._missed,
                                _histogram(TICK_BUCKETS, self._durations, self._duration_sum),
                                _histogram(LATENESS_BUCKETS, self._late_counts, self._late_sum),
                                dict(self._errors))

    def lateness(self) -> list[float]:
        """Start lateness of every scheduled tick so far, seconds (benchmarks compute jitter from it)."""
        with self._lock:
            return list(self._lateness)


def _histogram(bounds: tuple[float, ...], counts: list[int], total: float) -> Histogram:
    """Per-bucket counts made cumulative, as Prometheus wants them."""
    cumulative, running = [], 0
    for c in counts:
        running += c
        cumulative.append(running)
    return Histogram(bounds, tuple(cumulative), total, running)
