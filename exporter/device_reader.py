"""Reads the devices of one tick in one thread, one after another, with a deadline per read.

One thread for all GPUs costs one hand-off per tick instead of one per GPU (issue 16). The guarantee of one thread
per GPU is kept where it matters: when a read runs past its deadline, the reader that is stuck in it is given up
on and a fresh reader takes the rest of the tick's devices, so one hung GPU stalls no other. The stuck thread is
left to finish (or hang) alone; its device is skipped until that call returns, and then the thread ends.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Callable

from llm_dvfs.exporter.backends.base import DeviceError, DeviceReadError, GpuSample

Result = GpuSample | DeviceError


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass
class _Job:
    """One tick's reads: devices still to read, what came back, and which read is running (under `lock`)."""

    todo: list[int]
    results: dict[int, Result] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # released once when the job is finished: a bare lock, since an Event's Condition costs several times more
    # per tick, and this hand-off happens every tick
    done: threading.Lock = field(default_factory=_held_lock)
    finished: bool = False
    running: tuple[int, float, _Reader] | None = None  # (device, started on the clock, reader)
    closed: bool = False  # out of time: take no more devices


class _Reader:
    """A daemon thread that works through the jobs it is given until it is retired."""

    def __init__(self, read: Callable[[int], Result], clock: Callable[[], float],
                 released: Callable[[int], None], number: int) -> None:
        self._read, self._clock, self._released = read, clock, released
        self._inbox: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.retired = False  # set under the job's lock by the owner when it gives up on this reader
        threading.Thread(target=self._run, name=f"exporter-read-{number}", daemon=True).start()

    def give(self, job: _Job | None) -> None:
        self._inbox.put(job)

    def _run(self) -> None:
        while (job := self._inbox.get()) is not None:
            if not self._work(job):
                return

    def _work(self, job: _Job) -> bool:
        """Read devices until the job is empty; False when this reader was retired (its thread then ends)."""
        while True:
            with job.lock:
                if self.retired:
                    return False
                if job.closed or not job.todo:
                    if not job.finished:
                        job.finished = True
                        job.done.release()
                    return True
                index = job.todo.pop(0)
                job.running = (index, self._clock(), self)
            result = self._read(index)
            with job.lock:
                if self.retired:  # given up on while in this read: the tick has moved on without it
                    self._released(index)
                    return False
                job.results[index] = result
                job.running = None


class DeviceReader:
    """`read_all(indices, deadline)` reads devices in order; a read longer than `read_timeout` (or one still
    running at `deadline`) becomes a timeout error for that device and the others are read by a fresh thread."""

    def __init__(self, read: Callable[[int], Result], read_timeout: float,
                 clock: Callable[[], float]) -> None:
        self._read, self._read_timeout, self._clock = read, read_timeout, clock
        self._lock = threading.Lock()
        self._stuck: set[int] = set()  # devices whose given-up read has not returned yet
        self._readers = 0
        self._reader = self._new_reader()

    def _new_reader(self) -> _Reader:
        self._readers += 1
        return _Reader(self._read, self._clock, self._release, self._readers)

    def _release(self, index: int) -> None:
        with self._lock:
            self._stuck.discard(index)

    @property
    def threads_started(self) -> int:
        """Reader threads started so far (1 until some read hung)."""
        return self._readers

    def read_all(self, indices: list[int], deadline: float | None = None) -> tuple[dict[int, Result], set[int]]:
        """Results per device, and the devices that timed out (their error is in the results too)."""
        with self._lock:
            stuck = {i for i in indices if i in self._stuck}
        job = _Job(todo=[i for i in indices if i not in stuck])
        timed_out = set(stuck)
        job.results.update({i: DeviceReadError(f"GPU {i}: previous read still running") for i in stuck})
        if job.todo:
            self._reader.give(job)
            timed_out |= self._wait(job, deadline)
        return job.results, timed_out

    def _wait(self, job: _Job, deadline: float | None) -> set[int]:
        timed_out: set[int] = set()
        end = float("inf") if deadline is None else deadline
        while True:
            with job.lock:
                running = job.running
            now = self._clock()
            limit = min(end, (running[1] if running else now) + self._read_timeout)
            if job.done.acquire(timeout=max(0.0, limit - now)):
                return timed_out
            now = self._clock()
            with job.lock:
                if job.finished:
                    return timed_out
                running = job.running
                out_of_time = now >= end
                if running is not None and (out_of_time or now - running[1] >= self._read_timeout):
                    timed_out.add(self._give_up(job, *running))
                    if not out_of_time:
                        self._reader.give(job)
                if out_of_time:
                    job.closed = True
                    for index in job.todo:
                        job.results[index] = DeviceReadError(f"GPU {index}: not read before the tick's deadline")
                        timed_out.add(index)
                    job.todo.clear()
                    return timed_out

    def _give_up(self, job: _Job, index: int, started: float, reader: _Reader) -> int:
        """Leave `reader` stuck in its read of `index` and start a fresh reader (call with job.lock held)."""
        reader.retired = True
        job.running = None
        with self._lock:
            self._stuck.add(index)
        job.results[index] = DeviceReadError(f"GPU {index}: read took longer than {self._read_timeout:g} s")
        self._reader = self._new_reader()
        return index

    def close(self) -> None:
        """End the reader thread (a stuck one ends when its call returns)."""
        self._reader.give(None)
