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
    every call. After a long stall the schedule restarts from now instead of firing to catch up."""

    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        if every < 0:
            raise ValueError("cadence must not be negative")
        self.every, self._clock = every, clock
        self._next: float | None = None

    def due(self) -> bool:
        now = self._clock()
        if self._next is not None and now < self._next - DUE_SLACK_S:
            return False
        self._next = now + self.every if self._next is None or now >= self._next + self.every else \
            self._next + self.every
        return True


@dataclass(frozen=True)
class ReadCadence:
    """Seconds between the costly reads (0 = every tick); only the NVML backend has reads costly enough to care."""

    energy_interval: float = 0.0
    buffer_interval: float = 0.0

    @classmethod
    def for_tick(cls, interval: float, energy_interval: float, buffer_interval: float) -> ReadCadence:
        """Intervals no longer than a tick mean every tick (0), which keeps energy_source="counter"."""
        return cls(energy_interval=energy_interval if energy_interval > interval else 0.0,
                   buffer_interval=buffer_interval if buffer_interval > interval else 0.0)
