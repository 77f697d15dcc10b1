"""The Energy view's numbers, from two snapshots of the load generator's own metrics and the joules in between.

Pure functions. The metrics are the ones `LoadgenMetrics.observe` keeps for Prometheus anyway (counters and
bucketed histograms), so a figure costs a few hundred additions however long the test: the view never sorts the
raw samples while the test runs. Latency percentiles are therefore histogram estimates (linear within a bucket, as
Prometheus' `histogram_quantile`); when the test stops the view shows the exact figures of results.json instead.
"""

from __future__ import annotations

import math
from typing import Mapping

from prometheus_client import CollectorRegistry

#: {(sample name, sorted label pairs): value}: the load generator's own metrics at one moment
MetricsSnapshot = Mapping[tuple[str, tuple[tuple[str, str], ...]], float]


def snapshot(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of `registry` now (no text is rendered or parsed: the collectors are asked directly)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect() for s in family.samples}


def _total(snap: MetricsSnapshot, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in snap.items()
               if n == name and all((k, val) in ls for k, val in labels.items()))


def _buckets(snap: MetricsSnapshot, name: str) -> dict[float, float]:
    """{upper bound: cumulative count} of histogram `name` (+Inf as math.inf)."""
    return {float(dict(ls)["le"]): v for (n, ls), v in snap.items() if n == f"{name}_bucket"}


def quantile(q: float, cumulative: Mapping[float, float]) -> float | None:
    """The q-quantile (0..1) of a cumulative histogram, interpolated linearly inside its bucket; None if empty.

    Values in the +Inf bucket are reported as the highest finite bound (the histogram cannot say more).
    """
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]] if bounds else 0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank and count > below:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def histogram_delta(before: MetricsSnapshot, after: MetricsSnapshot, name: str) -> dict[float, float]:
    """The observations of histogram `name` made between two snapshots."""
    start = _buckets(before, name)
    return {bound: count - start.get(bound, 0.0) for bound, count in _buckets(after, name).items()}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _per(numerator: float | None, denominator: float) -> float | None:
    return numerator / denominator if numerator is not None and denominator > 0 else None


def between(before: MetricsSnapshot, after: MetricsSnapshot, seconds: float, joules: float | None,
            prompt_priced: bool = False) -> dict[str, float | None]:
    """What happened between two snapshots `seconds` apart, under the names results.json gives the same figures.

    `joules` is the GPUs' energy over the same span (None: no exporter). `prompt_priced`: a prefill-only workload,
    whose energy is all prefill, so it is also priced per prompt token.
    """
    completed = _total(after, "llm_requests_total", status="ok") - _total(before, "llm_requests_total", status="ok")
    requests = _total(after, "llm_requests_total") - _total(before, "llm_requests_total")
    output = _total(after, "llm_output_tokens_total") - _total(before, "llm_output_tokens_total")
    prompt = _total(after, "llm_prompt_tokens_total") - _total(before, "llm_prompt_tokens_total")
    ttft = histogram_delta(before, after, "llm_ttft_seconds")
    itl = histogram_delta(before, after, "llm_itl_seconds")
    return {
        "completed": completed, "failed": requests - completed,
        "total_output_tokens": output, "total_input_tokens": prompt,
        "output_throughput": _per(output, seconds),
        "median_ttft_ms": _ms(quantile(0.5, ttft)), "p99_ttft_ms": _ms(quantile(0.99, ttft)),
        "median_itl_ms": _ms(quantile(0.5, itl)), "p99_itl_ms": _ms(quantile(0.99, itl)),
        "energy_joules": joules,
        "avg_watts": _per(joules, seconds),
        "joules_per_output_token": _per(joules, output),
        "joules_per_request": _per(joules, completed),
        "joules_per_prompt_token": _per(joules, prompt) if prompt_priced else None,
    }
