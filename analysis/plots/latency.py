"""Distributions of TTFT, ITL, TPOT and E2E latency of the successful requests, with p50 and p99 marked."""

from __future__ import annotations

from pathlib import Path

from llm_dvfs.analysis.plots import figure, save
from llm_dvfs.analysis.run import Part
from llm_dvfs.common.percentile import percentile


def distributions(part: Part, path: Path) -> Path | None:
    ok = [r for r in part.requests if r.success]
    if not ok:
        return None
    metrics = {"TTFT": [r.ttft_s for r in ok if r.ttft_s is not None],
               "ITL": [x for r in ok for x in r.itl_s],
               "TPOT": [r.tpot_s for r in ok if r.tpot_s is not None],
               "E2E latency": [r.e2el_s for r in ok if r.e2el_s is not None]}
    fig, axes = figure(2, 2, row_height=3.4)
    for ax, (name, seconds) in zip((a for row in axes for a in row), metrics.items()):
        ms = [s * 1000 for s in seconds]
        if not ms:
            ax.set_axis_off()
            continue
        # A long tail would squeeze the body into one bar: the axis ends a little past p99 and says what it cut.
        edge = max(percentile(ms, 99) * 1.3, 1e-3)
        shown = [v for v in ms if v <= edge]
        ax.hist(shown, bins=40, range=(min(0.0, min(shown)), edge), color="tab:blue", alpha=0.75)
        for q, style in ((50, "--"), (99, ":")):
            v = percentile(ms, q)
            ax.axvline(v, color="black", ls=style, lw=1.2, label=f"p{q} = {v:.1f} ms")
        cut = len(ms) - len(shown)
        title = f"{name} ({len(ms)} values" + (f", {cut} above {edge:.0f} ms not shown)" if cut else ")")
        ax.set(title=title, xlabel=f"{name} (ms)", ylabel="count")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Latency distributions of all successful requests — {part.name}")
    return save(fig, path)
