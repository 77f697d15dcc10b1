"""Results → the figures `vllm bench serve` reports (same keys, same definitions); pure functions only.

TTFT and E2EL are over successful requests, TPOT over successful requests with more than one output token, ITL
over every gap of every successful request. A request meets the goodput SLOs when each given limit holds.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Iterable, Mapping, Sequence

from llm_dvfs.common.errors import UsageError
from llm_dvfs.common.percentile import percentile
from llm_dvfs.loadgen.results import RequestResult

METRICS = ("ttft", "tpot", "itl", "e2el")
GOODPUT_KEYS = ("ttft", "tpot", "e2el")


def parse_goodput(items: Iterable[str], keys: Sequence[str] = GOODPUT_KEYS) -> dict[str, float]:
    """`["ttft:500", "tpot:50"]` → {"ttft": 500.0, "tpot": 50.0} (milliseconds); `keys` are the SLOs allowed."""
    slos: dict[str, float] = {}
    for item in items:
        key, _, value = item.partition(":")
        try:
            ms = float(value)
        except ValueError:
            ms = -1.0
        if key not in keys or not ms > 0:
            raise UsageError(f"--goodput {item!r}: expected KEY:MS with KEY in {', '.join(keys)} and MS > 0")
        slos[key] = ms
    return slos


def summary(name: str, values_s: list[float]) -> dict[str, float]:
    """mean/median/std/p90/p99 in milliseconds; zeros when there is nothing to summarise (as vLLM writes)."""
    ms = [v * 1000 for v in values_s]
    if not ms:
        return {f"{stat}_{name}_ms": 0.0 for stat in ("mean", "median", "std", "p90", "p99")}
    return {f"mean_{name}_ms": statistics.fmean(ms), f"median_{name}_ms": statistics.median(ms),
            f"std_{name}_ms": statistics.pstdev(ms), f"p90_{name}_ms": percentile(ms, 90),
            f"p99_{name}_ms": percentile(ms, 99)}


def meets_slos(result: RequestResult, slos: Mapping[str, float]) -> bool:
    values = {"ttft": result.ttft_s, "tpot": result.tpot_s, "e2el": result.e2el_s}
    return all(values[k] is None or values[k] * 1000 <= limit for k, limit in slos.items())


def calculate_metrics(results: list[RequestResult], duration_s: float,
                      slos: Mapping[str, float] | None = None) -> dict[str, object]:
    """The throughput, goodput and latency figures of one run lasting `duration_s` seconds."""
    ok = [r for r in results if r.success]
    per_s = (lambda count: count / duration_s) if duration_s > 0 else (lambda count: 0.0)
    input_tokens = sum(r.prompt_tokens or 0 for r in ok)
    output_tokens = sum(r.output_tokens or 0 for r in ok)
    figures: dict[str, object] = {
        "duration": duration_s, "completed": len(ok), "failed": len(results) - len(ok),
        "total_input_tokens": input_tokens, "total_output_tokens": output_tokens,
        "request_throughput": per_s(len(ok)),
        "request_goodput": per_s(sum(meets_slos(r, slos) for r in ok)) if slos else None,
        "output_throughput": per_s(output_tokens),
        "total_token_throughput": per_s(input_tokens + output_tokens),
    }
    figures |= summary("ttft", [r.ttft_s for r in ok if r.ttft_s is not None])
    figures |= summary("tpot", [t for r in ok if (t := r.tpot_s) is not None])
    figures |= summary("itl", [g for r in ok for g in r.itl_s])
    figures |= summary("e2el", [r.e2el_s for r in ok if r.e2el_s is not None])
    figures["errors"] = dict(Counter(r.reason for r in results if not r.success))
    return figures
