"""The steady window (ML.ENERGY method) chosen from request timestamps alone."""

from __future__ import annotations

from llm_dvfs.analysis.window import steady_window
from llm_dvfs.loadgen.results import RequestResult


def req(start: float, e2el: float) -> RequestResult:
    return RequestResult(start_time=start, success=True, ttft_s=0.1, e2el_s=e2el, prompt_tokens=1, output_tokens=1)


def closed_loop(users: int, until: float, length: float = 1.0, gap: float = 0.002,
                last_ends: list[float] | None = None) -> list[RequestResult]:
    """Users spawned 0.1 s apart, each sending back to back until `until`, then finishing what is in flight;
    each user's last end time is appended to `last_ends`."""
    out = []
    for u in range(users):
        t = u * 0.1
        while t < until:
            out.append(req(t, length))
            t += length + gap
        if last_ends is not None:
            last_ends.append(out[-1].end_time)
    return sorted(out, key=lambda r: r.start_time)


def test_opens_when_target_reached_and_closes_at_the_first_drain():
    last_ends: list[float] = []
    reqs = closed_loop(4, until=10.0, last_ends=last_ends)
    w = steady_window(reqs, concurrency=4, warmup_s=0.0)
    assert w is not None
    assert abs(w.start - 0.3) < 1e-9  # the 4th user's first request
    assert abs(w.end - min(last_ends)) < 1e-9  # the first user to finish its last request starts the drain
    assert w.end < max(last_ends)


def test_brief_gaps_between_a_users_requests_do_not_end_the_window():
    w = steady_window(closed_loop(4, until=10.0), concurrency=4, warmup_s=0.0)
    assert w is not None and w.duration_s > 9


def test_warmup_later_than_reaching_the_target_opens_the_window():
    w = steady_window(closed_loop(2, until=10.0), concurrency=2, warmup_s=3.0)
    assert w is not None and abs(w.start - 3.0) < 1e-9 and "warm-up" in w.reason


def test_a_target_never_reached_gives_no_window():
    assert steady_window(closed_loop(2, until=5.0), concurrency=8, warmup_s=0.0) is None
    assert steady_window([], concurrency=1, warmup_s=0.0) is None


def test_open_loop_runs_from_warmup_end_to_the_last_arrival():
    reqs = [req(t * 0.5, 2.0) for t in range(20)]
    w = steady_window(reqs, concurrency=None, warmup_s=2.0)
    assert w is not None and (w.start, w.end) == (2.0, 9.5)


def test_open_loop_ends_when_the_planned_steady_time_is_over():
    # arrivals go on for 9.5 s, but a load generator that is stopping after 2 + 4 s is no longer steady load
    reqs = [req(t * 0.5, 2.0) for t in range(20)]
    w = steady_window(reqs, concurrency=None, warmup_s=2.0, steady_s=4.0)
    assert w is not None and (w.start, w.end) == (2.0, 6.0) and "4 s of steady arrivals" in w.reason
