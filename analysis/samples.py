"""Read the exporter's samples CSV (one row per tick, per-device columns `gpu_<i>_<field>`, or `cpu_<i>_<field>`
from the host backend on machines without a GPU).

Empty cells stay `None` ("not read"), never 0, so a missing power reading can't pass for an idle GPU. The file is
parsed by its owner, `llm_dvfs.exporter.samples_csv`; this module only keeps its columns for the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llm_dvfs.common.errors import UsageError
from llm_dvfs.exporter.samples_csv import SamplesReader, TraceFormatError


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


def read_samples(path: Path) -> Samples:
    """Read `path` through the exporter's samples CSV reader, leniently (a torn last line reads as far as it got, a
    cell that is not a number is None); raise UsageError when it is missing or not a samples CSV."""
    try:
        reader = SamplesReader(path, strict=False)
        columns: dict[tuple[int, str], list[float | None]] = {
            (i, name): [] for i in reader.devices for name in reader.fields(i)}
        timestamps: list[float] = []
        for row in reader.rows():
            timestamps.append(row.timestamp)
            for (i, name), column in columns.items():
                column.append(row.values[i][name])
    except TraceFormatError as exc:
        raise UsageError(str(exc)) from None
    return Samples(reader.path, timestamps, columns, reader.prefix or "gpu")
