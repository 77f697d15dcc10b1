"""Which client request headers the proxy passes on to both instances.

Everything end to end goes (the client's `Authorization`, a gateway's own headers, tracing ids), so an endpoint
that wants a key works behind the proxy as it does without it. What stays behind: hop-by-hop headers (RFC 9110
7.6.1, and any the client's `Connection` names), what aiohttp sets for the body it sends (Host, Content-Length,
Content-Type), `Accept-Encoding` (the proxy parses prefill's JSON and relays decode's bytes untouched, so the
instances must answer uncompressed), and `X-Request-Id`, which the proxy sets itself. Header values are never
logged.
"""

from __future__ import annotations

from typing import Iterable

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "trailers", "transfer-encoding", "upgrade"})
SET_BY_PROXY = frozenset({"host", "content-length", "content-type", "accept-encoding", "expect", "x-request-id"})


def forwarded(headers: Iterable[tuple[str, str]], request_id: str) -> dict[str, str]:
    """The headers for one hop: the client's end-to-end ones plus the proxy's `X-Request-Id`."""
    items = list(headers)
    named_by_connection = {token.strip().lower() for name, value in items if name.lower() == "connection"
                           for token in value.split(",")}
    dropped = HOP_BY_HOP | SET_BY_PROXY | named_by_connection
    out: dict[str, str] = {}
    for name, value in items:
        if name.lower() in dropped:
            continue
        out[name] = f"{out[name]}, {value}" if name in out else value
    out["X-Request-Id"] = request_id
    return out
