"""HTTP/1.1 on a plain socket: the request bytes, and a response decoder that runs after the bytes are in.

Our own client rather than requests/geventhttpclient so that the read loop is nothing but `recv`, a clock read
and an append (see timing.py); all framing is undone afterwards by `ResponseDecoder`.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit


class ProtocolError(ValueError):
    """The response bytes are not valid HTTP/1.1 framing."""


def request_bytes(url: str, body: dict, headers: dict[str, str] | None = None) -> bytes:
    """A POST of `body` as JSON that asks the server to close the connection when the response ends."""
    parts = urlsplit(url)
    payload = json.dumps(body).encode()
    head = [f"POST {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
            f"Host: {parts.netloc}", "Content-Type: application/json", "Accept: text/event-stream",
            f"Content-Length: {len(payload)}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload


class ResponseDecoder:
    """Incremental decoder: `feed(bytes)` returns the body bytes that piece completed.

    Knows chunked, Content-Length and close-delimited bodies. `complete` turns true when the body's framing says
    it ended (for close-delimited bodies it never does: only the caller knows the connection closed).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.complete = False
        self._state = "head"
        self._remaining = 0

    def feed(self, data: bytes) -> bytes:
        self._buf += data
        out = bytearray()
        while self._step(out):
            pass
        return bytes(out)

    def _step(self, out: bytearray) -> bool:
        """Advance by one framing element; False when more bytes are needed or the body is done."""
        buf, state = self._buf, self._state
        if state == "head":
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            self._parse_head(bytes(buf[:end]).decode("latin-1"))
            del buf[:end + 4]
            return True
        if state == "close":
            out += buf
            buf.clear()
            return False
        if state in ("length", "data"):
            take = min(self._remaining, len(buf))
            out += buf[:take]
            del buf[:take]
            self._remaining -= take
            if self._remaining:
                return False
            if state == "length":
                self._state, self.complete = "done", True
                return False
            self._state = "crlf"
            return True
        if state == "crlf":
            if len(buf) < 2:
                return False
            if buf[:2] != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
            del buf[:2]
            self._state = "size"
            return True
        if state in ("size", "trailer"):
            end = buf.find(b"\r\n")
            if end < 0:
                return False
            line = bytes(buf[:end])
            del buf[:end + 2]
            if state == "trailer":
                if not line:
                    self._state, self.complete = "done", True
                    return False
                return True
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {line[:20]!r}") from None
            self._state, self._remaining = ("trailer", 0) if size == 0 else ("data", size)
            return True
        return False  # done: anything after the body is ignored

    def _parse_head(self, head: str) -> None:
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {lines[0][:60]!r}")
        self.status = int(parts[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            self._state = "size"
        elif "content-length" in self.headers:
            self._remaining = int(self.headers["content-length"])
            self._state = "length" if self._remaining else "done"
            self.complete = not self._remaining
        else:
            self._state = "close"
