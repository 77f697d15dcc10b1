"""Plots of the report, one module per kind; all drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from llm_dvfs.common.atomic_file import atomic_write_bytes  # noqa: E402

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def figure(rows: int = 1, cols: int = 1, width: float = 11.0, row_height: float = 3.2, **kw) -> tuple:
    fig, axes = plt.subplots(rows, cols, figsize=(width, max(3.5, row_height * rows)), squeeze=False, **kw)
    return fig, axes


def save(fig: Figure, path: Path, rect: tuple[float, float, float, float] = (0, 0, 1, 1)) -> Path:
    """Lay out within `rect` (figure fractions; leave room there for a figure-level legend) and write a PNG."""
    fig.tight_layout(rect=rect)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, png.getvalue())
    return path


def color(i: int) -> str:
    return COLORS[i % len(COLORS)]
