"""The SSE parser and the HTTP/1.1 response decoder, fed the same bytes split at every possible point."""

from __future__ import annotations

import pytest

from llm_dvfs.loadgen.http1 import ProtocolError, ResponseDecoder, request_bytes
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


def test_chunked_body_split_at_every_byte():
    raw = HEAD + chunked(STREAM, 7)
    for cut in range(1, len(raw)):
        d = ResponseDecoder()
        body = d.feed(raw[:cut]) + d.feed(raw[cut:])
        assert body == STREAM and d.complete and d.status == 200
        assert d.headers["x-prefill-seconds"] == "0.5"


def test_incomplete_chunked_body_is_not_complete():
    d = ResponseDecoder()
    d.feed(HEAD + chunked(STREAM, 7)[:-5])
    assert d.status == 200 and not d.complete


def test_content_length_and_close_delimited_bodies():
    d = ResponseDecoder()
    assert d.feed(b"HTTP/1.1 500 Oops\r\nContent-Length: 5\r\n\r\nhel") == b"hel"
    assert d.feed(b"lo extra") == b"lo" and d.complete and d.status == 500
    d = ResponseDecoder()
    assert d.feed(b"HTTP/1.0 200 OK\r\n\r\nabc") == b"abc" and not d.complete


@pytest.mark.parametrize("raw", [b"garbage\r\n\r\n", HEAD + b"zz\r\n", HEAD + b"3\r\nabcXY"])
def test_bad_framing_raises_protocol_error(raw):
    with pytest.raises(ProtocolError):
        ResponseDecoder().feed(raw)


def test_request_bytes():
    raw = request_bytes("http://127.0.0.1:8000/v1/completions", {"prompt": "hi"})
    head, body = raw.split(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:8000")
    assert b"Connection: close" in head and b"Content-Length: %d" % len(body) in head
