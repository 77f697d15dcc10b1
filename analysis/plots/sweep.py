"""Across levels: throughput against energy per token (the Pareto view), and two runs side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llm_dvfs.analysis.plots import color, figure, save
from llm_dvfs.analysis.summary import Summary


def pareto(runs: dict[str, list[Summary]], path: Path) -> Path | None:
    """One line per run: each level's output tokens/s (x) and joules per output token (y), labelled by level.
    Lower-right is better: more tokens per second for fewer joules each."""
    fig, axes = figure(1, 1, width=8, row_height=5.2)
    ax = axes[0][0]
    top = 0.0
    for i, (name, summaries) in enumerate(runs.items()):
        points = [(s.output_tok_s, s.j_per_token, s.name) for s in summaries
                  if s.output_tok_s is not None and s.j_per_token is not None]
        if not points:
            continue
        xs, ys, labels = zip(*points)
        ax.plot(xs, ys, "o-", color=color(i), label=name)
        for x, y, text in zip(xs, ys, labels):
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
        top = max(top, *ys)
    if not top:
        return None
    ax.set(title="Throughput vs energy per token, per load level (lower right is better)",
           xlabel="output throughput (tokens/s)", ylabel="energy per output token (J/token)")
    ax.set_xlim(0, ax.get_xlim()[1] * 1.12)  # room for the level labels
    ax.set_ylim(0, top * 1.15)
    ax.legend(fontsize=9, loc="lower left")
    ax.grid(alpha=0.3)
    return save(fig, path)


def side_by_side(runs: dict[str, list[Summary]], path: Path) -> Path | None:
    """Grouped bars per level shared by both runs: E2E p50 latency, total mean power, energy per token."""
    names = list(runs)
    levels = [s.name for s in runs[names[0]] if all(any(o.name == s.name for o in runs[n]) for n in names)]
    if not levels:
        return None
    panels = (("E2E latency p50 (ms)", lambda s: s.latency_ms["E2E"][0]),
              ("mean power, all GPUs (W)", lambda s: s.total_w),
              ("energy per output token (J/token)", lambda s: s.j_per_token))
    fig, axes = figure(1, 3, width=14, row_height=4.5)
    x = np.arange(len(levels))
    width = 0.8 / len(names)
    for ax, (title, value) in zip(axes[0], panels):
        for i, name in enumerate(names):
            by_level = {s.name: s for s in runs[name]}
            ys = [value(by_level[lv]) for lv in levels]
            ax.bar(x + (i - (len(names) - 1) / 2) * width, [y if y is not None else 0 for y in ys], width,
                   color=color(i), label=name)
        ax.set_xticks(x, levels, rotation=15, fontsize=8)
        ax.set_title(title)
        ax.grid(alpha=0.3, axis="y")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=len(names), fontsize=9,
               frameon=False)
    fig.suptitle("Side by side, per load level")
    return save(fig, path, rect=(0, 0.07, 1, 1))
