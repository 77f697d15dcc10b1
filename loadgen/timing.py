"""When things happened, and what TTFT, ITL, TPOT and E2EL mean (the definitions of `vllm bench serve`).

`read_response` is the hot loop: it calls `recv`, reads the monotonic clock, appends, and lets `BodyEnd` look at
the framing (a byte count or the last bytes of the read), so that no parsing sits between a byte's arrival and
its timestamp. Everything else here is arithmetic on the timestamps it kept.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Callable

from llm_dvfs.loadgen.http1 import BodyEnd

Clock = Callable[[], float]


def read_response(sock: socket.socket, deadline: float, pieces: list[tuple[float, bytes]],
                  clock: Clock = time.perf_counter) -> str | None:
    """Append every (arrival time, bytes) read from `sock` to `pieces` until the response body ends or the peer
    closes; return why it stopped early, if it did. `pieces` is the caller's, so what arrived before the
    request was cancelled from outside (the test stopped) is still there."""
    append, recv, body_end = pieces.append, sock.recv, BodyEnd(pieces)
    try:
        while True:
            data = recv(65536)
            now = clock()
            if not data:
                return None
            append((now, data))
            if body_end.feed(data):
                return None
            if now > deadline:
                return "timeout"
    except socket.timeout:
        return "timeout"
    except OSError as exc:
        return f"connection_error: {exc.__class__.__name__}"


@dataclass(frozen=True)
class TokenTiming:
    """Per-request latencies in seconds, from the send time and the arrival times of token-bearing chunks."""

    ttft: float
    itl: list[float]
    e2el: float

    @classmethod
    def from_arrivals(cls, sent: float, arrivals: list[float]) -> "TokenTiming":
        """TTFT to the first token chunk, ITL between consecutive ones, E2EL to the last one."""
        if not arrivals:
            raise ValueError("no token-bearing chunk arrived")
        return cls(ttft=arrivals[0] - sent, itl=[b - a for a, b in zip(arrivals, arrivals[1:])],
                   e2el=arrivals[-1] - sent)

    def tpot(self, output_tokens: int) -> float | None:
        """Time per output token after the first: (E2EL − TTFT) / (tokens − 1); undefined for one token."""
        return (self.e2el - self.ttft) / (output_tokens - 1) if output_tokens > 1 else None
