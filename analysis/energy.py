"""Energy over a time window from recorded samples: the cumulative counter's delta, else integrated power.

Like vLLM's `lib/energy.py`, the counter is trusted first (the hardware integrates every power sample, we only see
one per tick); a counter that goes backwards was reset, and the value after the reset is what accrued since.
Power is integrated (trapezoids) only where a GPU has no counter readings in the window.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Sequence

from llm_dvfs.analysis.samples import Samples

COUNTER = "energy counter"
INTEGRATED = "integrated power"
NO_SENSOR = "no power sensor"


@dataclass(frozen=True)
class Energy:
    """Joules over a window (None when nothing measured it) and where the figure came from."""

    joules: float | None
    source: str


def _valid(times: Sequence[float], values: Sequence[float | None]) -> tuple[list[float], list[float]]:
    pairs = [(t, v) for t, v in zip(times, values) if v is not None]
    return [t for t, _ in pairs], [v for _, v in pairs]


def unwrap_counter(values: Sequence[float]) -> list[float]:
    """Make a cumulative counter monotonic: a negative step is a reset, counted as the post-reset reading."""
    out: list[float] = []
    total = 0.0
    for i, v in enumerate(values):
        if i:
            step = v - values[i - 1]
            total += step if step >= 0 else v
        out.append(total)
    return out


def _interpolate(times: list[float], values: list[float], t: float) -> float:
    """Linear interpolation of a sorted series at `t`, clamped to its ends."""
    if t <= times[0]:
        return values[0]
    if t >= times[-1]:
        return values[-1]
    k = bisect_left(times, t)
    t0, t1, v0, v1 = times[k - 1], times[k], values[k - 1], values[k]
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else v1


def _overlaps(times: list[float], t0: float, t1: float) -> bool:
    return len(times) >= 2 and times[0] < t1 and times[-1] > t0


def counter_energy(times: Sequence[float], counter: Sequence[float | None], t0: float, t1: float) -> float | None:
    """Joules accrued between t0 and t1 according to a cumulative counter (J); None when it doesn't cover them."""
    ts, vs = _valid(times, counter)
    if not _overlaps(ts, t0, t1):
        return None
    cumulative = unwrap_counter(vs)
    return _interpolate(ts, cumulative, t1) - _interpolate(ts, cumulative, t0)


def integrated_energy(times: Sequence[float], power: Sequence[float | None], t0: float, t1: float) -> float | None:
    """Joules between t0 and t1 from instant power (W) by the trapezoid rule over the readings present."""
    ts, ps = _valid(times, power)
    if not _overlaps(ts, t0, t1):
        return None
    lo, hi = max(t0, ts[0]), min(t1, ts[-1])
    inner = [(t, p) for t, p in zip(ts, ps) if lo < t < hi]
    points = [(lo, _interpolate(ts, ps, lo)), *inner, (hi, _interpolate(ts, ps, hi))]
    return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(points, points[1:]))


def window_energy(samples: Samples, gpu: int, t0: float, t1: float) -> Energy:
    """One GPU's energy between t0 and t1: counter first, integrated power as the fallback."""
    joules = counter_energy(samples.timestamps, samples.series(gpu, "energy_j"), t0, t1)
    if joules is not None:
        return Energy(joules, COUNTER)
    joules = integrated_energy(samples.timestamps, samples.series(gpu, "power"), t0, t1)
    if joules is not None:
        return Energy(joules, INTEGRATED)
    return Energy(None, NO_SENSOR)
