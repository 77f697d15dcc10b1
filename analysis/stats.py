"""Small statistics shared by the sweep and the report: means, and the seeds' per-GPU power statistics
(percentiles: `llm_dvfs.common.percentile`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from llm_dvfs.analysis.energy import Energy, window_energy
from llm_dvfs.analysis.samples import Samples


def mean(values: Iterable[float]) -> float | None:
    xs = list(values)
    return sum(xs) / len(xs) if xs else None


@dataclass(frozen=True)
class GpuPowerStats:
    """What the original monitor printed per GPU: mean/max/min power, energy and duration."""

    gpu: int
    mean_w: float | None
    max_w: float | None
    min_w: float | None
    energy: Energy
    duration_s: float
    samples: int


def gpu_power_stats(samples: Samples, gpu: int, t0: float | None = None, t1: float | None = None) -> GpuPowerStats:
    """Power statistics of one GPU over [t0, t1] (default: the whole recording)."""
    ts = samples.timestamps
    if t0 is None:
        t0 = ts[0] if ts else 0.0
    if t1 is None:
        t1 = ts[-1] if ts else 0.0
    power = [p for t, p in zip(ts, samples.series(gpu, "power")) if p is not None and t0 <= t <= t1]
    return GpuPowerStats(gpu, mean(power), max(power, default=None), min(power, default=None),
                         window_energy(samples, gpu, t0, t1), max(0.0, t1 - t0), len(power))
