"""The two HTTP hops to vLLM, with every failure turned into an UpstreamError that says which hop and why.

Timeouts: `connect` bounds reaching an instance (a dead one fails fast), `prefill` bounds the whole prefill hop,
`decode` bounds the silence between two pieces of the decode answer (a stream may last long, but not stall).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Mapping

import aiohttp


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    prefill: float = 600.0
    decode: float = 600.0


class UpstreamError(Exception):
    """A hop failed. `kind`: "unreachable" (503), "timeout" (504), "error" (5xx answer or broken connection: 502),
    "rejected" (the instance answered 4xx: passed on with its status)."""

    def __init__(self, hop: str, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{hop}: {message}")
        self.hop, self.kind, self.message, self.upstream_status = hop, kind, message, status

    @property
    def http_status(self) -> int:
        if self.kind == "rejected" and self.upstream_status is not None:
            return self.upstream_status
        return {"unreachable": 503, "timeout": 504}.get(self.kind, 502)


def _error_message(raw: bytes) -> str:
    """vLLM's error text from an error body (`{"error": {"message": ...}}`), else the body's start."""
    try:
        data = json.loads(raw)
        err = data.get("error", data) if isinstance(data, dict) else data
        return str(err.get("message", err)) if isinstance(err, dict) else str(err)
    except ValueError:
        return raw[:500].decode(errors="replace")


def translate(hop: str, exc: BaseException) -> UpstreamError:
    """aiohttp/asyncio exceptions as UpstreamErrors."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # before the general timeout: the instance is unreachable
        return UpstreamError(hop, "unreachable", "cannot connect within the connect timeout")
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamError(hop, "timeout", f"no answer within the {hop} timeout")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamError(hop, "unreachable", f"cannot connect: {exc.os_error or exc}")
    return UpstreamError(hop, "error", f"connection failed: {type(exc).__name__}: {exc}")


class Upstream:
    """Shared aiohttp session for both hops; no connection limit, since streams are long-lived."""

    def __init__(self, timeouts: Timeouts) -> None:
        self.timeouts = timeouts
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def prefill(self, url: str, body: dict[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
        """POST the prefill request and return its JSON answer."""
        assert self.session is not None
        timeout = aiohttp.ClientTimeout(total=self.timeouts.prefill, sock_connect=self.timeouts.connect)
        try:
            async with self.session.post(url, json=body, headers=headers, timeout=timeout) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    kind = "rejected" if resp.status < 500 else "error"
                    raise UpstreamError("prefill", kind, f"HTTP {resp.status}: {_error_message(raw)}", resp.status)
                answer = json.loads(raw)
        except ValueError as exc:
            raise UpstreamError("prefill", "error", f"answer is not JSON: {exc}") from exc
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise translate("prefill", exc) from exc
        if not isinstance(answer, dict):
            raise UpstreamError("prefill", "error", "answer is not a JSON object")
        return answer

    async def open_decode(self, url: str, body: dict[str, Any], headers: Mapping[str, str]) -> aiohttp.ClientResponse:
        """POST the decode request and return the response once its status is in; the caller reads and closes it."""
        assert self.session is not None
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeouts.connect, sock_read=self.timeouts.decode)
        try:
            resp = await self.session.post(url, json=body, headers=headers, timeout=timeout)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise translate("decode", exc) from exc
        if resp.status >= 400:
            try:
                raw = await resp.read()
            except (aiohttp.ClientError, asyncio.TimeoutError):
                raw = b""
            finally:
                resp.close()
            kind = "rejected" if resp.status < 500 else "error"
            raise UpstreamError("decode", kind, f"HTTP {resp.status}: {_error_message(raw)}", resp.status)
        return resp

    async def get(self, url: str, hop: str, timeout: float) -> tuple[int, bytes, str]:
        """A short GET (health, models): status, body and content type."""
        assert self.session is not None
        try:
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                return resp.status, await resp.read(), resp.content_type
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise translate(hop, exc) from exc
