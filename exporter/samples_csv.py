"""The samples CSV of docs/interfaces.md, and its one writer and one reader: every part that writes the file (the
recorder, the sweep's scraper) goes through `SamplesWriter`, every part that reads it (the replay backend, the
report) through `SamplesReader`.

One row per tick: `timestamp`, `datetime`, then per device `<prefix>_<i>_<field>`. An empty cell means "not read".
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Iterable, Iterator, Mapping

from llm_dvfs.exporter.backends.base import GpuSample

# Column suffix -> how to get it from a sample; the first nine are the documented core, the rest extras.
CORE_FIELDS = ("power", "utilization", "temperature", "memory_used", "memory_total", "graphics_clock",
               "memory_clock", "sm_clock", "energy_j")
EXTRA_FIELDS = ("power_average", "power_limit", "pstate", "clock_events")
FIELDS = (*CORE_FIELDS, *EXTRA_FIELDS)
NUMERIC_FIELDS = frozenset(FIELDS) - {"clock_events"}
_MB = 1024 * 1024
NO_EVENTS = "none"  # clock_events cell when no reason is active (empty would mean "not read")
_COLUMN = re.compile(r"^(gpu|cpu)_(\d+)_(.+)$")

Values = Mapping[str, "float | str | None"]


class TraceFormatError(ValueError):
    """A samples CSV that cannot be read (strictly: replayed)."""


# -- writing ----------------------------------------------------------------------------------------------------

def device_columns(prefix: str, index: int) -> list[str]:
    return [f"{prefix}_{index}_{name}" for name in FIELDS]


def header(devices: Iterable[tuple[str, int]]) -> list[str]:
    """`timestamp`, `datetime`, then the columns of each (prefix, index)."""
    cols = ["timestamp", "datetime"]
    for prefix, index in devices:
        cols += device_columns(prefix, index)
    return cols


def _pct(ratio: float | None) -> float | None:
    return None if ratio is None else ratio * 100.0


def _mb(n: float | None) -> float | None:
    return None if n is None else n / _MB


def _mhz(clocks: Mapping[str, float], key: str) -> float | None:
    return clocks[key] / 1e6 if key in clocks else None


def sample_values(sample: GpuSample | None, energy_j: float | None) -> dict[str, float | str | None]:
    """One device's values for one row, keyed by column suffix, in CSV units (W, %, °C, MB, MHz, J)."""
    if sample is None:
        return dict.fromkeys(FIELDS)
    events = sample.clock_events
    values = [sample.power_w, _pct(sample.utilization), sample.temperature_c, _mb(sample.memory_used_bytes),
              _mb(sample.memory_total_bytes), _mhz(sample.clocks_hz, "graphics"), _mhz(sample.clocks_hz, "memory"),
              _mhz(sample.clocks_hz, "sm"), energy_j, sample.power_average_w, sample.power_limit_w,
              sample.performance_state,
              None if events is None else "|".join(name for name, on in events.items() if on) or NO_EVENTS]
    return dict(zip(FIELDS, values))


def sample_cells(values: Values) -> list[str]:
    """The CSV cells of `sample_values`, in column order; empty where nothing was read."""
    return ["" if v is None else (v if isinstance(v, str) else _number(v)) for v in map(values.get, FIELDS)]


def _number(v: float) -> str:
    return str(v) if isinstance(v, int) else f"{v:.6g}" if abs(v) < 1e6 else f"{v:.3f}"


def timestamp_cells(wall_time: float) -> list[str]:
    return [f"{wall_time:.6f}", datetime.fromtimestamp(wall_time).astimezone().isoformat(timespec="milliseconds")]


class SamplesWriter:
    """Writes one samples CSV: the header when opened, then one row per tick (`sample_values` of each device,
    in the order the devices were given). Rows reach the disk at `flush()`; `close()` also fsyncs."""

    def __init__(self, path: str | Path | IO[str], devices: Iterable[tuple[str, int]]) -> None:
        """`path` may also be an open text stream (the recorder's whole-row file); the writer then owns it."""
        self._file: IO[str] = open(path, "w", newline="") if isinstance(path, (str, Path)) else path  # noqa: SIM115
        self._csv = csv.writer(self._file)
        self._csv.writerow(header(devices))
        self._file.flush()

    def write(self, wall_time: float, devices: Iterable[Values]) -> None:
        row = timestamp_cells(wall_time)
        for values in devices:
            row += sample_cells(values)
        self._csv.writerow(row)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


# -- reading ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SampleRow:
    """One tick as read: per device index its numeric fields ({field: value or None}, in CSV units) and its active
    clock-event reasons (None = not read)."""

    line: int
    timestamp: float
    values: dict[int, dict[str, float | None]]
    clock_events: dict[int, frozenset[str] | None]


def _strict_number(cell: str, where: str) -> float | None:
    if cell == "":
        return None
    try:
        value = float(cell)
    except ValueError:
        raise TraceFormatError(f"{where}: {cell!r} is not a number") from None
    if not math.isfinite(value):
        raise TraceFormatError(f"{where}: {cell!r} is not a finite number")
    return value


def _lenient_number(cell: str, where: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None  # empty, or e.g. a pstate written as "P0" by an older tool
    return value if math.isfinite(value) else None


class SamplesReader:
    """A samples CSV: its layout from the header at construction, its rows one at a time from `rows()` (which
    may be called again, e.g. to loop a replay, and never holds more than one row).

    Only the columns of docs/interfaces.md are read, of the first device prefix in the header (`gpu`, or `cpu`
    from the host backend); other columns are ignored. `strict=True` (replay) makes a cell that is not a finite
    number, a row whose length differs from the header's or a timestamp that does not increase a
    TraceFormatError naming the file and line. `strict=False` (reports) reads such cells as None and skips rows
    without a timestamp, so a torn last line of a killed recorder still reads."""

    def __init__(self, path: str | Path, strict: bool = True) -> None:
        self.path, self.strict = Path(path), strict
        with self._open() as fh:
            try:
                head = next(csv.reader(fh), None)
            except (UnicodeDecodeError, csv.Error) as exc:
                raise self._unreadable(exc) from None
        if not head or "timestamp" not in head:
            raise TraceFormatError(f"{self.path}: not a samples CSV (no 'timestamp' column)")
        self.header = head
        self._ts = head.index("timestamp")
        self.prefix = ""
        self._columns: dict[int, dict[str, int]] = {}
        self._events: dict[int, int] = {}
        for pos, name in enumerate(head):
            m = _COLUMN.match(name)
            if not m or m.group(3) not in FIELDS:
                continue
            self.prefix = self.prefix or m.group(1)
            if m.group(1) != self.prefix:
                continue
            if m.group(3) == "clock_events":
                self._events[int(m.group(2))] = pos
            else:
                self._columns.setdefault(int(m.group(2)), {})[m.group(3)] = pos
        self._columns = dict(sorted(self._columns.items()))

    @property
    def devices(self) -> list[int]:
        """Device indices that have numeric columns, ascending."""
        return list(self._columns)

    def fields(self, index: int) -> list[str]:
        """The numeric fields (column suffixes) that device `index` has."""
        return list(self._columns.get(index, {}))

    def rows(self) -> Iterator[SampleRow]:
        with self._open() as fh:
            reader = csv.reader(fh)
            last: float | None = None
            try:
                next(reader, None)
                for cells in reader:
                    row = self._row(cells, reader.line_num, last) if cells else None
                    if row is not None:
                        last = row.timestamp
                        yield row
            except (UnicodeDecodeError, csv.Error) as exc:
                raise self._unreadable(exc) from None

    def _row(self, cells: list[str], line: int, last: float | None) -> SampleRow | None:
        where = f"{self.path}:{line}"
        if len(cells) != len(self.header):
            if self.strict:
                raise TraceFormatError(f"{where}: {len(cells)} cells, header has {len(self.header)}")
            cells = cells + [""] * (len(self.header) - len(cells))
        number = _strict_number if self.strict else _lenient_number
        ts = number(cells[self._ts], where)
        if ts is None or (self.strict and last is not None and ts <= last):
            if self.strict:
                raise TraceFormatError(f"{where}: timestamps must be present and increasing")
            return None
        values = {i: {f: number(cells[p], where) for f, p in cols.items()} for i, cols in self._columns.items()}
        events = {i: _events(cells[self._events[i]]) if i in self._events else None for i in self._columns}
        return SampleRow(line, ts, values, events)

    def _open(self) -> IO[str]:
        try:
            return self.path.open(newline="")
        except OSError as exc:
            raise self._unreadable(exc) from None

    def _unreadable(self, exc: Exception) -> TraceFormatError:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return TraceFormatError(f"cannot read samples CSV {self.path}: {why}")


def _events(cell: str) -> frozenset[str] | None:
    return None if cell == "" else frozenset(cell.split("|")) - {NO_EVENTS}


# -- the replay backend's whole-file view -------------------------------------------------------------------------

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


def read_trace(path: str | Path) -> Trace:
    """Read a samples CSV strictly and check it can be replayed; raise TraceFormatError on any problem."""
    reader = SamplesReader(path, strict=True)
    if not reader.devices or any("power" not in reader.fields(i) for i in reader.devices):
        raise TraceFormatError(f"{reader.path}: no gpu_<i>_power columns in the header")
    timestamps: list[float] = []
    devices: dict[int, list[dict[str, float | None]]] = {i: [] for i in reader.devices}
    events: dict[int, list[frozenset[str] | None]] = {i: [] for i in reader.devices}
    for row in reader.rows():
        timestamps.append(row.timestamp)
        for i in reader.devices:
            devices[i].append(row.values[i])
            events[i].append(row.clock_events[i])
    if len(timestamps) < 2:
        raise TraceFormatError(f"{reader.path}: needs at least two rows to replay")
    return Trace(path=reader.path, prefix=reader.prefix, timestamps=timestamps, devices=devices,
                 clock_events=events)
