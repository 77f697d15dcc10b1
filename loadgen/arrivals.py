"""Open-loop arrival times: a gamma process of mean rate R (Poisson when burstiness is 1), as `vllm bench serve`.

Gaps are Gamma(shape=burstiness, scale=1/(R·burstiness)): the mean gap is 1/R whatever the burstiness, and lower
burstiness means burstier traffic. The schedule is absolute (start + cumulative gaps), so a late send never shifts
the arrivals after it.
"""

from __future__ import annotations

import math
import random
import threading


def gaps(rate: float, burstiness: float, rng: random.Random):
    """Endless inter-arrival gaps in seconds; all zero for an infinite rate."""
    if rate <= 0 or burstiness <= 0:
        raise ValueError("rate and burstiness must be positive")
    while True:
        yield 0.0 if math.isinf(rate) else rng.gammavariate(burstiness, 1.0 / (rate * burstiness))


class ArrivalSchedule:
    """Hands out arrival times to every user of a process: each call takes the next slot of the shared process."""

    def __init__(self, rate: float, burstiness: float, start: float, rng: random.Random) -> None:
        self._gaps = gaps(rate, burstiness, rng)
        self._next = start
        self._lock = threading.Lock()

    def next_arrival(self) -> float:
        with self._lock:
            self._next += next(self._gaps)
            return self._next
