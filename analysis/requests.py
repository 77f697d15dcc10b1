"""Read the load generator's `requests.jsonl` and place each request and each output token on the wall clock.

Token times come from the request's own record: the first token at start + TTFT, then one chunk per ITL gap. When
the server's usage count differs from the number of chunks (several tokens in one chunk), each chunk carries an
equal share of the tokens, so token counts over any window still add up to the request's total.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

from llm_dvfs.common.errors import UsageError


@dataclass(frozen=True)
class Request:
    start: float
    ttft_s: float | None
    itl_s: tuple[float, ...]
    e2el_s: float | None
    prompt_tokens: int
    output_tokens: int
    success: bool
    error: str | None = None
    prefill_s: float | None = None
    elapsed_s: float | None = None  # the whole exchange, also for failures (which have no E2EL)

    @property
    def end(self) -> float | None:
        """When the request stopped occupying its user: the end of the exchange, else the last token."""
        held = self.elapsed_s if self.elapsed_s is not None else self.e2el_s
        return self.start + held if held is not None else None

    @property
    def tpot_s(self) -> float | None:
        """(E2EL − TTFT) / (output tokens − 1), as `vllm bench serve` defines it."""
        if self.ttft_s is None or self.e2el_s is None or self.output_tokens < 2:
            return None
        return (self.e2el_s - self.ttft_s) / (self.output_tokens - 1)

    def token_times(self) -> list[tuple[float, float]]:
        """(wall time, tokens) per token-bearing chunk."""
        if self.ttft_s is None or self.output_tokens <= 0:
            return []
        offsets = list(accumulate(self.itl_s, initial=self.ttft_s))
        share = self.output_tokens / len(offsets)
        return [(self.start + o, share) for o in offsets]


def _request(obj: dict) -> Request:
    return Request(start=float(obj["start_time"]), ttft_s=obj.get("ttft_s"), itl_s=tuple(obj.get("itl_s") or ()),
                   e2el_s=obj.get("e2el_s"), prompt_tokens=int(obj.get("prompt_tokens") or 0),
                   output_tokens=int(obj.get("output_tokens") or 0), success=bool(obj.get("success")),
                   error=obj.get("error"), prefill_s=obj.get("prefill_s"), elapsed_s=obj.get("elapsed_s"))


def read_requests(path: Path) -> list[Request]:
    """Every request in `path`, sorted by start time; a torn last line (killed writer) is skipped."""
    path = Path(path)
    out: list[Request] = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(_request(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            if n == len(lines):
                break
            raise UsageError(f"{path}:{n}: not a request record ({exc})") from exc
    return sorted(out, key=lambda r: r.start)


def in_flight(requests: list[Request]) -> list[tuple[float, int]]:
    """Step series of requests in flight: (time, count after that time), one point per start or end."""
    events = [(r.start, 1) for r in requests if r.end is not None]
    events += [(r.end, -1) for r in requests if r.end is not None]
    # At equal times count the end first: a closed-loop user's next request replaces the one that just ended.
    events.sort(key=lambda e: (e[0], e[1]))
    out, count = [], 0
    for t, step in events:
        count += step
        out.append((t, count))
    return out


def tokens_between(requests: list[Request], t0: float, t1: float) -> float:
    """Output tokens whose chunk arrived in [t0, t1)."""
    return sum(n for r in requests if r.success for t, n in r.token_times() if t0 <= t < t1)
