"""Server-sent events, parsed incrementally: a network read may end anywhere inside an event."""

from __future__ import annotations


class SseParser:
    """Feed body bytes as they came; get back the `data` payload of every event completed so far.

    Comment lines (`: ...`) and fields other than `data` are dropped; an event's data lines are joined by
    newlines, as the SSE spec says.
    """

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        self._buf += chunk
        events: list[str] = []
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                return events
            line, self._buf = self._buf[:end].rstrip(b"\r"), self._buf[end + 1:]
            if not line:
                if self._data:
                    events.append("\n".join(self._data))
                    self._data = []
            elif not line.startswith(b":"):
                field, _, value = line.partition(b":")
                if field == b"data":
                    self._data.append(value[1:].decode("utf-8", "replace") if value.startswith(b" ")
                                      else value.decode("utf-8", "replace"))

    @property
    def pending(self) -> bool:
        """True if bytes of an unfinished event are still buffered (the stream stopped inside an event)."""
        return bool(self._buf.strip()) or bool(self._data)
