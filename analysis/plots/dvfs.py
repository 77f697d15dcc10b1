"""A settings sweep's trade-off: energy per token against TTFT and against ITL, one line per setting through its
load levels (lower left is better)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from llm_dvfs.analysis.plots import color, figure, save


def tradeoff(rows: Sequence, path: Path) -> Path | None:
    """`rows`: analysis.dvfs_summary.Row; one panel per latency at p99 (the percentile the SLOs bound), y = J/token."""
    fig, axes = figure(1, 2, width=13, row_height=5.0)
    drawn = False
    settings = list(dict.fromkeys(r.setting for r in rows))
    for ax, (key, title) in zip(axes[0], (("ttft_ms_p99", "TTFT p99 (ms)"), ("itl_ms_p99", "ITL p99 (ms)"))):
        for i, name in enumerate(settings):
            pts = [(r.entry.get(key), r.j_per_token, r.level) for r in rows if r.setting == name]
            pts = [p for p in pts if p[0] is not None and p[1] is not None]
            if not pts:
                continue
            xs, ys, labels = zip(*pts)
            ax.plot(xs, ys, "o-", color=color(i), label=name, linewidth=2.5 if name == "default" else 1.2)
            for x, y, text in zip(xs, ys, labels):
                ax.annotate(text, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=7)
            drawn = True
        ax.set(xlabel=title, ylabel="energy per output token (J/token)", title=f"J/token vs {title}")
        ax.grid(alpha=0.3)
    if not drawn:
        return None
    axes[0][0].legend(fontsize=8)
    return save(fig, path)
