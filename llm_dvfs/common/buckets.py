"""Histogram bucket counting shared by the exporter's and the load generator's histograms.

Prometheus buckets are "less than or equal to the upper bound", the last one +Inf: a value is counted in the first
bucket whose bound is >= it (`bisect_left`), one cheap step per observation, and made cumulative only when read.
"""

from __future__ import annotations

import bisect
from typing import Iterable


class BucketCounts:
    """Per-bucket counts and sum over fixed upper bounds; the caller holds whatever lock its threads need."""

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)  # the last is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def observe_many(self, values: Iterable[float]) -> None:
        values = list(values)
        counts, bounds = self.counts, self.bounds
        for value in values:
            counts[bisect.bisect_left(bounds, value)] += 1
        self.sum += sum(values)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> tuple[int, ...]:
        """Counts of values <= each bound, then the total (+Inf), as Prometheus exposes them."""
        out, running = [], 0
        for c in self.counts:
            running += c
            out.append(running)
        return tuple(out)
