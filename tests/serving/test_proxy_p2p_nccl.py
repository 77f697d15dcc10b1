"""p2p-nccl mode: instances register by real ZMQ pings (the msgpack P2pNcclConnector sends), requests carry both
ZMQ addresses in X-Request-Id to both hops, silent instances are dropped, and routing waits for registration."""

from __future__ import annotations

import re
import time

import msgpack
import psutil
import pytest
import requests
import zmq

from tests.support import free_port, wait_until

from llm_dvfs.serving.proxy.handoff.base import NoInstanceError
from llm_dvfs.serving.proxy.handoff.p2p_nccl import InstanceRegistry
from tests.serving.proxy_process import ProxyProcess

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


def raw_sender(ctx: zmq.Context, port: int) -> zmq.Socket:
    """A DEALER connected to the discovery port, for sending what no instance would."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{port}")
    return sock


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
    bad = raw_sender(zmq_ctx, port)
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
        assert reg.ping({"type": "D", "http_address": f"h:{i}", "zmq_address": f"h:2{i}"})
    assert [reg.pick("decode").http_address for _ in range(4)] == ["h:1", "h:2", "h:1", "h:2"]
    now[0] = 4.0
    reg.ping({"type": "D", "http_address": "h:2", "zmq_address": "h:22"})
    now[0] = 5.5
    assert [i.http_address for i in reg.alive("decode")] == ["h:2"]
    now[0] = 20.0
    with pytest.raises(NoInstanceError):
        reg.pick("decode")
    assert not reg.ping(["not", "a", "map"])
    assert not reg.ping({"type": "P", "http_address": 3, "zmq_address": "z"})


def test_registry_pins_zmq_to_the_http_host_and_pairing_and_caps_its_size():
    now = [0.0]
    reg = InstanceRegistry(ttl=5.0, clock=lambda: now[0], allowed=["10.0.0.1:8100", "10.0.0.2:8200"],
                           max_instances=64)
    # an allowed HTTP address paired with another host's ZMQ endpoint is refused
    assert not reg.ping({"type": "P", "http_address": "10.0.0.1:8100", "zmq_address": "10.9.9.9:21001"})
    assert reg.ping({"type": "P", "http_address": "10.0.0.1:8100", "zmq_address": "10.0.0.1:21001"})
    # while it is alive, neither half of the pairing can be taken over
    assert not reg.ping({"type": "P", "http_address": "10.0.0.1:8100", "zmq_address": "10.0.0.1:29999"})
    assert [i.zmq_address for i in reg.alive("prefill")] == ["10.0.0.1:21001"]
    now[0] = 6.0  # silent past the ttl: a restarted instance may come back on another port
    assert reg.ping({"type": "P", "http_address": "10.0.0.1:8100", "zmq_address": "10.0.0.1:29999"})
    assert [i.zmq_address for i in reg.alive("prefill")] == ["10.0.0.1:29999"]

    capped = InstanceRegistry(ttl=5.0, clock=lambda: now[0], max_instances=2)
    for port in (1, 2, 3):
        capped.ping({"type": "D", "http_address": f"127.0.0.1:{8200 + port}", "zmq_address": f"127.0.0.1:{22000 + port}"})
    assert [i.http_address for i in capped.alive("decode")] == ["127.0.0.1:8201", "127.0.0.1:8202"]
    assert capped.ping({"type": "D", "http_address": "127.0.0.1:8201", "zmq_address": "127.0.0.1:22001"})  # refresh
    assert not capped.ping({"type": "D", "http_address": "127.0.0.1:8203", "zmq_address": "127.0.0.1:22002"})


def test_a_foreign_zmq_host_is_refused_over_real_zmq(scripted, start_proxy, zmq_ctx):
    """With the allowlist, a ping pairing prefill's allowed HTTP address with another host's ZMQ address never
    reaches a request id (which vLLM would send the KV cache to); an oversized message is dropped, not parsed."""
    prefill, decode = scripted("prefill"), scripted("decode")
    port = free_port()
    proxy = start_proxy("--kv-protocol", "p2p-nccl", "--discovery-port", str(port),
                        "--prefill", prefill.url, "--decode", decode.url)
    flood = raw_sender(zmq_ctx, port)
    flood.send(b"\x00" * 100_000)
    pingers = [Pinger(zmq_ctx, port, "P", prefill.address(), "192.0.2.7:21001"),
               Pinger(zmq_ctx, port, "D", decode.address(), "127.0.0.1:22001")]
    pingers[0].ping(), pingers[1].ping()
    assert wait_until(lambda: "on another host" in proxy.log(), 10), proxy.log()
    refused = completion(proxy.url)
    assert refused.status_code == 503 and "no prefill instance" in refused.json()["error"]["message"]
    assert prefill.received == []
    pingers.append(Pinger(zmq_ctx, port, "P", prefill.address(), "127.0.0.1:21001"))
    pingers[2].ping()
    assert wait_until(lambda: completion(proxy.url).status_code == 200, 10)
    assert "192.0.2.7" not in prefill.received[-1].headers["x-request-id"]


def test_discovery_binds_loopback_even_when_http_listens_on_another_address(tmp_path):
    """--listen-address no longer moves the discovery port: it stays on 127.0.0.1 unless --discovery-address says
    otherwise (127.0.0.2 is loopback too, so the test still binds loopback only)."""
    port = free_port()
    proxy = ProxyProcess(["--kv-protocol", "p2p-nccl", "--discovery-port", str(port), "--listen-address",
                          "127.0.0.2"], tmp_path / "proxy.log")
    try:
        assert proxy.proc is not None

        def listening() -> set[tuple[str, int]]:
            return {(c.laddr.ip, c.laddr.port) for c in psutil.Process(proxy.proc.pid).net_connections("tcp")
                    if c.status == psutil.CONN_LISTEN}
        assert wait_until(lambda: ("127.0.0.2", proxy.port) in listening(), 30), proxy.log()
        assert ("127.0.0.1", port) in listening() and ("127.0.0.2", port) not in listening()
    finally:
        proxy.stop()
