"""The hand-off protocol the proxy talks to, plus the pieces every connector family shares.

A hand-off decides which prefill and decode instance serve a request and what each hop is told, so the proxy's
HTTP handling stays the same whether vLLM moves the KV cache over NCCL (addresses in the request id) or through
`kv_transfer_params` (NIXL, ExampleConnector, ...).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Protocol, Sequence


class NoInstanceError(RuntimeError):
    """No prefill or no decode instance is known right now (the client gets a 503)."""


@dataclass(frozen=True)
class Route:
    """Where one request goes: base URLs of both hops and the request id both hops see."""

    prefill: str
    decode: str
    request_id: str


class Handoff(Protocol):
    """One connector family's way of pairing a prefill with a decode hop."""

    name: str

    async def start(self) -> None:
        """Open whatever the hand-off listens on (the p2p-nccl discovery socket); called before serving."""

    async def stop(self) -> None:
        """Close what `start` opened."""

    def instances(self) -> dict[str, list[str]]:
        """Base URLs currently usable, as {"prefill": [...], "decode": [...]}."""

    def route(self) -> Route:
        """The next (prefill, decode) pair, round-robin; raises NoInstanceError when a role has none."""

    def prefill_body(self, body: dict[str, Any], route: Route) -> dict[str, Any]:
        """The request the prefill hop gets (one token, not streamed)."""

    def decode_body(self, body: dict[str, Any], prefill_answer: dict[str, Any], route: Route) -> dict[str, Any]:
        """The request the decode hop gets, given the client's body and the prefill's JSON answer."""


def one_token_request(body: dict[str, Any]) -> dict[str, Any]:
    """The client's request cut to a single non-streamed token: enough for prefill to build the whole KV cache.

    `min_tokens` would contradict `max_tokens: 1`, so it is dropped for this hop only.
    """
    out = {k: v for k, v in body.items() if k not in ("stream_options", "min_tokens", "min_completion_tokens")}
    out["max_tokens"] = 1
    if "max_completion_tokens" in body:
        out["max_completion_tokens"] = 1
    out["stream"] = False
    return out


class RoundRobin:
    """Cycles over a fixed list of base URLs."""

    def __init__(self, urls: Sequence[str]) -> None:
        self.urls = list(urls)
        self._next = itertools.cycle(range(len(self.urls))) if self.urls else None

    def pick(self, role: str) -> str:
        if self._next is None:
            raise NoInstanceError(f"no {role} instance configured")
        return self.urls[next(self._next)]
