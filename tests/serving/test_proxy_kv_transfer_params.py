"""The proxy in kv-transfer-params mode against scripted instances: what each hop receives, what the client gets,
round-robin, metrics, and the guard rails (size limit, unknown paths)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from tests.support import metric_sum, scrape

from llm_dvfs.serving.proxy.cli import build_parser

pytestmark = pytest.mark.timeout(60)

NIXL_ANSWER = {"do_remote_prefill": True, "do_remote_decode": False, "remote_engine_id": "engine-p",
               "remote_block_ids": [3, 4], "remote_host": "127.0.0.1", "remote_port": 5600}


@pytest.fixture
def pair(scripted, start_proxy):
    prefill, decode = scripted("prefill"), scripted("decode")
    prefill.script.remote_params = NIXL_ANSWER
    proxy = start_proxy("--kv-protocol", "kv-transfer-params", "--prefill", prefill.url, "--decode", decode.url)
    return prefill, decode, proxy


def sse_events(text: str) -> list[str]:
    return [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]


def test_streamed_completion_hops_and_relay(pair):
    prefill, decode, proxy = pair
    body = {"model": "m", "prompt": "hello", "max_tokens": 20, "min_tokens": 5, "stream": True,
            "stream_options": {"include_usage": True}}
    resp = requests.post(f"{proxy.url}/v1/completions", json=body, stream=True, timeout=10)
    assert resp.status_code == 200
    assert float(resp.headers["X-Prefill-Seconds"]) >= 0
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(resp.text)
    assert events[-1] == "[DONE]" and len(events) == 6
    assert json.loads(events[0])["choices"][0]["text"] == "t0 "

    (p,), (d,) = prefill.received, decode.received
    assert p.path == d.path == "/v1/completions"
    assert p.body["max_tokens"] == 1 and p.body["stream"] is False
    assert "stream_options" not in p.body and "min_tokens" not in p.body
    assert p.body["kv_transfer_params"] == {"do_remote_decode": True, "do_remote_prefill": False,
                                            "remote_engine_id": None, "remote_block_ids": None,
                                            "remote_host": None, "remote_port": None}
    # decode: the client's request untouched, plus what prefill answered
    assert d.body == {**body, "kv_transfer_params": NIXL_ANSWER}
    assert p.headers["x-request-id"] == d.headers["x-request-id"] == resp.headers["X-Request-Id"]

    m = scrape(f"{proxy.url}/metrics")
    assert metric_sum(m, "proxy_requests_total", status="ok") == 1
    assert metric_sum(m, "proxy_prefill_seconds_count") == 1
    assert metric_sum(m, "proxy_decode_first_token_seconds_count") == 1
    assert metric_sum(m, "proxy_request_seconds_count") == 1


def test_non_streamed_chat(pair):
    prefill, decode, proxy = pair
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 9}
    resp = requests.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["text"] == "decode!"
    assert "X-Prefill-Seconds" in resp.headers
    p, d = prefill.received[0], decode.received[0]
    assert p.path == "/v1/chat/completions"
    assert p.body["max_completion_tokens"] == 1 and p.body["max_tokens"] == 1
    assert d.body["max_completion_tokens"] == 9 and "max_tokens" not in d.body


def test_no_params_from_prefill_sends_plain_request(scripted, start_proxy):
    """ExampleConnector answers without kv_transfer_params: decode gets exactly the client's request."""
    prefill, decode = scripted("prefill"), scripted("decode")
    proxy = start_proxy("--prefill", prefill.url, "--decode", decode.url)
    body = {"model": "m", "prompt": [1, 2, 3], "max_tokens": 4}
    assert requests.post(f"{proxy.url}/v1/completions", json=body, timeout=10).status_code == 200
    assert decode.received[0].body == body


def test_round_robin_over_instances(scripted, start_proxy):
    p1, p2, d1, d2 = (scripted(n) for n in ("p1", "p2", "d1", "d2"))
    proxy = start_proxy("--prefill", f"{p1.url},{p2.url}", "--decode", f"{d1.url},{d2.url}")
    for _ in range(4):
        assert requests.post(f"{proxy.url}/v1/completions", json={"prompt": "x"}, timeout=10).status_code == 200
    assert [len(i.received) for i in (p1, p2, d1, d2)] == [2, 2, 2, 2]


def test_models_health_and_metrics(pair):
    _, _, proxy = pair
    models = requests.get(f"{proxy.url}/v1/models", timeout=10)
    assert models.status_code == 200 and models.json()["data"][0]["id"] == "scripted"
    health = requests.get(f"{proxy.url}/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert "proxy_requests_total" in requests.get(f"{proxy.url}/metrics", timeout=10).text


def test_only_openai_paths_are_forwarded(pair):
    prefill, decode, proxy = pair
    for method, path in (("GET", "/v1/completions"), ("POST", "/v1/embeddings"), ("GET", "/admin"),
                         ("POST", "/http://example.com/")):
        resp = requests.request(method, f"{proxy.url}{path}", json={}, timeout=10)
        assert resp.status_code in (404, 405), path
        assert "error" in resp.json()
    assert prefill.received == [] and decode.received == []


def test_bad_bodies_get_400_and_size_limit_413(scripted, start_proxy):
    prefill, decode = scripted("prefill"), scripted("decode")
    proxy = start_proxy("--prefill", prefill.url, "--decode", decode.url, "--max-request-bytes", "1000")
    for data in (b"not json", b"[1, 2]"):
        resp = requests.post(f"{proxy.url}/v1/completions", data=data, timeout=10)
        assert resp.status_code == 400 and resp.json()["error"]["code"] == 400
    big = requests.post(f"{proxy.url}/v1/completions", json={"prompt": "x" * 5000}, timeout=10)
    assert big.status_code == 413 and "1000 bytes" in big.json()["error"]["message"]
    assert prefill.received == []
    assert metric_sum(scrape(f"{proxy.url}/metrics"), "proxy_requests_total", status="bad_request") == 3


def test_authorization_is_passed_to_both_hops(pair):
    prefill, decode, proxy = pair
    requests.post(f"{proxy.url}/v1/completions", json={"prompt": "x"}, headers={"Authorization": "Bearer k"},
                  timeout=10)
    assert prefill.received[0].headers["authorization"] == decode.received[0].headers["authorization"] == "Bearer k"


@pytest.mark.parametrize("argv, message", [
    (["--prefill", "localhost:8100", "--decode", "http://127.0.0.1:8200"], "not a base URL"),
    (["--decode", "http://127.0.0.1:8200"], "needs at least one --prefill"),
    (["--kv-protocol", "nccl"], "invalid choice"),
    (["--kv-protocol", "p2p-nccl", "--port", "30001"], "must differ"),
    (["--prefill", "http://a:1", "--decode", "http://b:2", "--decode-timeout", "0"], "must be a positive finite"),
    (["--prefill", "http://a:1", "--decode", "http://b:2", "--decode-timeout", "nan"],
     "--decode-timeout must be a positive finite number, got nan"),
    (["--prefill", "http://a:1", "--decode", "http://b:2", "--prefill-timeout", "inf"], "got inf"),
    (["--prefill", "http://a:1", "--decode", "http://b:2", "--connect-timeout", "-1"], "got -1"),
    (["--kv-protocol", "p2p-nccl", "--instance-ttl", "nan"], "--instance-ttl must be a positive finite number"),
])
def test_bad_options_exit_2_with_one_line(argv, message):
    run = subprocess.run([sys.executable, "-m", "llm_dvfs.cli", "proxy", *argv], capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 2
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_loopback_by_default():
    args = build_parser().parse_args(["--prefill", "http://127.0.0.1:1", "--decode", "http://127.0.0.1:2"])
    assert (args.listen_address, args.port, args.discovery_port) == ("127.0.0.1", 8000, 30001)
    assert args.discovery_address == "127.0.0.1"
