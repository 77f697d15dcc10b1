"""The figures of one measured window, computed once for both sweep.json (`analysis/level.py`) and report.md
(`analysis/summary.py`), so the two can never disagree.

Over [t0, t1): output tokens by their arrival times, completions by their end times, failures by their start
times, latencies of the successful requests that started in it, energy and power from the samples CSV.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from llm_dvfs.analysis.energy import NO_SENSOR, Energy, window_energy
from llm_dvfs.analysis.requests import tokens_between
from llm_dvfs.analysis.samples import Samples
from llm_dvfs.analysis.stats import mean
from llm_dvfs.common.percentile import percentile
from llm_dvfs.loadgen.results import RequestResult

LATENCIES = ("TTFT", "ITL", "TPOT", "E2E")


def _per(amount: float | None, count: float) -> float | None:
    """amount / count; None when either is unknown or zero (no rate over an empty window)."""
    return amount / count if amount is not None and count else None


def _ms(values: list[float]) -> tuple[float | None, float | None]:
    p50, p99 = percentile(values, 50), percentile(values, 99)
    return (None if p50 is None else p50 * 1000, None if p99 is None else p99 * 1000)


@dataclass
class WindowFigures:
    """Counts over the window; rates per `duration_s` (None for a window of no length); energy per device and
    its sum `energy_j`, which is None when any device's energy is unknown (no sensor) or there are no samples."""

    duration_s: float
    latency_ms: dict[str, tuple[float | None, float | None]]  # each of LATENCIES -> (p50, p99)
    tokens: float
    completed: int
    failed: int
    energy: dict[int, Energy]  # per device; empty without samples
    mean_w: dict[int, float | None]
    max_w: dict[int, float | None]
    energy_j: float | None
    output_tok_s: float | None
    request_s: float | None
    j_per_token: float | None
    j_per_request: float | None
    total_w: float | None

    @property
    def no_sensor(self) -> bool:
        return bool(self.energy) and all(e.source == NO_SENSOR for e in self.energy.values())


def window_figures(requests: Sequence[RequestResult], samples: Samples | None, t0: float, t1: float,
                   duration_s: float) -> WindowFigures:
    """The figures over [t0, t1); `duration_s` is what rates divide by (0: no rates)."""
    ok = [r for r in requests if r.success]
    started = [r for r in ok if t0 <= r.start_time < t1]
    latency = {
        "TTFT": _ms([r.ttft_s for r in started if r.ttft_s is not None]),
        "ITL": _ms([x for r in started for x in r.itl_s]),
        "TPOT": _ms([r.tpot_s for r in started if r.tpot_s is not None]),
        "E2E": _ms([r.e2el_s for r in started if r.e2el_s is not None]),
    }
    tokens = tokens_between(requests, t0, t1)
    completed = sum(1 for r in ok if r.end_time is not None and t0 <= r.end_time < t1)
    energy: dict[int, Energy] = {}
    mean_w: dict[int, float | None] = {}
    max_w: dict[int, float | None] = {}
    for g in samples.gpus if samples else ():
        energy[g] = window_energy(samples, g, t0, t1)
        power = [p for t, p in zip(samples.timestamps, samples.series(g, "power")) if p is not None and t0 <= t <= t1]
        mean_w[g], max_w[g] = mean(power), max(power, default=None)
    joules = [e.joules for e in energy.values()]
    total = sum(joules) if joules and None not in joules else None  # type: ignore[arg-type]
    return WindowFigures(duration_s, latency, tokens, completed,
                         failed=sum(1 for r in requests if not r.success and t0 <= r.start_time < t1),
                         energy=energy, mean_w=mean_w, max_w=max_w, energy_j=total,
                         output_tok_s=_per(tokens, duration_s), request_s=_per(completed, duration_s),
                         j_per_token=_per(total, tokens), j_per_request=_per(total, completed),
                         total_w=_per(total, duration_s))
