"""p2p-nccl mode: instances register by real ZMQ pings (the msgpack P2pNcclConnector sends), requests carry both
ZMQ addresses in X-Request-Id to both hops, silent instances are dropped, and routing waits for registration."""

from __future__ import annotations

import re
import time

import msgpack
import pytest
import requests
import zmq

from tests.support import free_port, wait_until

from llm_dvfs.serving.proxy.handoff.base import NoInstanceError
from llm_dvfs.serving.proxy.handoff.p2p_nccl import InstanceRegistry

pytestmark = pytest.mark.timeout(60)

ID_RE = re.compile(r"^___prefill_addr_(?P<p>[\d.]+:\d+)___decode_addr_(?P<d>[\d.]+:\d+)_[0-9a-f]{32}$")


class Pinger:
    """A DEALER socket pinging like P2pNcclEngine.ping (identity = its zmq address)."""

    def __init__(self, ctx: zmq.Context, port: int, role: str, http: str, zmq_address: str) -> None:
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt_string(zmq.IDENTITY, zmq_address)
        self.sock.connect(f"tcp://127.0.0.1:{port}")
        self.message = msgpack.dumps({"type": role, "http_address": http, "zmq_address": zmq_address})

    def ping(self) -> None:
        self.sock.send(self.message)


@pytest.fixture
def zmq_ctx():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def completion(url: str, **extra) -> requests.Response:
    return requests.post(f"{url}/v1/completions", json={"model": "m", "prompt": "hi", "max_tokens": 8, **extra},
                         timeout=10)


def test_discovery_routing_and_request_ids(scripted, start_proxy, zmq_ctx):
    prefill, decode = scripted("prefill"), scripted("decode")
    port = free_port()
    proxy = start_proxy("--kv-protocol", "p2p-nccl", "--discovery-port", str(port))

    before = completion(proxy.url)
    assert before.status_code == 503 and "no prefill instance" in before.json()["error"]["message"]
    assert requests.get(f"{proxy.url}/health", timeout=10).status_code == 503

    p = Pinger(zmq_ctx, port, "P", prefill.address(), "127.0.0.1:21001")
    d = Pinger(zmq_ctx, port, "D", decode.address(), "127.0.0.1:22001")
    p.ping(), d.ping()
    assert wait_until(lambda: completion(proxy.url).status_code == 200, 10)
    assert requests.get(f"{proxy.url}/health", timeout=10).json()["status"] == "ok"

    resp = completion(proxy.url, stream=True)
    assert resp.status_code == 200 and resp.text.endswith("data: [DONE]\n\n")
    p_req, d_req = prefill.received[-1], decode.received[-1]
    rid = p_req.headers["x-request-id"]
    assert rid == d_req.headers["x-request-id"] == resp.headers["X-Request-Id"]
    match = ID_RE.match(rid)
    assert match and match["p"] == "127.0.0.1:21001" and match["d"] == "127.0.0.1:22001"
    assert p_req.body["max_tokens"] == 1 and p_req.body["stream"] is False and "kv_transfer_params" not in p_req.body
    assert d_req.body == {"model": "m", "prompt": "hi", "max_tokens": 8, "stream": True}


def test_silent_instance_is_dropped_after_ttl(scripted, start_proxy, zmq_ctx):
    prefill, decode = scripted("prefill"), scripted("decode")
    port = free_port()
    proxy = start_proxy("--kv-protocol", "p2p-nccl", "--discovery-port", str(port))
    p = Pinger(zmq_ctx, port, "P", prefill.address(), "127.0.0.1:21001")
    d = Pinger(zmq_ctx, port, "D", decode.address(), "127.0.0.1:22001")
    p.ping(), d.ping()
    assert wait_until(lambda: completion(proxy.url).status_code == 200, 10)
    # keep decode alive, let prefill fall silent
    deadline = time.monotonic() + 6.5
    while time.monotonic() < deadline:
        d.ping()
        time.sleep(0.5)
    gone = completion(proxy.url)
    assert gone.status_code == 503 and "no prefill instance" in gone.json()["error"]["message"]
    assert requests.get(f"{proxy.url}/health", timeout=10).json()["prefill"] == {}
    p.ping()
    assert wait_until(lambda: completion(proxy.url).status_code == 200, 10)


def test_allowlist_and_malformed_pings(scripted, start_proxy, zmq_ctx):
    prefill, decode, stranger = scripted("prefill"), scripted("decode"), scripted("stranger")
    port = free_port()
    proxy = start_proxy("--kv-protocol", "p2p-nccl", "--discovery-port", str(port),
                        "--prefill", prefill.url, "--decode", decode.url)
    bad = zmq_ctx.socket(zmq.DEALER)
    bad.setsockopt(zmq.LINGER, 0)
    bad.connect(f"tcp://127.0.0.1:{port}")
    bad.send(b"\xc1 not msgpack")
    bad.send(msgpack.dumps({"type": "X", "http_address": "a", "zmq_address": "b"}))
    pingers = [Pinger(zmq_ctx, port, "P", stranger.address(), "127.0.0.1:29999")]
    pingers[0].ping()
    time.sleep(0.5)
    assert completion(proxy.url).status_code == 503
    pingers += [Pinger(zmq_ctx, port, "P", prefill.address(), "127.0.0.1:21001"),
                Pinger(zmq_ctx, port, "D", decode.address(), "127.0.0.1:22001")]
    pingers[1].ping(), pingers[2].ping()
    assert wait_until(lambda: completion(proxy.url).status_code == 200, 10)
    assert stranger.received == []
    assert "not in --prefill/--decode" in proxy.log()


def test_registry_round_robin_and_expiry_with_scripted_clock():
    now = [0.0]
    reg = InstanceRegistry(ttl=5.0, clock=lambda: now[0])
    for i in (1, 2):
        assert reg.ping({"type": "D", "http_address": f"h:{i}", "zmq_address": f"z:{i}"})
    assert [reg.pick("decode").http_address for _ in range(4)] == ["h:1", "h:2", "h:1", "h:2"]
    now[0] = 4.0
    reg.ping({"type": "D", "http_address": "h:2", "zmq_address": "z:2"})
    now[0] = 5.5
    assert [i.http_address for i in reg.alive("decode")] == ["h:2"]
    now[0] = 20.0
    with pytest.raises(NoInstanceError):
        reg.pick("decode")
    assert not reg.ping(["not", "a", "map"])
    assert not reg.ping({"type": "P", "http_address": 3, "zmq_address": "z"})
