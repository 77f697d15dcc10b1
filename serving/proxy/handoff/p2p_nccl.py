"""Hand-off for vLLM <= 0.23's P2pNcclConnector: KV goes over NCCL, addressed through the request id.

Each vLLM instance pings the proxy's ZMQ discovery endpoint every few seconds with a msgpack map
`{"type": "P"|"D", "http_address": "host:port", "zmq_address": "host:port"}`. The proxy routes only to instances
heard from in the last `ttl` seconds and names the pair in `X-Request-Id`
(`___prefill_addr_{p_zmq}___decode_addr_{d_zmq}_{uuid}`), which both instances parse to find each other; the
instances need `VLLM_DISABLE_REQUEST_ID_RANDOMIZATION=1` so the id reaches the connector unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

import msgpack
import zmq
import zmq.asyncio

from llm_dvfs.serving.proxy.handoff.base import NoInstanceError, Route, one_token_request

log = logging.getLogger(__name__)

ROLES = {"P": "prefill", "D": "decode"}
MAX_INSTANCES = 64  # per role; a real deployment has a handful
MAX_PING_BYTES = 4096  # a ping is a ~100-byte msgpack map


@dataclass
class Instance:
    http_address: str
    zmq_address: str
    last_seen: float


def _host(address: str) -> str:
    """The host of a "host:port" (IPv6 in brackets or not); "" when there is no port."""
    host, sep, port = address.rpartition(":")
    return host.strip("[]") if sep and host and port.isdigit() else ""


class InstanceRegistry:
    """Instances by role, keyed by HTTP address, forgotten `ttl` seconds after their last ping; round-robin.

    A ping only says where to send prompts (HTTP) and where the peer's KV goes (ZMQ, handed to vLLM in the request
    id), so both are checked before they are believed:
    - `allowed` (host:port strings), when given, limits registration to those HTTP addresses;
    - the ZMQ address must be on the same host as the HTTP address: an allowed HTTP address cannot be paired with
      a foreign host's ZMQ endpoint;
    - while an instance is alive its pairing is pinned: a ping for its HTTP address with another ZMQ address, or
      for its ZMQ address with another HTTP address, is refused until it has been silent for `ttl`;
    - at most `max_instances` per role, so a flood of pings cannot grow the registry without bound.
    """

    def __init__(self, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 allowed: Iterable[str] | None = None, max_instances: int = MAX_INSTANCES) -> None:
        self.ttl, self.clock, self.max_instances = ttl, clock, max_instances
        self.allowed = set(allowed) if allowed else None
        self._by_role: dict[str, dict[str, Instance]] = {"prefill": {}, "decode": {}}
        self._turn = {"prefill": 0, "decode": 0}

    def ping(self, message: Any) -> bool:
        """Register or refresh one instance from a decoded ping; False (and a log line) for refused ones."""
        if not isinstance(message, dict):
            log.warning("ignoring discovery message that is not a map: %r", message)
            return False
        role = ROLES.get(message.get("type"))
        http, zmq_addr = message.get("http_address"), message.get("zmq_address")
        if role is None or not isinstance(http, str) or not isinstance(zmq_addr, str) or not _host(http) \
                or not _host(zmq_addr):
            log.warning("ignoring malformed discovery message: %r", message)
            return False
        if self.allowed is not None and http not in self.allowed:
            log.warning("ignoring %s instance %s: not in --prefill/--decode", role, http)
            return False
        if _host(zmq_addr) != _host(http):
            log.warning("ignoring %s instance %s: its zmq address %s is on another host", role, http, zmq_addr)
            return False
        pool = self._live(role)
        known = pool.get(http)
        if known is not None and known.zmq_address != zmq_addr:
            log.warning("ignoring %s instance %s: registered with zmq %s, not %s", role, http, known.zmq_address,
                        zmq_addr)
            return False
        if any(inst.zmq_address == zmq_addr and key != http for key, inst in pool.items()):
            log.warning("ignoring %s instance %s: zmq %s belongs to another instance", role, http, zmq_addr)
            return False
        if known is None:
            if len(pool) >= self.max_instances:
                log.warning("ignoring %s instance %s: %d %s instances registered already", role, http,
                            self.max_instances, role)
                return False
            log.info("registered %s instance http=%s zmq=%s", role, http, zmq_addr)
        pool[http] = Instance(http, zmq_addr, self.clock())
        return True

    def _live(self, role: str) -> dict[str, Instance]:
        """The instances of `role` heard from within `ttl`, by HTTP address; forgets the others."""
        now = self.clock()
        pool = self._by_role[role]
        for key in [k for k, inst in pool.items() if now - inst.last_seen > self.ttl]:
            log.info("dropped %s instance %s: silent for more than %.0f s", role, key, self.ttl)
            del pool[key]
        return pool

    def alive(self, role: str) -> list[Instance]:
        """Instances of `role` heard from within `ttl`, in a stable order."""
        return sorted(self._live(role).values(), key=lambda inst: inst.http_address)

    def pick(self, role: str) -> Instance:
        alive = self.alive(role)
        if not alive:
            raise NoInstanceError(f"no {role} instance has pinged the discovery endpoint in the last {self.ttl:.0f} s")
        turn = self._turn[role]
        self._turn[role] = turn + 1
        return alive[turn % len(alive)]


def request_id(prefill_zmq: str, decode_zmq: str) -> str:
    """The id P2pNcclConnector parses to find its peer."""
    return f"___prefill_addr_{prefill_zmq}___decode_addr_{decode_zmq}_{uuid.uuid4().hex}"


def host_port(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


class P2pNcclHandoff:
    name = "p2p-nccl"

    def __init__(self, listen_address: str, discovery_port: int, registry: InstanceRegistry | None = None) -> None:
        self.ipv6 = ":" in listen_address
        self.endpoint = f"tcp://[{listen_address}]:{discovery_port}" if self.ipv6 \
            else f"tcp://{listen_address}:{discovery_port}"
        self.registry = registry or InstanceRegistry()
        self._ctx: zmq.asyncio.Context | None = None
        self._socket: zmq.asyncio.Socket | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._ctx = zmq.asyncio.Context()
        self._socket = self._ctx.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_PING_BYTES)  # a larger message drops its sender's connection
        self._socket.setsockopt(zmq.IPV6, int(self.ipv6))
        self._socket.bind(self.endpoint)
        self._task = asyncio.create_task(self._listen())
        log.info("p2p-nccl discovery listening on %s", self.endpoint)

    async def _listen(self) -> None:
        assert self._socket is not None
        while True:
            frames = await self._socket.recv_multipart()
            try:
                message = msgpack.unpackb(frames[-1], raw=False)
            except Exception as exc:  # anything on the wire: one bad sender must not stop discovery
                log.warning("ignoring undecodable discovery message: %r", exc)
                continue
            self.registry.ping(message)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._socket is not None:
            self._socket.close()
        if self._ctx is not None:
            self._ctx.term()

    def instances(self) -> dict[str, list[str]]:
        return {role: [f"http://{inst.http_address}" for inst in self.registry.alive(role)]
                for role in ("prefill", "decode")}

    def route(self) -> Route:
        prefill, decode = self.registry.pick("prefill"), self.registry.pick("decode")
        return Route(f"http://{prefill.http_address}", f"http://{decode.http_address}",
                     request_id(prefill.zmq_address, decode.zmq_address))

    def prefill_body(self, body: dict[str, Any], route: Route) -> dict[str, Any]:
        return one_token_request(body)

    def decode_body(self, body: dict[str, Any], prefill_answer: dict[str, Any], route: Route) -> dict[str, Any]:
        return dict(body)
