"""How often an expensive read is due. The NVML energy counter costs ~3 ms and the driver's sample buffer ~0.3 ms
per call on an H100, against ~0.03 ms for everything else a tick reads, so those two run on their own, slower
schedule: every `every` seconds, at most once per tick (a read is only ever asked for by a tick)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

# A tick that starts a little late must not push the read a whole tick later (slots are `every` apart, ticks
# jitter by up to a few ms).
DUE_SLACK_S = 0.01


class Cadence:
    """`due()` is True at the first call and then once per `every` seconds on a fixed schedule; `every` = 0 means
    every call. After a long stall the schedule restarts from now instead of firing to catch up. A `phase` (0 to
    `every`) makes the first gap that long instead of `every`: devices given phases spread over `every` never pay
    their costly reads in the same tick, and no gap is ever longer than `every` (a drained buffer never wraps)."""

    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic, phase: float = 0.0) -> None:
        if every < 0 or phase < 0:
            raise ValueError("cadence must not be negative")
        self.every, self._clock, self._phase = every, clock, phase
        self._next: float | None = None

    def due(self) -> bool:
        now = self._clock()
        if self._next is not None and now < self._next - DUE_SLACK_S:
            return False
        if self._next is None:
            self._next = now + (self._phase or self.every)
        elif now >= self._next + self.every:
            self._next = now + self.every
        else:
            self._next += self.every
        return True


def spread(every: float, position: int, count: int, clock: Callable[[], float] = time.monotonic) -> Cadence:
    """The cadence of device `position` of `count`: phases evenly spread over `every`."""
    return Cadence(every, clock, phase=every * position / max(1, count))


# Temperature, memory, power limit and P-state change over seconds, not ticks: read once a second (issue 16).
SLOW_READ_INTERVAL_S = 1.0


@dataclass(frozen=True)
class ReadCadence:
    """Seconds between the costly reads and between reads of the slow values (0 = every tick); only the NVML
    backend has reads costly enough to care."""

    energy_interval: float = 0.0
    buffer_interval: float = 0.0
    slow_interval: float = 0.0

    @classmethod
    def for_tick(cls, interval: float, energy_interval: float, buffer_interval: float,
                 slow_interval: float = SLOW_READ_INTERVAL_S) -> ReadCadence:
        """Intervals no longer than a tick mean every tick (0), which keeps energy_source="counter"."""
        return cls(energy_interval=energy_interval if energy_interval > interval else 0.0,
                   buffer_interval=buffer_interval if buffer_interval > interval else 0.0,
                   slow_interval=slow_interval if slow_interval > interval else 0.0)
