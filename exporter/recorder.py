"""Writes each tick to the samples CSV (docs/interfaces.md) and the `--json` file (exporter/samples_json.py), both
as they go: memory stays flat however long the run, and a crash loses at most the last second.

Recording never stops sampling: a failed write (disk full, quota, I/O error) becomes metrics (`health()`) and one
line on stderr; the files keep whole rows (exporter/row_file.py) and go on where they left off once writes work
again."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from llm_dvfs.exporter.backends.base import DeviceInfo
from llm_dvfs.exporter.row_file import RowFile
from llm_dvfs.exporter.samples_csv import SamplesWriter, sample_values
from llm_dvfs.exporter.samples_json import SamplesJsonWriter
from llm_dvfs.exporter.store import Snapshot


@dataclass(frozen=True)
class FileHealth:
    """One recorded file, as /metrics shows it."""

    kind: str  # "csv" or "json"
    path: str
    up: bool  # the latest write attempt succeeded (or none was needed yet)
    errors: int  # failed write attempts
    dropped_rows: int  # rows given up on while writes failed (memory cap reached)


class _DeviceStats:
    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.low = float("inf")
        self.high = float("-inf")

    def add(self, watts: float) -> None:
        self.n += 1
        self.total += watts
        self.low = min(self.low, watts)
        self.high = max(self.high, watts)


class _Output:
    """One file's RowFile and its failure bookkeeping."""

    def __init__(self, kind: str, path: str | Path) -> None:
        self.kind, self.path = kind, str(path)
        self.file = RowFile(path)
        self.up, self.errors = True, 0

    def flush(self) -> bool:
        """Write what is pending; on failure say so once (until it works again) and keep going."""
        try:
            self.file.flush()
        except OSError as exc:
            self.errors += 1
            if self.up:
                print(f"llm-dvfs exporter: cannot write {self.path}: {exc.strerror or exc}; sampling and /metrics "
                      "go on, rows wait in memory and are written when the file can be written again "
                      "(llm_dvfs_exporter_recorder_up 0)", file=sys.stderr, flush=True)
            self.up = False
            return False
        if not self.up:
            print(f"llm-dvfs exporter: writing {self.path} again", file=sys.stderr, flush=True)
        self.up = True
        return True

    def health(self) -> FileHealth:
        return FileHealth(self.kind, self.path, self.up, self.errors, self.file.dropped_rows)


def _opened(kind: str, path: str | Path, start: Callable[[_Output], Any]) -> tuple[_Output, Any]:
    """Open `path` and write its head now, so an unwritable path fails before sampling starts (OSError naming
    the path)."""
    try:
        out = _Output(kind, path)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        writer = start(out)
        out.file.flush()
    except OSError as exc:
        out.file.close()
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    return out, writer


class Recorder:
    """A sampler listener (`recorder(snapshot)` once per tick); opens its files at construction."""

    def __init__(self, devices: Sequence[DeviceInfo], csv_path: str | Path | None = None,
                 json_path: str | Path | None = None, metadata: dict[str, Any] | None = None,
                 flush_every: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._devices = list(devices)
        self._flush_every, self._clock = flush_every, clock
        self._outputs: list[_Output] = []
        self._csv: SamplesWriter | None = None
        self._json: SamplesJsonWriter | None = None
        try:
            if csv_path:
                out, self._csv = _opened("csv", csv_path, lambda o: SamplesWriter(
                    o.file, [(d.kind, d.index) for d in self._devices]))
                self._outputs.append(out)
            if json_path:
                out, self._json = _opened("json", json_path, lambda o: SamplesJsonWriter(
                    o.file, metadata or {}, [{"index": d.index, "name": d.name, "uuid": d.uuid, "vendor": d.vendor,
                                              "backend": d.backend, "source": d.source,
                                              "energy_source": d.energy_source} for d in self._devices]))
                self._outputs.append(out)
        except OSError:
            for out in self._outputs:
                out.file.close()
            raise
        self._last_flush = clock()
        self._first: Snapshot | None = None
        self._last: Snapshot | None = None
        self._energy_start: dict[int, float] = {}
        self._stats = {d.index: _DeviceStats() for d in self._devices}
        self._closed = False
        self._complete = True

    def __call__(self, snapshot: Snapshot) -> None:
        """One tick: append its row to each file; flush at most every `flush_every` seconds."""
        if self._closed:
            return
        if self._first is None:
            self._first = snapshot
            self._energy_start = {d.info.index: d.energy_j for d in snapshot.devices}
        self._last = snapshot
        devices: dict[str, dict[str, Any]] = {}
        for state in snapshot.devices:
            energy = state.energy_j - self._energy_start[state.info.index] if state.up else None
            devices[str(state.info.index)] = sample_values(state.sample, energy)
            if state.sample is not None and state.sample.power_w is not None:
                self._stats[state.info.index].add(state.sample.power_w)
        if self._csv is not None:
            self._csv.write(snapshot.wall_time, devices.values())
        if self._json is not None:
            self._json.write(snapshot.wall_time, devices)
        now = self._clock()
        if now - self._last_flush >= self._flush_every:
            self._last_flush = now
            for out in self._outputs:
                out.flush()

    def health(self) -> list[FileHealth]:
        """Per file: up, failed writes, dropped rows (read by the collector on each scrape)."""
        return [out.health() for out in self._outputs]

    def summary(self) -> dict[str, Any]:
        """Per-device mean/min/max power, energy and duration over the recording."""
        duration = (self._last.wall_time - self._first.wall_time) if self._first and self._last else 0.0
        out: dict[str, Any] = {}
        for d in self._devices:
            st = self._stats[d.index]
            end = next((s.energy_j for s in self._last.devices if s.info.index == d.index), 0.0) if self._last else 0.0
            out[str(d.index)] = {
                "name": d.name, "uuid": d.uuid, "samples": st.n, "duration_s": duration,
                "mean_power_w": st.total / st.n if st.n else None,
                "min_power_w": st.low if st.n else None, "max_power_w": st.high if st.n else None,
                "energy_j": end - self._energy_start.get(d.index, 0.0),
            }
        return out

    def close(self) -> bool:
        """Finish both files (JSON tail, flush, fsync); safe to call twice (signal handler and normal exit).
        True when every row reached its file."""
        if self._closed:
            return self._complete
        self._closed = True
        if self._json is not None:
            self._json.finish(self._first.wall_time if self._first else None,
                              self._last.wall_time if self._last else None, self.summary())
        for out in self._outputs:
            self._complete &= out.flush() and out.file.sync() and out.file.dropped_rows == 0
            out.file.close()
        return self._complete
