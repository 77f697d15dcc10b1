"""The proxy's answers to hostile or odd input (deep JSON, `"stream": "true"`, an instance that never accepts the
connection) and the client headers it passes to both instances, against scripted instances over real sockets."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.loadgen.locust_run import run_locust
from tests.support import metric_sum, scrape

pytestmark = pytest.mark.timeout(90)

SECRET = "sk-test-9f8e7d6c5b4a"


def post(url: str, data: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(f"{url}/v1/completions", data=data, timeout=10,
                         headers={"Content-Type": "application/json", **(headers or {})})


@pytest.fixture
def pair(scripted, start_proxy):
    prefill, decode = scripted("prefill"), scripted("decode")
    return prefill, decode, start_proxy("--prefill", prefill.url, "--decode", decode.url)


def test_json_nested_100k_deep_is_a_counted_400(pair):
    prefill, decode, proxy = pair
    resp = post(proxy.url, b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == "request body is nested too deeply"
    assert metric_sum(scrape(f"{proxy.url}/metrics"), "proxy_requests_total", status="bad_request") == 1
    assert prefill.received == [] and "Traceback" not in proxy.log()


@pytest.mark.parametrize("stream", ["true", 1, [True]])
def test_stream_must_be_a_json_boolean(pair, stream):
    prefill, _, proxy = pair
    resp = post(proxy.url, json.dumps({"model": "m", "prompt": "hi", "stream": stream}).encode())
    assert resp.status_code == 400 and '"stream" must be true or false' in resp.json()["error"]["message"]
    assert prefill.received == []
    assert metric_sum(scrape(f"{proxy.url}/metrics"), "proxy_requests_total", status="bad_request") == 1


def test_stream_null_means_not_streamed(pair):
    _, decode, proxy = pair
    resp = post(proxy.url, json.dumps({"model": "m", "prompt": "hi", "stream": None}).encode())
    assert resp.status_code == 200 and resp.json()["choices"][0]["text"] == "decode!"


@pytest.fixture
def never_accepting() -> Iterator[str]:
    """A loopback port whose accept queue is full: connects to it hang (SYNs are dropped) until they time out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    filler = socket.create_connection(server.getsockname())  # takes the one place in the queue
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        filler.close()
        server.close()


def test_a_connect_timeout_is_503_like_any_unreachable_instance(scripted, start_proxy, never_accepting):
    decode = scripted("decode")
    proxy = start_proxy("--prefill", never_accepting, "--decode", decode.url, "--connect-timeout", "0.5")
    started = time.monotonic()
    resp = post(proxy.url, json.dumps({"model": "m", "prompt": "hi", "stream": True}).encode())
    assert resp.status_code == 503, resp.text
    assert 0.4 < time.monotonic() - started < 3
    err = resp.json()["error"]
    assert err["hop"] == "prefill" and "cannot connect within the connect timeout" in err["message"]
    assert metric_sum(scrape(f"{proxy.url}/metrics"), "proxy_requests_total", status="prefill_error") == 1
    assert decode.received == []


def test_client_headers_reach_both_instances_and_never_the_logs(pair, tmp_path: Path):
    """The load generator's --api-key and --header through the proxy: prefill and decode both get them; hop-by-hop
    headers stay behind; neither the proxy's log nor the results files hold the key."""
    prefill, decode, proxy = pair
    out = tmp_path / "run"
    done = run_locust(proxy.url, out, "--api-key", SECRET, "--header", "X-Gateway-Tenant: team-a",
                      "--stop-timeout", "5", users=1, run_time="2s", locustfile="loadgen/disagg.py")
    assert done.returncode == 0, done.stderr[-3000:]
    assert prefill.received and decode.received
    for hop in prefill.received + decode.received:
        assert hop.headers["authorization"] == f"Bearer {SECRET}"
        assert hop.headers["x-gateway-tenant"] == "team-a"
    resp = requests.post(f"{proxy.url}/v1/completions", json={"model": "m", "prompt": "hi"}, timeout=10,
                         headers={"Authorization": f"Bearer {SECRET}", "X-Request-Id": "client-chosen",
                                  "Connection": "keep-alive, X-Hop", "X-Hop": "1", "Proxy-Authorization": "x"})
    assert resp.status_code == 200
    for hop in (prefill.received[-1], decode.received[-1]):
        assert hop.headers["x-request-id"] != "client-chosen"
        assert "x-hop" not in hop.headers and "proxy-authorization" not in hop.headers
    written = [proxy.log(), done.stdout, done.stderr, *(p.read_text(errors="replace") for p in out.rglob("*")
                                                       if p.is_file())]
    assert not any(SECRET in text for text in written)
