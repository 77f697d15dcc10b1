"""The clock of the exporter: ticks every `interval` on a fixed monotonic schedule (tick k is due at
start + k × interval, so errors never accumulate), reads every device in turn in the ticking thread and publishes
each tick to the store as one snapshot. A listener that fails (a recorder on a full disk) never stops the ticks.

One hung GPU stalls no other: each read is armed on a hang timer (exporter/hang_timer.py). When a read outlasts its
share of the tick, the watchdog thread blocked on that timer gives up on the ticking thread (left alone inside
the hung call), marks the device as still being read, and starts a fresh ticking thread that finishes the tick
with the other devices and keeps the schedule. The device is skipped until its call returns. A healthy tick costs
one thread wake-up (issue 16: handing each tick to a reader thread and back cost two more, ~0.3% of a core)."""

from __future__ import annotations

import sys
import threading
import time
from array import array
from dataclasses import dataclass, field
from typing import Callable

from llm_dvfs.common.buckets import BucketCounts
from llm_dvfs.exporter.backends.base import Backend, DeviceError, DeviceReadError, GpuSample
from llm_dvfs.exporter.hang_timer import HangTimer, PollingTimer, hang_timer
from llm_dvfs.exporter.store import Histogram, Snapshot, Store, frozen_histogram

TICK_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# Tick start lateness: resolves 0.1 ms (a quiet machine) up to 1 s (a stalled one).
LATENESS_BUCKETS: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                       0.5, 1.0)
LATE_FRACTION = 0.2  # a tick starting later than 20% of the interval after its due time is "late"
KEEP_TIMINGS = 100_000  # per-tick lateness and duration kept for benchmarks (then the older half is dropped)

Result = GpuSample | DeviceError


@dataclass(frozen=True)
class SamplerStats:
    """Self-metrics, copied out under a lock for each scrape."""

    ticks: int
    late_ticks: int
    missed_ticks: int
    tick_duration: Histogram
    tick_lateness: Histogram
    read_errors: dict[tuple[int, str], int]  # (device index, kind) -> count


@dataclass
class _Tick:
    """One tick's reads, shared with the thread that takes the tick over when a read hangs."""

    started: float
    wall_time: float
    due: float  # the slot's time on the schedule (the start, for a tick called directly)
    deadline: float
    todo: list[int]
    results: dict[int, Result] = field(default_factory=dict)
    timed_out: set[int] = field(default_factory=set)


@dataclass
class _Reading:
    """The read in progress: by which ticking thread (its generation), of which device and tick, since when."""

    generation: int
    tick: _Tick
    index: int
    started: float
    deadline: float


def _append_bounded(values: array, value: float) -> None:
    values.append(value)
    if len(values) > KEEP_TIMINGS:
        del values[:KEEP_TIMINGS // 2]


class Sampler:
    """Drives the backend; `tick()` reads once in the calling thread (tests), `start()` runs the guarded
    schedule in a thread."""

    def __init__(self, backend: Backend, store: Store, interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.backend, self.store, self.interval = backend, store, interval
        self._clock, self._wall = clock, wall
        self._indices = [d.index for d in store.devices]
        self._read_timeout = backend.read_budget * interval
        self._failed_listeners: set[int] = set()
        self._listeners: list[Callable[[Snapshot], None]] = []
        self._lock = threading.Lock()  # statistics
        self._ticks = self._late = self._missed = 0
        self._durations = BucketCounts(TICK_BUCKETS)
        self._late_counts = BucketCounts(LATENESS_BUCKETS)
        self._errors: dict[tuple[int, str], int] = {}
        # per scheduled tick, for benchmarks (flat arrays: 8 bytes a tick, bounded)
        self._lateness = array("d")  # seconds each tick started after its due time
        self._tick_seconds = array("d")  # how long each tick took
        # the guarded schedule: which ticking thread is current, the read it is in, devices stuck in a read
        self._guard = threading.Lock()
        self._generation = 0
        self._reading: _Reading | None = None
        self._ticking = False  # a guarded tick is reading (its timer armed)
        self._stuck: set[int] = set()
        self._threads_started = 0
        self._schedule_start = 0.0
        self._slot = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._timer: HangTimer = PollingTimer(1.0)  # replaced by start(); only the guarded schedule uses it
        self._watchdog: threading.Thread | None = None  # started with the schedule, ended by stop()

    def subscribe(self, listener: Callable[[Snapshot], None]) -> None:
        """Call `listener(snapshot)` after every tick (the recorder writes its rows this way)."""
        self._listeners.append(listener)

    def _read(self, index: int) -> Result:
        """One device's sample, or the error that replaces it."""
        try:
            return self.backend.read(index)
        except DeviceError as exc:
            return exc
        except Exception as exc:  # a backend bug must not kill the sampler: count it as a failed read
            return DeviceReadError(f"{type(exc).__name__}: {exc}")

    def tick(self, deadline: float | None = None) -> Snapshot:
        """Read every device once in this thread (no hang guard: a hung read blocks the caller) and publish."""
        now = self._clock()
        tick = self._new_tick(now, float("inf") if deadline is None else deadline)
        self._work(tick, generation=None)
        return self._publish(tick)

    def _new_tick(self, due: float, deadline: float) -> _Tick:
        return _Tick(started=self._clock(), wall_time=self._wall(), due=due, deadline=deadline,
                     todo=list(self._indices))

    def _work(self, tick: _Tick, generation: int | None) -> bool:
        """Read the tick's remaining devices in order; False when this (guarded) thread was given up on."""
        armed = False
        while tick.todo:
            index = tick.todo.pop(0)
            now = self._clock()
            if index in self._stuck:
                tick.results[index] = DeviceReadError(f"GPU {index}: previous read still running")
                tick.timed_out.add(index)
                continue
            if now >= tick.deadline:
                tick.results[index] = DeviceReadError(f"GPU {index}: not read before the tick's deadline")
                tick.timed_out.add(index)
                continue
            if generation is None:
                tick.results[index] = self._read(index)
                continue
            limit = min(now + self._read_timeout, tick.deadline)
            with self._guard:
                if generation != self._generation:
                    return False
                self._reading = _Reading(generation, tick, index, now, limit)
                self._ticking = True
            if not armed:  # once a tick: a later read's own deadline is checked (and re-armed) by the watchdog
                self._timer.arm(limit - now)
                armed = True
            result = self._read(index)
            with self._guard:
                if generation != self._generation:  # given up on while in this read: the tick went on without it
                    self._stuck.discard(index)
                    return False
                self._reading = None
            tick.results[index] = result
        if armed:
            with self._guard:
                self._ticking = False
            self._timer.disarm()
        return True

    def _publish(self, tick: _Tick, scheduled: bool = False) -> Snapshot:
        errors: list[tuple[int, str]] = []
        for index, result in tick.results.items():
            if isinstance(result, GpuSample):
                errors += [(index, name) for name in result.failed_fields]
            else:
                errors.append((index, "timeout" if index in tick.timed_out else result.kind))
        with self._lock:
            self._ticks += 1
            tick_number = self._ticks
            for key in errors:
                self._errors[key] = self._errors.get(key, 0) + 1
        snapshot = self.store.update(tick_number, tick.wall_time, tick.results)
        for number, listener in enumerate(self._listeners):
            self._notify(number, listener, snapshot)
        duration = self._clock() - tick.started
        with self._lock:
            self._durations.observe(duration)
            if scheduled:
                _append_bounded(self._tick_seconds, duration)
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

    # -- the guarded schedule -------------------------------------------------------------------------------
    def _run(self, generation: int, taken_over: _Tick | None) -> None:
        """Tick on schedule until stopped or given up on; skipped slots count as missed, starts later than
        LATE_FRACTION × interval count as late. `taken_over`: a tick left half-read by a hung thread."""
        if taken_over is not None:
            if not self._work(taken_over, generation):
                return
            self._publish(taken_over, scheduled=True)
            self._next_slot(taken_over)
        while not self._stop.is_set():
            due = self._schedule_start + self._slot * self.interval
            now = self._clock()
            if now < due:
                if self._stop.wait(due - now):
                    break
                now = self._clock()
            lateness = now - due
            with self._lock:
                _append_bounded(self._lateness, lateness)
                self._late_counts.observe(lateness)
                if lateness > LATE_FRACTION * self.interval:
                    self._late += 1
            tick = self._new_tick(due, due + 0.9 * self.interval)
            if not self._work(tick, generation):
                return
            self._publish(tick, scheduled=True)
            self._next_slot(tick)

    def _next_slot(self, tick: _Tick) -> None:
        behind = int((self._clock() - tick.due) // self.interval)  # slots that passed while this tick ran
        if behind > 0:
            with self._lock:
                self._missed += behind
        self._slot += 1 + max(0, behind)

    def _spawn(self, generation: int, taken_over: _Tick | None) -> None:
        self._threads_started += 1
        self._thread = threading.Thread(target=self._run, args=(generation, taken_over),
                                        name=f"exporter-sampler-{self._threads_started}", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        """Wakes only when a read's timer runs out: gives up on the thread in that read, starts a fresh one."""
        while self._timer.wait():
            with self._guard:
                reading = self._reading
                if reading is None or reading.generation != self._generation:
                    if self._ticking:  # between two reads of a tick: the next one must still be watched
                        self._timer.arm(self._read_timeout)
                    continue
                now = self._clock()
                if now < reading.deadline:  # the tick's timer ran out in a later read: check it at its own deadline
                    self._timer.arm(reading.deadline - now)
                    continue
                self._generation += 1
                self._reading = None
                self._stuck.add(reading.index)
                tick = reading.tick
                tick.results[reading.index] = DeviceReadError(
                    f"GPU {reading.index}: read took longer than {reading.deadline - reading.started:.3g} s")
                tick.timed_out.add(reading.index)
                self._spawn(self._generation, tick)

    def start(self) -> None:
        self._stop.clear()
        self._schedule_start, self._slot = self._clock(), 0
        if self._watchdog is None:
            self._timer = hang_timer(resolution=max(0.001, self._read_timeout / 4))
            self._watchdog = threading.Thread(target=self._watch, name="exporter-watchdog", daemon=True)
            self._watchdog.start()
        with self._guard:
            self._spawn(self._generation, None)

    def stop(self) -> None:
        self._stop.set()
        while True:  # the current thread may be replaced while it stops (a hung read): join whichever is current
            with self._guard:
                thread = self._thread
            if thread is None:
                break
            thread.join(timeout=self.interval)
            with self._guard:
                if self._thread is thread and not thread.is_alive():
                    self._thread = None
        if self._watchdog is not None:
            self._timer.close()
            self._watchdog.join(timeout=1.0)
            self._watchdog = None

    def stats(self) -> SamplerStats:
        with self._lock:
            return SamplerStats(self._ticks, self._late, self._missed,
                                frozen_histogram(self._durations), frozen_histogram(self._late_counts),
                                dict(self._errors))

    @property
    def reader_threads_started(self) -> int:
        """Ticking threads started so far: 1, plus one for every read given up on as hung."""
        return self._threads_started

    def lateness(self) -> list[float]:
        """Start lateness of every scheduled tick so far, seconds (benchmarks compute jitter from it)."""
        with self._lock:
            return list(self._lateness)

    def tick_durations(self) -> list[float]:
        """How long every scheduled tick so far took, seconds (benchmarks)."""
        with self._lock:
            return list(self._tick_seconds)
