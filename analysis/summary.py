"""The report's summary figures of one part (a run or a sweep level), all over the part's window: the window's
`WindowFigures` (the one function sweep.json's levels come from too) plus the part's name and goodput."""

from __future__ import annotations

from dataclasses import dataclass

from llm_dvfs.analysis.figures import WindowFigures, window_figures
from llm_dvfs.analysis.run import Part


@dataclass
class Summary(WindowFigures):
    name: str = ""
    goodput: float | None = None  # the load generator's whole-run request_goodput


def summarize(part: Part) -> Summary:
    """A part without a window (no requests reached steady load, no samples) gets counts over everything it
    holds and no rates or energy."""
    w = part.window
    t0, t1 = (w.start, w.end) if w else (float("-inf"), float("inf"))
    figures = window_figures(part.requests, part.samples if w else None, t0, t1, w.duration_s if w else 0.0)
    return Summary(**vars(figures), name=part.name, goodput=(part.results or {}).get("request_goodput"))
