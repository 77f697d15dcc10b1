"""The SSE parser, the HTTP/1.1 response decoder and the read loop's end-of-body watch, fed the same bytes split
at every possible point."""

from __future__ import annotations

import pytest

from llm_dvfs.loadgen.http1 import BodyEnd, Exchange, ProtocolError, check_header
from llm_dvfs.loadgen.sse import SseParser

STREAM = (b": ping\n\ndata: {\"a\": 1}\n\n"
          b"event: x\r\ndata: line one\r\ndata: line two\r\n\r\n"
          b": comment only\n\n"
          b"data:[DONE]\n\n")
EVENTS = ['{"a": 1}', "line one\nline two", "[DONE]"]


def test_sse_events_whole_and_split_anywhere():
    assert SseParser().feed(STREAM) == EVENTS
    for cut in range(1, len(STREAM)):
        p = SseParser()
        assert p.feed(STREAM[:cut]) + p.feed(STREAM[cut:]) == EVENTS
        assert not p.pending


def test_sse_pending_when_stream_stops_inside_an_event():
    p = SseParser()
    assert p.feed(b"data: {\"partial\":") == []
    assert p.pending


def chunked(body: bytes, size: int) -> bytes:
    parts = [body[i:i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Prefill-Seconds: 0.5\r\n\r\n"
URL = "http://127.0.0.1:8000/v1/completions"


def decoder() -> Exchange:
    """An exchange whose request is never sent: its response half decodes the bytes fed to it."""
    return Exchange(URL, {"prompt": "hi"})


def test_chunked_body_split_at_every_byte():
    raw = HEAD + chunked(STREAM, 7)
    for cut in range(1, len(raw)):
        d = decoder()
        body = d.feed(raw[:cut]) + d.feed(raw[cut:])
        assert body == STREAM and d.complete and d.status == 200
        assert d.headers["x-prefill-seconds"] == "0.5"


def test_incomplete_chunked_body_is_not_complete():
    d = decoder()
    d.feed(HEAD + chunked(STREAM, 7)[:-5])
    assert d.status == 200 and not d.complete


def test_content_length_and_close_delimited_bodies():
    d = decoder()
    assert d.feed(b"HTTP/1.1 500 Oops\r\nContent-Length: 5\r\n\r\nhel") == b"hel"
    assert d.feed(b"lo extra") == b"lo" and d.complete and d.status == 500
    d = decoder()
    assert d.feed(b"HTTP/1.0 200 OK\r\n\r\nabc") == b"abc" and not d.complete


@pytest.mark.parametrize("raw", [b"garbage\r\n\r\n", HEAD + b"zz\r\n", HEAD + b"3\r\nabcXY"])
def test_bad_framing_raises_protocol_error(raw):
    with pytest.raises(ProtocolError):
        decoder().feed(raw)


def test_request_bytes():
    raw = Exchange(URL, {"prompt": "hi"}, {"Authorization": "Bearer k", "host": "gateway"}).request
    head, body = raw.split(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/completions HTTP/1.1\r\n")
    assert b"Connection: close" in head and b"Content-Length: %d" % len(body) in head
    assert b"Authorization: Bearer k" in head and b"host: gateway" in head and b"127.0.0.1" not in head


@pytest.mark.parametrize("name, value", [("Content-Length", "5"), ("connection", "keep-alive"), ("X Y", "1"),
                                         ("X-A", "a\r\nInjected: 1")])
def test_headers_that_may_not_be_added(name, value):
    with pytest.raises(ValueError):
        check_header(name, value)


def ends_at(raw: bytes, cut: int) -> int | None:
    """Feed `raw` in two reads cut at `cut`; the read (1 or 2) after which BodyEnd says the body ended."""
    pieces: list = []
    end = BodyEnd(pieces)
    for n, data in enumerate((raw[:cut], raw[cut:]), 1):
        pieces.append((0.0, data))
        if data and end.feed(data):
            return n
    return None


@pytest.mark.parametrize("raw", [
    HEAD + chunked(STREAM, 7),
    HEAD + b"0\r\n\r\n",  # an empty chunked body
    HEAD + chunked(b"data: 1\r\n0\r\n", 100),  # a chunk's own data ends like the terminator
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Oops\r\nContent-Length: 5\r\n\r\nhello",
], ids=["chunked", "empty", "terminator_inside", "interim_then_length"])
def test_body_end_is_seen_at_the_last_byte_and_never_before(raw):
    for cut in range(1, len(raw)):
        assert ends_at(raw, cut) == 2, cut  # never after the first part: it lacks the last byte
    assert ends_at(raw, len(raw)) == 1


def test_body_end_waits_for_the_close_without_framing():
    assert ends_at(b"HTTP/1.0 200 OK\r\n\r\nabc", 10) is None
