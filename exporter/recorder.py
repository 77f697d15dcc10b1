"""Writes each tick to the samples CSV (docs/interfaces.md) and, at the end, a JSON with every sample and
per-device statistics. The CSV is flushed at least once a second, so a crash loses at most a second."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import IO, Any, Callable, Sequence

from llm_dvfs.exporter.backends.base import DeviceInfo
from llm_dvfs.exporter.samples_csv import header, sample_cells, sample_values, timestamp_cells
from llm_dvfs.exporter.store import Snapshot


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


class Recorder:
    """Opens its files at construction (so an unwritable path fails before sampling starts)."""

    def __init__(self, devices: Sequence[DeviceInfo], csv_path: str | Path | None = None,
                 json_path: str | Path | None = None, metadata: dict[str, Any] | None = None,
                 flush_every: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._devices = list(devices)
        self._json_path = Path(json_path) if json_path else None
        self._metadata = metadata or {}
        self._flush_every, self._clock = flush_every, clock
        self._file: IO[str] | None = None
        if csv_path:
            self._file = open(csv_path, "w", newline="")  # noqa: SIM115 - closed in close()
            self._writer = csv.writer(self._file)
            self._writer.writerow(header((d.kind, d.index) for d in self._devices))
            self._file.flush()
        if self._json_path:
            with open(self._json_path, "a"):  # fail now if it cannot be written
                pass
        self._last_flush = clock()
        self._first: Snapshot | None = None
        self._last: Snapshot | None = None
        self._energy_start: dict[int, float] = {}
        self._stats = {d.index: _DeviceStats() for d in self._devices}
        self._rows: list[dict[str, Any]] = []
        self._closed = False

    def __call__(self, snapshot: Snapshot) -> None:
        """One tick: append the row (the sampler calls this after publishing)."""
        if self._closed:
            return
        if self._first is None:
            self._first = snapshot
            self._energy_start = {d.info.index: d.energy_j for d in snapshot.devices}
        self._last = snapshot
        row = timestamp_cells(snapshot.wall_time)
        record: dict[str, Any] = {"timestamp": snapshot.wall_time, "devices": {}}
        for state in snapshot.devices:
            energy = state.energy_j - self._energy_start[state.info.index] if state.up else None
            values = sample_values(state.sample, energy)
            row += sample_cells(values)
            if state.sample is not None and state.sample.power_w is not None:
                self._stats[state.info.index].add(state.sample.power_w)
            record["devices"][str(state.info.index)] = values
        if self._json_path:
            self._rows.append(record)
        if self._file is not None:
            self._writer.writerow(row)
            now = self._clock()
            if now - self._last_flush >= self._flush_every:
                self._file.flush()
                self._last_flush = now

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

    def close(self) -> None:
        """Finish both files; safe to call twice (signal handler and normal exit)."""
        if self._closed:
            return
        self._closed = True
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        if self._json_path:
            doc = {**self._metadata,
                   "started_at": self._first.wall_time if self._first else None,
                   "ended_at": self._last.wall_time if self._last else None,
                   "devices": [{"index": d.index, "name": d.name, "uuid": d.uuid, "vendor": d.vendor,
                                "backend": d.backend, "source": d.source, "energy_source": d.energy_source}
                               for d in self._devices],
                   "stats": self.summary(), "samples": self._rows}
            tmp = self._json_path.with_suffix(self._json_path.suffix + ".tmp")
            tmp.write_text(json.dumps(doc))
            tmp.replace(self._json_path)
