"""Prefill vs decode plots: the energy of each level stacked by phase, and one level's power over its window with
the phase activity (prompt tokens in prefill, decode tokens produced) the attribution regressed it on."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from llm_dvfs.analysis.phases import LevelPhases
from llm_dvfs.analysis.plots import color, figure, save

PHASES = (("prefill_joules", "prefill"), ("decode_joules", "decode"), ("idle_joules", "idle"),
          ("unattributed_joules", "above idle, nothing in flight"))


def energy_bars(levels: Sequence[LevelPhases], path: Path) -> Path | None:
    """One bar per level: its steady-window energy split into prefill, decode, idle (and unattributed)."""
    done = [lv for lv in levels if lv.attribution is not None]
    if not done:
        return None
    fig, axes = figure(1, 1, width=max(6.0, 1.2 * len(done) + 3), row_height=4.0)
    ax = axes[0][0]
    x = np.arange(len(done))
    bottom = np.zeros(len(done))
    for i, (key, label) in enumerate(PHASES):
        values = np.array([getattr(lv.attribution, key) for lv in done])
        if key == "unattributed_joules" and not np.any(values):
            continue
        ax.bar(x, values, bottom=bottom, color=color(i) if key != "idle_joules" else "0.75", label=label)
        bottom += np.maximum(values, 0)
    ax.set_xticks(x, [lv.label.replace(", ", "\n") for lv in done], fontsize=8)
    ax.set_ylabel("energy over the steady window (J)")
    ax.set_title("Energy by phase (interval regression)", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return save(fig, path)


def activity_timeline(level: LevelPhases, path: Path) -> Path | None:
    """Power above idle per interval (line) over the prompt tokens in prefill and decode tokens produced per
    second (shaded), and the fitted power a·X + b·Y (dashed): where the model follows the data and where not."""
    data, a = level.intervals, level.attribution
    if data is None or a is None:
        return None
    t = (data.edges[:-1] + data.edges[1:]) / 2 - data.edges[0]
    dt = data.seconds
    above = data.energy / dt - (a.idle.watts or 0.0)
    fitted = (a.coef_prompt * data.prefill_tokens + a.coef_decode * data.decode_tokens) / dt
    fig, axes = figure(1, 1, row_height=4.0)
    ax = axes[0][0]
    rates = ax.twinx()
    rates.fill_between(t, 0, data.prefill_tokens / dt, step="mid", color=color(0), alpha=0.25,
                       label="prompt tokens in prefill /s")
    rates.fill_between(t, 0, data.decode_tokens / dt, step="mid", color=color(1), alpha=0.25,
                       label="decode tokens /s")
    rates.set_ylabel("tokens per second")
    ax.plot(t, above, color="k", lw=1.2, label="power above idle (measured)")
    ax.plot(t, fitted, color="k", lw=1.0, ls="--", label="a·prefill + b·decode (fitted)")
    ax.set_zorder(rates.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_xlabel("seconds into the steady window")
    ax.set_ylabel("W above idle")
    ax.set_title(f"{level.label}: power and phase activity ({a.bin_s:g} s intervals)", fontsize=10)
    handles = ax.get_legend_handles_labels()
    more = rates.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=8, frameon=False, loc="upper right", ncol=2)
    return save(fig, path)
