"""Plays a recorded samples CSV back at its original pace, looping, so dashboards, reports and demos run
without a GPU. Everything it serves is marked `source="replay"`.

The file is read row by row as it plays (exporter/backends/replay_cursor.py), so a long trace starts at once and
costs the same memory as a short one. Its first rows are checked at start; a malformed row further on (a recorder
killed mid-row) ends each loop there, said once on stderr."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from llm_dvfs.exporter.backends.base import (
    Backend,
    BackendUnavailableError,
    DeviceInfo,
    DeviceReadError,
    GpuSample,
    PowerSample,
    select_indices,
)
from llm_dvfs.exporter.backends.replay_cursor import ReplayCursor
from llm_dvfs.exporter.samples_csv import SamplesReader, TraceFormatError

_MB = 1024 * 1024


class ReplayBackend(Backend):
    """Serves the trace row due at the time since start, and as power samples every row passed since the
    device's previous read."""

    name = "replay"

    def __init__(self, path: str | Path, gpu_ids: Sequence[int] | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        try:
            reader = SamplesReader(path, strict=True)
            if not reader.devices or any("power" not in reader.fields(i) for i in reader.devices):
                raise TraceFormatError(f"{reader.path}: no gpu_<i>_power columns in the header")
            self._cursor = ReplayCursor(reader)
        except TraceFormatError as exc:
            raise BackendUnavailableError(f"malformed replay file: {exc}") from None
        self._indices = select_indices(reader.devices, gpu_ids)
        self._clock, self._wall = clock, wall
        self._start = clock()
        self._wall_start = wall()
        self._last: dict[int, int] = {}  # device -> sequence number of the row it was last served
        self._lock = threading.Lock()
        first = self._cursor.first
        # every reason the first rows show, active or not; one first seen later joins from then on
        self._reasons = {i: set().union(*(r.clock_events[i] or () for r in first)) for i in self._indices}
        stem = Path(path).stem
        self._info = [
            DeviceInfo(index=i, name=f"replay of {stem}", uuid=f"replay-{stem}-{i}", vendor="unknown",
                       driver="", backend=self.name, source="replay",
                       energy_source="counter" if any(r.values[i].get("energy_j") is not None for r in first)
                       else "integrated",
                       kind="cpu" if reader.prefix == "cpu" else "gpu")
            for i in self._indices
        ]

    def devices(self) -> Sequence[DeviceInfo]:
        return self._info

    def read(self, index: int) -> GpuSample:
        played = self._clock() - self._start
        with self._lock:
            current = self._cursor.advance(played)
            if current is None:
                raise DeviceReadError("the replayed file cannot be read any more")
            passed = self._cursor.since(self._last.get(index, current.seq - 1))
            self._last[index] = current.seq
            active = current.row.clock_events[index]
            reasons = self._reasons[index]
            reasons |= active or set()
            reason_names = sorted(reasons)
        row = current.row.values[index]
        if row.get("power") is None:
            raise DeviceReadError(f"replayed GPU {index} was not read at this point of the trace")
        fresh = [PowerSample(self._wall_start + p.offset, p.row.values[index]["power"]) for p in passed
                 if p.row.values[index].get("power") is not None]

        def get(field: str, scale: float = 1.0) -> float | None:
            v = row.get(field)
            return None if v is None else v * scale

        clocks = {k: row[f"{k}_clock"] * 1e6 for k in ("sm", "memory", "graphics")
                  if row.get(f"{k}_clock") is not None}
        pstate = row.get("pstate")
        return GpuSample(
            power_w=row["power"], power_average_w=get("power_average"), energy_j=get("energy_j"),
            utilization=get("utilization", 0.01), temperature_c=get("temperature"),
            memory_used_bytes=get("memory_used", _MB), memory_total_bytes=get("memory_total", _MB),
            clocks_hz=clocks, power_limit_w=get("power_limit"),
            performance_state=int(pstate) if pstate is not None else None,
            clock_events=None if active is None else {r: r in active for r in reason_names},
            power_samples=tuple(fresh), replay_position_s=played,
        )
