"""The steady-state window of one load level (the ML.ENERGY method), decided from `requests.jsonl` alone.

Closed loop (a target concurrency N): the window opens when N requests are first in flight, or when the warm-up
ends if that is later, and closes when the in-flight count falls below N for the last time (draining: users stop
sending). Between those points a closed-loop user's next request follows the previous one within milliseconds, so
brief dips to N − 1 do not end the window. Open loop (a request rate): the window opens after the warm-up and
closes at the last request's start, after which no new work arrives, or when the planned steady time is over
(arrivals that a load generator still sends while it is stopping are not steady load).
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_dvfs.analysis.requests import in_flight
from llm_dvfs.loadgen.results import RequestResult


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    reason: str  # how the ends were chosen, written next to the figures

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end - self.start)


def steady_window(requests: list[RequestResult], concurrency: int | None, warmup_s: float,
                  steady_s: float | None = None) -> Window | None:
    """The steady window, or None when the requests never reach steady load (too few, or the target never met).
    `steady_s` (open loop only) caps the window at the planned steady time after the warm-up."""
    if not requests:
        return None
    first_start = requests[0].start_time
    warm_end = first_start + warmup_s
    if concurrency is None:
        end, why = requests[-1].start_time, "last request start"
        if steady_s is not None and warm_end + steady_s < end:
            end, why = warm_end + steady_s, f"{steady_s:g} s of steady arrivals"
        return Window(warm_end, end, f"open loop: warm-up end to {why}") if end > warm_end else None
    steps = in_flight(requests)
    reached = next((t for t, n in steps if n >= concurrency), None)
    if reached is None:
        return None
    drained = None
    for (t, n), (_, before) in zip(steps[1:], steps):
        if before >= concurrency > n:
            drained = t
    start = max(reached, warm_end)
    end = drained if drained is not None else steps[-1][0]
    if end <= start:
        return None
    how = "target concurrency reached" if reached >= warm_end else "warm-up end"
    return Window(start, end, f"closed loop: {how} to last fall below {concurrency} in flight")
