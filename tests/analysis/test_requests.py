"""requests.jsonl reading and per-token timing."""

from __future__ import annotations

import json

import pytest

from llm_dvfs.analysis.requests import Request, in_flight, read_requests, tokens_between
from llm_dvfs.common.errors import UsageError


def test_token_times_follow_ttft_and_itl():
    r = Request(start=100.0, ttft_s=0.5, itl_s=(0.1, 0.2), e2el_s=0.8, prompt_tokens=4, output_tokens=3, success=True)
    assert [round(t, 9) for t, _ in r.token_times()] == [100.5, 100.6, 100.8]
    assert r.tpot_s == pytest.approx(0.15)


def test_chunks_carrying_several_tokens_share_the_usage_count():
    r = Request(start=0.0, ttft_s=1.0, itl_s=(1.0,), e2el_s=2.0, prompt_tokens=1, output_tokens=6, success=True)
    assert tokens_between([r], 0, 1.5) == 3 and tokens_between([r], 0, 10) == 6


def test_in_flight_counts_starts_and_ends():
    a = Request(0.0, 0.1, (), 2.0, 1, 1, True)
    b = Request(1.0, 0.1, (), 2.0, 1, 1, True)
    assert in_flight([a, b]) == [(0.0, 1), (1.0, 2), (2.0, 1), (3.0, 0)]


def test_torn_last_line_is_skipped_but_a_bad_middle_line_is_an_error(tmp_path):
    good = json.dumps({"start_time": 1.0, "ttft_s": 0.1, "itl_s": [], "e2el_s": 0.1, "prompt_tokens": 1,
                       "output_tokens": 1, "success": True, "error": None, "prefill_s": None})
    path = tmp_path / "requests.jsonl"
    path.write_text(good + "\n" + good + "\n" + '{"start_ti')
    assert len(read_requests(path)) == 2
    path.write_text(good + "\nnot json\n" + good + "\n")
    with pytest.raises(UsageError, match=":2:"):
        read_requests(path)
