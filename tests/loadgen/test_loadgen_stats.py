"""stats.calculate_metrics on hand-made results: the `vllm bench serve` keys and definitions, goodput, errors."""

from __future__ import annotations

import pytest

from llm_dvfs.common.errors import UsageError
from llm_dvfs.loadgen.results import RequestResult
from llm_dvfs.common.percentile import percentile
from llm_dvfs.loadgen.stats import calculate_metrics, parse_goodput
from llm_dvfs.loadgen.timing import TokenTiming

VLLM_KEYS = ["duration", "completed", "failed", "total_input_tokens", "total_output_tokens", "request_throughput",
             "request_goodput", "output_throughput", "total_token_throughput"] + [
    f"{s}_{m}_ms" for m in ("ttft", "tpot", "itl", "e2el") for s in ("mean", "median", "std", "p90", "p99")]


def ok(ttft: float, itl: list[float], prompt: int = 10) -> RequestResult:
    t = TokenTiming(ttft, itl, ttft + sum(itl))
    return RequestResult(start_time=0.0, success=True, ttft_s=t.ttft, itl_s=t.itl, e2el_s=t.e2el,
                         prompt_tokens=prompt, output_tokens=len(itl) + 1)


def test_timing_definitions_with_a_scripted_clock():
    t = TokenTiming.from_arrivals(10.0, [10.1, 10.12, 10.15, 10.19])
    assert t.ttft == pytest.approx(0.1) and t.itl == pytest.approx([0.02, 0.03, 0.04])
    assert t.e2el - t.ttft == pytest.approx(sum(t.itl))  # E2E − TTFT = ΣITL
    assert t.tpot(4) == pytest.approx(0.09 / 3) and t.tpot(1) is None
    with pytest.raises(ValueError):
        TokenTiming.from_arrivals(0.0, [])


def test_metrics_keys_and_values():
    results = [ok(0.1, [0.02, 0.02]), ok(0.3, [0.04] * 4, prompt=20),
               RequestResult(start_time=0.0, success=False, error="http_500: x"),
               RequestResult(start_time=0.0, success=False, error="timeout: y"),
               RequestResult(start_time=0.0, success=False, error="http_500: z")]
    m = calculate_metrics(results, duration_s=2.0, slos={"ttft": 200})
    assert all(k in m for k in VLLM_KEYS)
    assert (m["completed"], m["failed"]) == (2, 3)
    assert m["errors"] == {"http_500": 2, "timeout": 1}
    assert (m["total_input_tokens"], m["total_output_tokens"]) == (30, 8)
    assert m["request_throughput"] == 1.0 and m["output_throughput"] == 4.0
    assert m["total_token_throughput"] == 19.0
    assert m["request_goodput"] == 0.5  # only the first meets TTFT ≤ 200 ms
    assert m["mean_ttft_ms"] == pytest.approx(200) and m["median_ttft_ms"] == pytest.approx(200)
    assert m["std_ttft_ms"] == pytest.approx(100)
    assert m["mean_tpot_ms"] == pytest.approx(30)  # (20 + 40) / 2
    assert m["mean_itl_ms"] == pytest.approx((0.02 * 2 + 0.04 * 4) / 6 * 1000)
    assert m["mean_e2el_ms"] == pytest.approx((140 + 460) / 2)


def test_empty_run_has_zeros_not_nan():
    m = calculate_metrics([], duration_s=0.0)
    assert m["completed"] == 0 and m["request_throughput"] == 0.0 and m["mean_ttft_ms"] == 0.0
    assert m["request_goodput"] is None


def test_percentile_matches_numpy_linear():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([1, 2, 3, 4], 90) == pytest.approx(3.7)
    assert percentile([5], 99) == 5


def test_goodput_parsing():
    assert parse_goodput(["ttft:500", "tpot:50", "e2el:3000"]) == {"ttft": 500, "tpot": 50, "e2el": 3000}
    for bad in (["itl:5"], ["ttft"], ["ttft:-1"], ["ttft:abc"]):
        with pytest.raises(UsageError):
            parse_goodput(bad)
