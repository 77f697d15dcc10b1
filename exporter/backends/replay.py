"""Plays a recorded samples CSV back at its original pace, looping, so dashboards, reports and demos run
without a GPU. Everything it serves is marked `source="replay"`."""

from __future__ import annotations

import bisect
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
from llm_dvfs.exporter.samples_csv import Trace, TraceFormatError, read_trace

_MB = 1024 * 1024
_SLACK = 1e-3  # a tick due exactly on a row's time must not land on the row before through float rounding


class ReplayBackend(Backend):
    """Serves the trace row whose offset matches the time since start; the loop length is the trace's span
    plus one row interval, so the last row lasts as long as the others."""

    name = "replay"

    def __init__(self, path: str | Path, gpu_ids: Sequence[int] | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        try:
            self._trace: Trace = read_trace(path)
        except TraceFormatError as exc:
            raise BackendUnavailableError(f"malformed replay file: {exc}") from None
        self._indices = select_indices(sorted(self._trace.devices), gpu_ids)
        t = self._trace.timestamps
        self._offsets = [ts - t[0] for ts in t]
        self._loop = self._offsets[-1] + self._trace.interval
        self._clock, self._wall = clock, wall
        self._start = clock()
        self._wall_start = wall()
        self._last: dict[int, int] = {}  # device -> absolute row number (loop * rows + row) last served
        self._lock = threading.Lock()
        self._reasons = {i: sorted(set().union(*(e for e in self._trace.clock_events[i] if e))) for i in self._indices}
        stem = Path(path).stem
        self._info = [
            DeviceInfo(index=i, name=f"replay of {stem}", uuid=f"replay-{stem}-{i}", vendor="unknown",
                       driver="", backend=self.name, source="replay",
                       energy_source="counter" if self._has("energy_j", i) else "integrated",
                       kind="cpu" if self._trace.prefix == "cpu" else "gpu")
            for i in self._indices
        ]

    def _has(self, field: str, index: int) -> bool:
        return any(row.get(field) is not None for row in self._trace.devices[index])

    def devices(self) -> Sequence[DeviceInfo]:
        return self._info

    def _position(self) -> tuple[int, float]:
        """(absolute row number, trace seconds played) for now."""
        played = self._clock() - self._start
        loop, offset = divmod(played, self._loop)
        row = bisect.bisect_right(self._offsets, offset + _SLACK) - 1
        return int(loop) * len(self._offsets) + row, played

    def read(self, index: int) -> GpuSample:
        absolute, played = self._position()
        n = len(self._offsets)
        with self._lock:
            previous = self._last.get(index, absolute - 1)
            self._last[index] = absolute
        rows = self._trace.devices[index]
        row = rows[absolute % n]
        if row.get("power") is None:
            raise DeviceReadError(f"replayed GPU {index} was not read at this point of the trace")
        fresh = []
        for a in range(max(previous + 1, absolute - n + 1), absolute + 1):  # every row passed since last read
            watts = rows[a % n].get("power")
            if watts is not None:
                fresh.append(PowerSample(self._wall_start + (a // n) * self._loop + self._offsets[a % n], watts))

        def get(field: str, scale: float = 1.0) -> float | None:
            v = row.get(field)
            return None if v is None else v * scale

        clocks = {k: row[f"{k}_clock"] * 1e6 for k in ("sm", "memory", "graphics")
                  if row.get(f"{k}_clock") is not None}
        pstate = row.get("pstate")
        active = self._trace.clock_events[index][absolute % n]
        return GpuSample(
            power_w=row["power"], power_average_w=get("power_average"), energy_j=get("energy_j"),
            utilization=get("utilization", 0.01), temperature_c=get("temperature"),
            memory_used_bytes=get("memory_used", _MB), memory_total_bytes=get("memory_total", _MB),
            clocks_hz=clocks, power_limit_w=get("power_limit"),
            performance_state=int(pstate) if pstate is not None else None,
            clock_events=None if active is None else {r: r in active for r in self._reasons[index]},
            power_samples=tuple(fresh), replay_position_s=played,
        )
