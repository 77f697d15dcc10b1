"""The samples CSV of docs/interfaces.md: what the recorder writes and the replay backend reads.

One row per tick: `timestamp`, `datetime`, then per device `<prefix>_<i>_<field>`. An empty cell means "not read".
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable, Mapping

from llm_dvfs.exporter.backends.base import GpuSample

# Column suffix -> how to get it from a sample; the first nine are the documented core, the rest extras.
CORE_FIELDS = ("power", "utilization", "temperature", "memory_used", "memory_total", "graphics_clock",
               "memory_clock", "sm_clock", "energy_j")
EXTRA_FIELDS = ("power_average", "power_limit", "pstate", "clock_events")
_MB = 1024 * 1024
NO_EVENTS = "none"  # clock_events cell when no reason is active (empty would mean "not read")
_COLUMN = re.compile(r"^(gpu|cpu)_(\d+)_(.+)$")


class TraceFormatError(ValueError):
    """A samples CSV that cannot be replayed."""


def device_columns(prefix: str, index: int) -> list[str]:
    return [f"{prefix}_{index}_{name}" for name in (*CORE_FIELDS, *EXTRA_FIELDS)]


def _pct(ratio: float | None) -> float | None:
    return None if ratio is None else ratio * 100.0


def _mb(n: float | None) -> float | None:
    return None if n is None else n / _MB


def _mhz(clocks: Mapping[str, float], key: str) -> float | None:
    return clocks[key] / 1e6 if key in clocks else None


def sample_values(sample: GpuSample | None, energy_j: float | None) -> dict[str, float | str | None]:
    """One device's values for one row, keyed by column suffix, in CSV units (W, %, °C, MB, MHz, J)."""
    if sample is None:
        return dict.fromkeys((*CORE_FIELDS, *EXTRA_FIELDS))
    events = sample.clock_events
    values = [sample.power_w, _pct(sample.utilization), sample.temperature_c, _mb(sample.memory_used_bytes),
              _mb(sample.memory_total_bytes), _mhz(sample.clocks_hz, "graphics"), _mhz(sample.clocks_hz, "memory"),
              _mhz(sample.clocks_hz, "sm"), energy_j, sample.power_average_w, sample.power_limit_w,
              sample.performance_state,
              None if events is None else "|".join(name for name, on in events.items() if on) or NO_EVENTS]
    return dict(zip((*CORE_FIELDS, *EXTRA_FIELDS), values))


def sample_cells(values: dict[str, float | str | None]) -> list[str]:
    """The CSV cells of `sample_values`; empty where nothing was read."""
    return ["" if v is None else (v if isinstance(v, str) else _number(v)) for v in values.values()]


def _number(v: float) -> str:
    return str(v) if isinstance(v, int) else f"{v:.6g}" if abs(v) < 1e6 else f"{v:.3f}"


def timestamp_cells(wall_time: float) -> list[str]:
    return [f"{wall_time:.6f}", datetime.fromtimestamp(wall_time).astimezone().isoformat(timespec="milliseconds")]


@dataclass(frozen=True)
class Trace:
    """A parsed samples CSV: timestamps and, per device index, its rows as {field: value or None}."""

    path: Path
    prefix: str
    timestamps: list[float]
    devices: dict[int, list[dict[str, float | None]]]
    clock_events: dict[int, list[frozenset[str] | None]]  # active reasons per row; None = not read

    @property
    def interval(self) -> float:
        """Median spacing of rows, seconds."""
        gaps = sorted(b - a for a, b in zip(self.timestamps, self.timestamps[1:]))
        return gaps[len(gaps) // 2]


def _float(cell: str, where: str) -> float | None:
    if cell == "":
        return None
    try:
        value = float(cell)
    except ValueError:
        raise TraceFormatError(f"{where}: {cell!r} is not a number") from None
    if not math.isfinite(value):
        raise TraceFormatError(f"{where}: {cell!r} is not a finite number")
    return value


def read_trace(path: str | Path) -> Trace:
    """Parse and check a samples CSV; raise TraceFormatError with the file and row on any problem."""
    path = Path(path)
    try:
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceFormatError(f"cannot read trace {path}: {exc}") from None
    if not rows or "timestamp" not in rows[0]:
        raise TraceFormatError(f"{path}: no 'timestamp' column in the header")
    header = rows[0]
    numeric = {"power", "utilization", "temperature", "memory_used", "memory_total", "graphics_clock",
               "memory_clock", "sm_clock", "energy_j", "power_average", "power_limit", "pstate"}
    columns: dict[int, dict[str, int]] = {}
    event_columns: dict[int, int] = {}
    prefix = ""
    for pos, name in enumerate(header):
        m = _COLUMN.match(name)
        if m and m.group(3) in numeric:
            prefix = prefix or m.group(1)
            if m.group(1) == prefix:
                columns.setdefault(int(m.group(2)), {})[m.group(3)] = pos
        elif m and m.group(3) == "clock_events":
            event_columns[int(m.group(2))] = pos
    if not columns or any("power" not in cols for cols in columns.values()):
        raise TraceFormatError(f"{path}: no gpu_<i>_power columns in the header")
    ts_pos = header.index("timestamp")
    timestamps: list[float] = []
    devices: dict[int, list[dict[str, float | None]]] = {i: [] for i in sorted(columns)}
    events: dict[int, list[frozenset[str] | None]] = {i: [] for i in sorted(columns)}
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise TraceFormatError(f"{path}:{line_no}: {len(row)} cells, header has {len(header)}")
        ts = _float(row[ts_pos], f"{path}:{line_no}")
        if ts is None or (timestamps and ts <= timestamps[-1]):
            raise TraceFormatError(f"{path}:{line_no}: timestamps must be present and increasing")
        timestamps.append(ts)
        for index, cols in columns.items():
            devices[index].append({f: _float(row[p], f"{path}:{line_no}") for f, p in cols.items()})
            cell = row[event_columns[index]] if index in event_columns else ""
            events[index].append(None if cell == "" else frozenset(cell.split("|")) - {NO_EVENTS})
    if len(timestamps) < 2:
        raise TraceFormatError(f"{path}: needs at least two rows to replay")
    return Trace(path=path, prefix=prefix, timestamps=timestamps, devices=devices, clock_events=events)


def header(devices: Iterable[tuple[str, int]]) -> list[str]:
    """`timestamp`, `datetime`, then the columns of each (prefix, index)."""
    cols = ["timestamp", "datetime"]
    for prefix, index in devices:
        cols += device_columns(prefix, index)
    return cols
