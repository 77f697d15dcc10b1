"""Place each request of `requests.jsonl` and each of its output tokens on the wall clock.

The records are the load generator's own (`llm_dvfs.loadgen.results.RequestResult`, read by its `read_requests`).
Token times come from the request's record: the first token at start + TTFT, then one chunk per ITL gap. When
the server's usage count differs from the number of chunks (several tokens in one chunk), each chunk carries an
equal share of the tokens, so token counts over any window still add up to the request's total.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Sequence

from llm_dvfs.loadgen.results import RequestResult


def token_times(r: RequestResult) -> list[tuple[float, float]]:
    """(wall time, tokens) per token-bearing chunk of one request."""
    if r.ttft_s is None or not r.output_tokens or r.output_tokens <= 0:
        return []
    offsets = list(accumulate(r.itl_s, initial=r.ttft_s))
    share = r.output_tokens / len(offsets)
    return [(r.start_time + o, share) for o in offsets]


def in_flight(requests: Sequence[RequestResult]) -> list[tuple[float, int]]:
    """Step series of requests in flight: (time, count after that time), one point per start or end."""
    spans = [(r.start_time, r.end_time) for r in requests if r.end_time is not None]
    events = [(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans]
    # At equal times count the end first: a closed-loop user's next request replaces the one that just ended.
    events.sort(key=lambda e: (e[0], e[1]))
    out, count = [], 0
    for t, step in events:
        count += step
        out.append((t, count))
    return out


def tokens_between(requests: Sequence[RequestResult], t0: float, t1: float) -> float:
    """Output tokens whose chunk arrived in [t0, t1)."""
    return sum(n for r in requests if r.success for t, n in token_times(r) if t0 <= t < t1)
