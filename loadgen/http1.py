"""HTTP/1.1 on a plain socket: the request bytes, the end-of-body watch the read loop keeps, and the decoding of
the recorded response once it is in.

Why our own socket and not Locust's clients: FastHttpUser's `iter_content` batches reads, so against a scripted
server sending 60 SSE events 10 ms apart it gave 10 timestamps and an ITL p50 of 60 ms. Our read loop
(timing.py) is nothing but `recv`, a clock read, an append and `BodyEnd`'s look at the framing; h11 builds the
request and, after the stream has ended, decodes the recorded bytes (status, headers, chunked or Content-Length
body), so no framing is parsed between a byte's arrival and its timestamp.
"""

from __future__ import annotations

import json
from typing import Callable
from urllib.parse import urlsplit

import h11

#: framing headers the client sets itself; a --header may not replace them
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})
#: the bytes that end a chunked body without trailers: the last chunk's CRLF, the zero-size chunk, the empty trailer
CHUNKED_END = b"\r\n0\r\n\r\n"


class ProtocolError(ValueError):
    """The response bytes are not valid HTTP/1.1 framing."""


def check_header(name: str, value: str) -> None:
    """Raise ValueError unless `name: value` is a header the client may add (valid, and not one that frames);
    the message never repeats the value, which may be a secret."""
    if name.lower() in FRAMING_HEADERS:
        raise ValueError(f"{name} is set by the client itself")
    try:
        h11.Request(method="POST", target="/", headers=[("Host", "x"), (name, value)])
    except h11.LocalProtocolError:
        raise ValueError("not a valid header name or value (CR, LF and NUL are not allowed)") from None


class Exchange:
    """One POST of a JSON body and its response, on h11: `request` is the bytes to send; `feed` the response bytes
    as they were recorded, to get back the body bytes each piece completed.

    `headers` are added to the request (Authorization, a gateway's headers); one named like a default (Host,
    Accept, Content-Type) replaces it. `complete` turns true when the body's framing says it ended; for a
    close-delimited body it never does: only the caller knows that the connection closed.
    """

    def __init__(self, url: str, body: dict, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        payload = json.dumps(body).encode()
        head = {"Host": parts.netloc, "Content-Type": "application/json", "Accept": "text/event-stream"}
        extra = headers or {}
        replaced = {name.lower() for name in extra}
        head = {k: v for k, v in head.items() if k.lower() not in replaced} | extra
        head |= {"Content-Length": str(len(payload)), "Connection": "close"}
        self._conn = h11.Connection(h11.CLIENT)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.request = (self._conn.send(h11.Request(method="POST", target=target, headers=list(head.items())))
                        + self._conn.send(h11.Data(data=payload)) + self._conn.send(h11.EndOfMessage()))
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.complete = False

    def feed(self, data: bytes) -> bytes:
        if self.complete:
            return b""  # anything after the body is ignored
        out = bytearray()
        self._conn.receive_data(data)
        try:
            while True:
                event = self._conn.next_event()
                if isinstance(event, h11.Response):
                    self.status = event.status_code
                    self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    out += event.data
                elif isinstance(event, h11.EndOfMessage):
                    self.complete = True
                    return bytes(out)
                elif event is h11.NEED_DATA or event is h11.PAUSED:
                    return bytes(out)
        except h11.RemoteProtocolError as exc:
            raise ProtocolError(str(exc)) from None


class BodyEnd:
    """Watches the bytes as the read loop receives them and says when the response body has ended, so a server
    that keeps the connection open after the response (ignoring `Connection: close`) does not hold the request
    until the timeout.

    The head is looked at once, when its end arrives (Transfer-Encoding, Content-Length); after that a read costs
    a subtraction (Content-Length) or a compare of its last bytes with `CHUNKED_END` (chunked). Only on that rare
    match are the bytes decoded in full, so a chunk whose own data happens to end like the terminator is never
    taken for the end. A close-delimited body, or a chunked one with trailers, ends when the server closes.
    """

    def __init__(self, pieces: list[tuple[float, bytes]]) -> None:
        self._pieces = pieces
        self._head = bytearray()
        self._remaining = 0
        self._tail = b""
        #: `feed(data)` is True once the body has ended (`data` already appended to the pieces); it is replaced by
        #: the check for the body's framing once the head is in, so a read pays for that check alone
        self.feed: Callable[[bytes], bool] = self._read_head

    def _read_head(self, data: bytes) -> bool:
        self._head += data
        while True:
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return False
            lines = bytes(self._head[:end]).decode("latin-1").split("\r\n")
            rest = bytes(self._head[end + 4:])
            status = lines[0].split(" ", 2)
            if len(status) > 1 and status[1].startswith("1") and len(status[1]) == 3:
                self._head = bytearray(rest)  # an interim response (100 Continue): the real head follows
                continue
            break
        fields = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
        self._head = bytearray()
        if "chunked" in fields.get("transfer-encoding", "").lower():
            self.feed, self._tail = self._chunked, b"\r\n"  # the head's last CRLF: an empty body ends right after it
            return bool(rest) and self.feed(rest)
        if fields.get("content-length", "").isdigit():
            self.feed, self._remaining = self._length, int(fields["content-length"])
            return self.feed(rest)
        self.feed = _close_delimited
        return False

    def _length(self, data: bytes) -> bool:
        self._remaining -= len(data)
        return self._remaining <= 0

    def _chunked(self, data: bytes) -> bool:
        tail = self._tail = data[-7:] if len(data) >= 7 else (self._tail + data)[-7:]
        return tail == CHUNKED_END and self._complete()

    def _complete(self) -> bool:
        decoder = Exchange("http://x/", {})
        try:
            for _, data in self._pieces:
                decoder.feed(data)
        except ProtocolError:
            return True  # malformed: nothing more will make it valid; the decoding afterwards says why
        return decoder.complete


def _close_delimited(data: bytes) -> bool:
    return False  # only the server closing the connection ends the body
