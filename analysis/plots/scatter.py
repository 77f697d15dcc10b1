"""Utilization against power per GPU, with a least-squares trend line (how much power a busy GPU adds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llm_dvfs.analysis.plots import color, figure, save
from llm_dvfs.analysis.run import Part


def utilization_vs_power(part: Part, path: Path) -> Path | None:
    if not part.samples:
        return None
    label = part.samples.device_label
    fig, axes = figure(1, 1, width=7.5, row_height=5)
    ax = axes[0][0]
    drawn = False
    for i, gpu in enumerate(part.samples.gpus):
        pairs = [(u, p) for u, p in zip(part.samples.series(gpu, "utilization"), part.samples.series(gpu, "power"))
                 if u is not None and p is not None]
        if len(pairs) < 2:
            continue
        u, p = np.array(pairs).T
        ax.scatter(u, p, s=8, alpha=0.35, color=color(i), label=f"{label} {gpu} samples")
        if np.ptp(u) > 0:
            slope, intercept = np.polyfit(u, p, 1)
            xs = np.linspace(0, 100, 50)
            ax.plot(xs, slope * xs + intercept, color=color(i), lw=1.6,
                    label=f"{label} {gpu} trend: {intercept:.0f} W + {slope:.2f} W/%")
        drawn = True
    if not drawn:
        return None
    ax.set(title=f"Utilization vs power — {part.name}", xlabel="utilization (%)", ylabel="power (W)",
           xlim=(-2, 102))
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return save(fig, path)
