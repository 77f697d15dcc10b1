"""The differential method: per-request energy against output (or prompt) length at one concurrency.

Levels that differ only in one length are fitted with a least-squares line, energy per request = intercept +
slope·length. Over output lengths at a fixed prompt the length is the decode tokens (output − 1, the first token
comes from the prefill step): the slope is the marginal energy of one decode token and the intercept the energy
of a request with max_tokens 1, its prefill (→ J per prompt token when divided by the prompt length); over
prompt lengths at a fixed output, the slope is the marginal energy of one prompt token.
Each level's per-request energy is its steady-window energy divided by the requests completed in that window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

METHOD = "differential"


@dataclass(frozen=True)
class Point:
    """One level: its request shape, load and measured energy per completed request (total, and above idle)."""

    label: str
    concurrency: int | None
    workload: str
    input_len: int
    output_len: int
    joules_per_request: float
    above_idle_joules_per_request: float | None
    completed: int


@dataclass(frozen=True)
class Line:
    intercept: float
    slope: float
    r2: float | None  # None with two points: a line through two points says nothing about linearity
    residuals: tuple[float, ...]


def fit_line(xs: Iterable[float], ys: Iterable[float]) -> Line | None:
    """Least squares y = intercept + slope·x; None with fewer than two distinct x."""
    x, y = np.asarray(list(xs), dtype=float), np.asarray(list(ys), dtype=float)
    if len(set(x.tolist())) < 2:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (intercept + slope * x)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1 - float(resid @ resid) / ss_tot if len(x) > 2 and ss_tot > 0 else None
    return Line(float(intercept), float(slope), r2, tuple(float(r) for r in resid))


def _fit_json(line: Line | None) -> dict | None:
    if line is None:
        return None
    return {"intercept_joules": line.intercept, "slope_joules_per_token": line.slope, "r2": line.r2,
            "residuals_joules": list(line.residuals)}


def fits(points: list[Point]) -> list[dict]:
    """Every differential fit the points allow: per concurrency, over output lengths at each fixed prompt length
    and over prompt lengths at each fixed output length (at least two lengths each). Workloads are pooled: an
    output-1 level is a prefill workload and belongs on the same line as the longer outputs."""
    out: list[dict] = []
    groups: dict[tuple, list[Point]] = {}
    for p in points:
        groups.setdefault((p.concurrency, "output_len", p.input_len), []).append(p)
        groups.setdefault((p.concurrency, "input_len", p.output_len), []).append(p)
    for (conc, over, fixed), members in groups.items():
        members = sorted(members, key=lambda p: getattr(p, over))
        # over outputs the x is the decode tokens (output − 1): the first token comes out of the prefill step,
        # so the intercept is the energy of a request with max_tokens 1, i.e. its prefill
        xs = [getattr(p, over) - (1 if over == "output_len" else 0) for p in members]
        if len(set(xs)) < 2:
            continue
        total = fit_line(xs, [p.joules_per_request for p in members])
        above = None
        if all(p.above_idle_joules_per_request is not None for p in members):
            above = fit_line(xs, [p.above_idle_joules_per_request for p in members])
        fixed_key = "input_len" if over == "output_len" else "output_len"
        workload = "/".join(dict.fromkeys(p.workload for p in members))
        entry = {"method": METHOD, "concurrency": conc, "workload": workload, "over": over, fixed_key: fixed,
                 "total": _fit_json(total), "above_idle": _fit_json(above),
                 "points": [{"label": p.label, "input_len": p.input_len, "output_len": p.output_len,
                             "joules_per_request": p.joules_per_request,
                             "above_idle_joules_per_request": p.above_idle_joules_per_request,
                             "completed": p.completed} for p in members]}
        for basis, line in (("total", total), ("above_idle", above)):
            if line is None:
                continue
            if over == "output_len":
                entry[basis] |= {"joules_per_output_token": line.slope,
                                 "prefill_joules_per_request": line.intercept,
                                 "joules_per_prompt_token": line.intercept / fixed if fixed else None}
            else:
                entry[basis] |= {"joules_per_prompt_token": line.slope}
        out.append(entry)
    return out
