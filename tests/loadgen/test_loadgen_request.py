"""StreamClient against the scripted SSE server over real sockets: timing matches the script, failures get reasons."""

from __future__ import annotations

import pytest
from tests.support import free_port

from llm_dvfs.loadgen.datasets.base import SampleRequest
from llm_dvfs.loadgen.request import StreamClient
from tests.loadgen.scripted_server import Script, ScriptedServer

TOL = 0.004  # seconds: loopback plus asyncio scheduling on a shared 2-core machine
PROMPT = SampleRequest("hello there", 2, 5)


@pytest.fixture
def server():
    with ScriptedServer() as s:
        yield s


def test_completion_timing_matches_what_the_server_sent(server):
    server.default = Script(ttft=0.08, itl=0.03, tokens=6)
    result = StreamClient(server.url, model="scripted").send(PROMPT)
    served = server.served[0]
    assert result.success, result.error
    assert result.ttft_s == pytest.approx(0.08, abs=TOL)
    assert len(result.itl_s) == 5
    assert all(gap == pytest.approx(0.03, abs=TOL) for gap in result.itl_s)
    # against the server's own write times, the client is within a couple of ms everywhere
    sent_gaps = [b - a for a, b in zip(served.token_times, served.token_times[1:])]
    assert max(abs(m - s) for m, s in zip(result.itl_s, sent_gaps)) < TOL
    assert result.e2el_s == pytest.approx(result.ttft_s + sum(result.itl_s), abs=1e-9)
    assert result.output_tokens == 6 and result.output_tokens_source == "usage"
    assert result.prompt_tokens == 7
    assert result.tpot_s == pytest.approx((result.e2el_s - result.ttft_s) / 5)
    body = served.body
    assert body["stream"] and body["stream_options"]["include_usage"] and body["model"] == "scripted"
    assert body["max_tokens"] == 5 and "ignore_eos" not in body


def test_chat_role_only_chunk_is_not_the_first_token_and_reasoning_counts(server):
    server.default = Script(ttft=0.06, itl=0.02, tokens=4, reasoning=True)
    result = StreamClient(server.url, endpoint="chat").send(PROMPT)
    assert result.success, result.error
    assert result.ttft_s == pytest.approx(0.06, abs=TOL)  # not ~0: the role-only chunk came at once
    assert len(result.itl_s) == 3
    assert server.served[0].path == "/v1/chat/completions"
    assert server.served[0].body["messages"] == [{"role": "user", "content": "hello there"}]


def test_without_usage_tokens_are_retokenised_or_counted_by_chunk(server):
    class Words:
        def encode(self, text: str) -> list[int]:
            return list(range(len(text.split())))

    server.default = Script(ttft=0.01, itl=0.005, tokens=4, usage=False)
    counted = StreamClient(server.url).send(PROMPT)
    assert (counted.output_tokens, counted.output_tokens_source) == (4, "chunks")
    retokenised = StreamClient(server.url, tokenizer=Words()).send(PROMPT)
    assert (retokenised.output_tokens, retokenised.output_tokens_source) == (4, "retokenized")
    assert retokenised.prompt_tokens == PROMPT.prompt_len


@pytest.mark.parametrize("script, reason", [
    (Script(status=500), "http_500"),
    (Script(status=404), "http_404"),
    (Script(tokens=6, reset_after=3), "reset_mid_stream"),
    (Script(tokens=6, malformed_after=2), "malformed_sse"),
    (Script(tokens=0), "no_tokens"),
])
def test_failures_are_results_with_reasons(server, script, reason):
    server.default = script
    result = StreamClient(server.url).send(PROMPT)
    assert not result.success
    assert result.reason == reason, result.error
    assert result.ttft_s is None and result.itl_s == []


def test_http_error_detail_comes_from_the_error_json(server):
    server.default = Script(status=500)
    assert StreamClient(server.url).send(PROMPT).error == "http_500: injected failure"


def test_server_down_and_timeout():
    down = StreamClient(f"http://127.0.0.1:{free_port()}").send(PROMPT)
    assert down.reason == "connection_refused"
    with ScriptedServer(Script(ttft=1.0)) as slow:
        result = StreamClient(slow.url, timeout=0.2).send(PROMPT)
    assert result.reason == "timeout"
    assert result.elapsed_s == pytest.approx(0.2, abs=0.05)


def test_prefill_header_and_token_id_prompts(server):
    server.default = Script(tokens=2, headers={"X-Prefill-Seconds": "0.125"})
    result = StreamClient(server.url + "/v1", prefill_header="X-Prefill-Seconds",
                          ignore_eos=True).send(SampleRequest([5, 6, 7], 3, 2))
    assert result.prefill_s == 0.125
    body = server.served[0].body
    assert body["prompt"] == [5, 6, 7] and body["return_token_ids"] and body["ignore_eos"]
    assert server.served[0].path == "/v1/completions"
    assert StreamClient(server.url).send(PROMPT).prefill_s is None


@pytest.mark.parametrize("script, reason", [
    (Script(ttft=0.01, itl=0.002, tokens=5, keep_alive=True), None),  # chunked: ends at `0\r\n\r\n`
    (Script(status=500, keep_alive=True), "http_500"),  # ends after Content-Length bytes
], ids=["chunked", "content_length"])
def test_a_server_that_keeps_the_connection_open_does_not_hold_the_request(server, script, reason):
    """Issue 10: the read loop waited for the close, so a 21 ms stream took until the 3 s timeout."""
    server.default = script
    result = StreamClient(server.url, timeout=3).send(PROMPT)
    assert result.reason == reason, result.error
    assert result.elapsed_s < 0.5
    if reason is None:
        assert result.output_tokens == 5 and result.e2el_s < 0.5
