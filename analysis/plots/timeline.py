"""Time series of one part: power per GPU with load overlaid, all GPUs with their total, temperature and clocks."""

from __future__ import annotations

from bisect import bisect_right
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from llm_dvfs.analysis.plots import color, figure, save
from llm_dvfs.analysis.requests import in_flight
from llm_dvfs.analysis.run import Part


def origin(part: Part) -> float:
    """Time zero of the part's plots: its first sample or first request, whichever came first."""
    starts = [part.samples.timestamps[0]] if part.samples and part.samples.timestamps else []
    starts += [part.requests[0].start_time] if part.requests else []
    return min(starts)


def _xy(part: Part, gpu: int, name: str, t0: float) -> tuple[list[float], list[float]]:
    assert part.samples is not None
    pairs = [(t - t0, v) for t, v in zip(part.samples.timestamps, part.samples.series(gpu, name)) if v is not None]
    return [t for t, _ in pairs], [v for _, v in pairs]


def _in_flight_grid(part: Part, t0: float, step: float = 0.05) -> list[tuple[float, int]]:
    """Requests in flight sampled every `step` s: a closed-loop user's millisecond gap between two requests
    would otherwise draw as a spike down to N − 1."""
    events = in_flight(part.requests)
    if not events:
        return []
    times = [t for t, _ in events]
    out, t = [], times[0]
    while t <= times[-1]:
        k = bisect_right(times, t)
        out.append((t - t0, events[k - 1][1] if k else 0))
        t += step
    return out + [(times[-1] - t0, events[-1][1])]


def _legend(ax: Axes, handles: list, labels: list[str]) -> None:
    """Above the panel's right end, so it never hides the data."""
    ax.legend(handles, labels, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=4, fontsize=8, frameon=False)


def _mark_window(ax: Axes, part: Part, t0: float) -> None:
    if part.window and part.window.reason != "whole recording":
        ax.axvspan(part.window.start - t0, part.window.end - t0, color="0.5", alpha=0.08, lw=0,
                   label="steady window")


def power_per_gpu(part: Part, path: Path) -> Path | None:
    """One panel per GPU: power (line), utilization (shaded; its height is the percentage of the panel), and the
    requests in flight (steps, right axis)."""
    if not part.samples or not any(part.samples.has(g, "power") for g in part.samples.gpus):
        return None
    gpus, label, t0 = part.samples.gpus, part.samples.device_label, origin(part)
    fig, axes = figure(len(gpus), 1, sharex=True)
    steps = _in_flight_grid(part, t0)
    for i, gpu in enumerate(gpus):
        ax = axes[i][0]
        ut, uv = _xy(part, gpu, "utilization", t0)
        if ut:
            ax.fill_between(ut, 0, [v / 100 for v in uv], step="post", transform=ax.get_xaxis_transform(),
                            color="tab:green", alpha=0.18, lw=0, label="utilization (shade height = %)")
        _mark_window(ax, part, t0)
        pt, pv = _xy(part, gpu, "power", t0)
        ax.plot(pt, pv, color=color(0), lw=1.2, label="power")
        ax.set_ylabel("power (W)")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{label} {gpu} power — {part.name}", loc="left")
        handles, labels = ax.get_legend_handles_labels()
        if steps:
            ax2 = ax.twinx()
            ax2.step([s[0] for s in steps], [s[1] for s in steps], where="post", color="tab:orange", lw=1.0,
                     alpha=0.9, label="requests in flight")
            ax2.set_ylabel("requests in flight")
            ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax2.set_ylim(bottom=0, top=max(s[1] for s in steps) * 1.15 + 0.5)
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        _legend(ax, handles, labels)
        ax.grid(alpha=0.3)
    axes[-1][0].set_xlabel("time since start (s)")
    return save(fig, path)


def power_all(part: Part, path: Path) -> Path | None:
    """Every GPU's power on one axis, with their sum."""
    if not part.samples or not any(part.samples.has(g, "power") for g in part.samples.gpus):
        return None
    t0, label = origin(part), part.samples.device_label
    fig, axes = figure(1, 1, row_height=4.2)
    ax = axes[0][0]
    _mark_window(ax, part, t0)
    for i, gpu in enumerate(part.samples.gpus):
        t, v = _xy(part, gpu, "power", t0)
        ax.plot(t, v, color=color(i), lw=1.0, label=f"{label} {gpu}")
    rows = zip(*(part.samples.series(g, "power") for g in part.samples.gpus))
    total = [(t - t0, sum(r)) for t, r in zip(part.samples.timestamps, rows) if None not in r]
    if len(part.samples.gpus) > 1 and total:
        ax.plot([x for x, _ in total], [y for _, y in total], color="black", lw=1.4, label="total")
    ax.set(xlabel="time since start (s)", ylabel="power (W)")
    ax.set_title(f"Power of all {label}s — {part.name}", loc="left")
    ax.set_ylim(bottom=0)
    _legend(ax, *ax.get_legend_handles_labels())
    ax.grid(alpha=0.3)
    return save(fig, path)


def thermals(part: Part, path: Path) -> Path | None:
    """Temperature, and SM and memory clocks, per GPU over time."""
    if not part.samples or not any(part.samples.has(g, "temperature") or part.samples.has(g, "sm_clock")
                                   for g in part.samples.gpus):
        return None
    t0, label = origin(part), part.samples.device_label
    fig, axes = figure(2, 1, sharex=True)
    temp, clocks = axes[0][0], axes[1][0]
    for i, gpu in enumerate(part.samples.gpus):
        t, v = _xy(part, gpu, "temperature", t0)
        temp.plot(t, v, color=color(i), lw=1.0, label=f"{label} {gpu}")
        for name, style in (("sm_clock", "-"), ("memory_clock", ":")):
            t, v = _xy(part, gpu, name, t0)
            if t:
                clocks.plot(t, v, color=color(i), ls=style, lw=1.0,
                            label=f"{label} {gpu} {name.replace('_clock', '')}")
    temp.set_ylabel("temperature (°C)")
    temp.set_title(f"Temperature — {part.name}", loc="left")
    clocks.set(ylabel="clock (MHz)", xlabel="time since start (s)")
    clocks.set_title(f"Clocks (solid: SM, dotted: memory) — {part.name}", loc="left")
    clocks.set_ylim(bottom=0)
    for ax in (temp, clocks):
        if ax.get_legend_handles_labels()[0]:
            _legend(ax, *ax.get_legend_handles_labels())
        ax.grid(alpha=0.3)
    return save(fig, path)
