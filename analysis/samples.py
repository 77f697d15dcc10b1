"""Read the exporter's samples CSV (one row per tick, per-device columns `gpu_<i>_<field>`, or `cpu_<i>_<field>`
from the host backend on machines without a GPU).

Empty cells stay `None` ("not read"), never 0, so a missing power reading can't pass for an idle GPU. Unknown
columns are kept but ignored by the readers below.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from llm_dvfs.common.errors import UsageError

_DEVICE_COLUMN = re.compile(r"^(gpu|cpu)_(\d+)_(.+)$")


@dataclass
class Samples:
    """Columns of one samples CSV: `timestamps` (Unix s) and `columns[(gpu, field)]`, aligned row by row."""

    path: Path
    timestamps: list[float]
    columns: dict[tuple[int, str], list[float | None]] = field(default_factory=dict)
    prefix: str = "gpu"  # "cpu" when the host backend recorded CPU packages instead of GPUs

    @property
    def device_label(self) -> str:
        return self.prefix.upper()

    @property
    def gpus(self) -> list[int]:
        return sorted({gpu for gpu, _ in self.columns})

    def series(self, gpu: int, name: str) -> list[float | None]:
        """One GPU's column, or all `None` when the CSV lacks it."""
        return self.columns.get((gpu, name), [None] * len(self.timestamps))

    def has(self, gpu: int, name: str) -> bool:
        """True when the column exists and holds at least one reading."""
        return any(v is not None for v in self.columns.get((gpu, name), ()))

    @property
    def duration_s(self) -> float:
        return self.timestamps[-1] - self.timestamps[0] if len(self.timestamps) > 1 else 0.0


def _number(cell: str | None) -> float | None:
    if cell is None or cell.strip() == "":
        return None
    try:
        return float(cell)
    except ValueError:
        return None  # e.g. a pstate written as "P0": not a number this reader uses


def read_samples(path: Path) -> Samples:
    """Parse `path`; raise UsageError when it is missing or not a samples CSV."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header or "timestamp" not in header:
                raise UsageError(f"{path}: not a samples CSV (no 'timestamp' column)")
            t_col = header.index("timestamp")
            matches = [(i, m) for i, name in enumerate(header) if (m := _DEVICE_COLUMN.match(name))]
            prefix = matches[0][1].group(1) if matches else "gpu"
            gpu_cols = [(i, (int(m.group(2)), m.group(3))) for i, m in matches if m.group(1) == prefix]
            timestamps: list[float] = []
            columns: dict[tuple[int, str], list[float | None]] = {key: [] for _, key in gpu_cols}
            for row in reader:
                t = _number(row[t_col]) if t_col < len(row) else None
                if t is None:
                    continue  # a torn last line from a killed recorder
                timestamps.append(t)
                for i, key in gpu_cols:
                    columns[key].append(_number(row[i]) if i < len(row) else None)
    except OSError as exc:
        raise UsageError(f"cannot read samples CSV {path}: {exc.strerror or exc}") from exc
    return Samples(path, timestamps, columns, prefix)
