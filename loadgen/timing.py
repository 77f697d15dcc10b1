"""When things happened, and what TTFT, ITL, TPOT and E2EL mean (the definitions of `vllm bench serve`).

`read_until_closed` is the hot loop: it only calls `recv`, reads the monotonic clock and appends, so that no
parsing ever sits between a byte's arrival and its timestamp. Everything else here is arithmetic on the
timestamps it kept.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Callable

Clock = Callable[[], float]


def read_until_closed(sock: socket.socket, deadline: float,
                      clock: Clock = time.perf_counter) -> tuple[list[tuple[float, bytes]], str | None]:
    """Every (arrival time, bytes) read from `sock` until the peer closes; plus why it stopped early, if it did."""
    pieces: list[tuple[float, bytes]] = []
    append, recv = pieces.append, sock.recv
    try:
        while True:
            data = recv(65536)
            now = clock()
            if not data:
                return pieces, None
            append((now, data))
            if now > deadline:
                return pieces, "timeout"
    except socket.timeout:
        return pieces, "timeout"
    except OSError as exc:
        return pieces, f"connection_error: {exc.__class__.__name__}"


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
