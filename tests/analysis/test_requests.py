"""Per-token timing and requests in flight, over the load generator's own request records."""

from __future__ import annotations

import pytest

from llm_dvfs.analysis.requests import in_flight, token_times, tokens_between
from llm_dvfs.loadgen.results import RequestResult


def ok(start: float, ttft: float, itl: list[float], e2el: float, tokens: int) -> RequestResult:
    return RequestResult(start_time=start, success=True, ttft_s=ttft, itl_s=itl, e2el_s=e2el, prompt_tokens=1,
                         output_tokens=tokens)


def test_token_times_follow_ttft_and_itl():
    r = ok(100.0, 0.5, [0.1, 0.2], 0.8, 3)
    assert [round(t, 9) for t, _ in token_times(r)] == [100.5, 100.6, 100.8]
    assert r.tpot_s == pytest.approx(0.15)


def test_chunks_carrying_several_tokens_share_the_usage_count():
    r = ok(0.0, 1.0, [1.0], 2.0, 6)
    assert tokens_between([r], 0, 1.5) == 3 and tokens_between([r], 0, 10) == 6


def test_a_failed_request_has_no_tokens():
    failed = RequestResult(start_time=0.0, success=False, error="http_500: x", elapsed_s=0.2)
    assert token_times(failed) == [] and tokens_between([failed], 0, 10) == 0 and failed.end_time == 0.2


def test_in_flight_counts_starts_and_ends():
    a, b = ok(0.0, 0.1, [], 2.0, 1), ok(1.0, 0.1, [], 2.0, 1)
    assert in_flight([a, b]) == [(0.0, 1), (1.0, 2), (2.0, 1), (3.0, 0)]
