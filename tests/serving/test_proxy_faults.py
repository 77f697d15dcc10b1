"""Faults between the proxy and its instances: every one ends quickly in a JSON error (before the stream) or an SSE
error event (during it), a client that leaves cancels the upstream work, and nothing hangs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.support import free_port, metric_sum, scrape, wait_until

pytestmark = pytest.mark.timeout(60)

HERE = Path(__file__).resolve().parent


def post(url: str, stream: bool = False, timeout: float = 10) -> requests.Response:
    return requests.post(f"{url}/v1/completions", json={"model": "m", "prompt": "hi", "max_tokens": 50,
                                                        "stream": stream}, timeout=timeout)


def test_instance_down_is_a_quick_503(scripted, start_proxy):
    decode = scripted("decode")
    proxy = start_proxy("--prefill", f"http://127.0.0.1:{free_port()}", "--decode", decode.url)
    started = time.monotonic()
    resp = post(proxy.url)
    assert time.monotonic() - started < 2
    assert resp.status_code == 503
    err = resp.json()["error"]
    assert err["hop"] == "prefill" and "cannot connect" in err["message"]
    assert decode.received == []

    prefill = scripted("prefill")
    proxy = start_proxy("--prefill", prefill.url, "--decode", f"http://127.0.0.1:{free_port()}")
    resp = post(proxy.url, stream=True)
    assert resp.status_code == 503 and resp.json()["error"]["hop"] == "decode"
    assert metric_sum(scrape(f"{proxy.url}/metrics"), "proxy_requests_total", status="decode_error") == 1


@pytest.mark.parametrize("hop", ["prefill", "decode"])
def test_instance_error_answers_become_502_and_4xx_pass_through(scripted, start_proxy, hop):
    prefill, decode = scripted("prefill"), scripted("decode")
    proxy = start_proxy("--prefill", prefill.url, "--decode", decode.url)
    failing = prefill if hop == "prefill" else decode
    failing.script.mode = "error"
    resp = post(proxy.url, stream=True)
    assert resp.status_code == 502
    assert resp.json()["error"]["hop"] == hop and f"{hop} exploded" in resp.json()["error"]["message"]
    failing.script.mode = "reject"
    resp = post(proxy.url)
    assert resp.status_code == 400 and "bad prompt" in resp.json()["error"]["message"]
    m = scrape(f"{proxy.url}/metrics")
    assert metric_sum(m, "proxy_requests_total", status=f"{hop}_error") == 1
    assert metric_sum(m, "proxy_requests_total", status="bad_request") == 1


def test_decode_reset_mid_stream_ends_with_error_event(scripted, start_proxy):
    prefill, decode = scripted("prefill"), scripted("decode")
    decode.script.mode = "reset"
    proxy = start_proxy("--prefill", prefill.url, "--decode", decode.url)
    resp = post(proxy.url, stream=True)
    assert resp.status_code == 200
    events = [line[6:] for line in resp.text.splitlines() if line.startswith("data: ")]
    assert [json.loads(e)["choices"][0]["text"] for e in events[:2]] == ["t0 ", "t1 "]
    error = json.loads(events[2])["error"]
    assert error["hop"] == "decode" and error["code"] == 502
    assert events[3] == "[DONE]"
    assert metric_sum(scrape(f"{proxy.url}/metrics"), "proxy_requests_total", status="decode_error") == 1


def test_prefill_killed_mid_request(start_proxy, scripted):
    """A real prefill process SIGKILLed while it holds the request: 502 at once, then 503 while it stays down."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "scripted_vllm.py"), "--port", str(port), "--delay", "30"])
    try:
        assert wait_until(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 15)
        decode = scripted("decode")
        proxy = start_proxy("--prefill", f"http://127.0.0.1:{port}", "--decode", decode.url)
        threading.Timer(1.0, proc.kill).start()
        started = time.monotonic()
        resp = post(proxy.url, stream=True, timeout=20)
        assert 0.8 < time.monotonic() - started < 5
        assert resp.status_code == 502 and resp.json()["error"]["hop"] == "prefill"
        assert post(proxy.url).status_code == 503
        assert decode.received == []
    finally:
        proc.kill()
        proc.wait()


def test_timeouts_answer_504(scripted, start_proxy):
    prefill, decode = scripted("prefill"), scripted("decode")
    proxy = start_proxy("--prefill", prefill.url, "--decode", decode.url, "--prefill-timeout", "0.5",
                        "--decode-timeout", "0.5")
    prefill.script.delay = 3
    started = time.monotonic()
    resp = post(proxy.url)
    assert resp.status_code == 504 and time.monotonic() - started < 2.5
    assert prefill.wait_cancelled(1)
    prefill.script.delay = 0
    decode.script.chunk_delay = 2   # a stalled stream: first chunk, then silence
    resp = post(proxy.url, stream=True)
    assert resp.status_code == 200
    error = json.loads(resp.text.split("data: ")[2])["error"]
    assert error["code"] == 504
    assert metric_sum(scrape(f"{proxy.url}/metrics"), "proxy_requests_total", status="timeout") == 2


def raw_request(port: int, body: dict, read_until: bytes | None) -> socket.socket:
    """Send a request on a plain socket, optionally read until `read_until` appears, and return the socket."""
    payload = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
    seen = b""
    while read_until is not None and read_until not in seen:
        seen += sock.recv(4096)
    return sock


def test_client_disconnect_mid_stream_cancels_decode(scripted, start_proxy):
    prefill, decode = scripted("prefill"), scripted("decode")
    decode.script.chunks, decode.script.chunk_delay = 200, 0.05
    proxy = start_proxy("--prefill", prefill.url, "--decode", decode.url)
    sock = raw_request(proxy.port, {"prompt": "x", "stream": True}, read_until=b"t1 ")
    sock.close()
    assert decode.wait_cancelled(1), "decode kept generating for a client that left"
    assert wait_until(lambda: metric_sum(scrape(f"{proxy.url}/metrics"), "proxy_requests_total",
                                         status="cancelled") == 1, 5)


def test_client_disconnect_during_prefill_cancels_prefill(scripted, start_proxy):
    prefill, decode = scripted("prefill"), scripted("decode")
    prefill.script.delay = 20
    proxy = start_proxy("--prefill", prefill.url, "--decode", decode.url)
    sock = raw_request(proxy.port, {"prompt": "x", "stream": True}, read_until=None)
    assert wait_until(lambda: len(prefill.received) == 1, 5)
    sock.close()
    assert prefill.wait_cancelled(1), "prefill kept working for a client that left"
    assert decode.received == []
