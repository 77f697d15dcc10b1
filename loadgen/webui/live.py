"""One test as the Energy view sees it: a point per second, gathered off the timed path.

A background greenlet wakes once a second while a test runs, in the process that has the web UI (the local runner,
or the master of `--processes N` / `--master` runs, whose load generator metrics already hold every worker's
requests: distributed.py forwards them). Each tick scrapes the exporters and snapshots the load generator's own
metrics, which `LoadgenMetrics.observe` keeps anyway; nothing here runs inside a request or touches the raw samples.
Routes only read what the ticks stored.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Callable

import gevent
from prometheus_client import CollectorRegistry

from llm_dvfs.exporter.scrape import ScrapeError, Snapshot, fetch
from llm_dvfs.loadgen.webui.figures import MetricsSnapshot, between, snapshot
from llm_dvfs.loadgen.webui.gpus import GpuReading, gpu_readings, host_of

log = logging.getLogger(__name__)
TICK_S = 1.0
#: the charts show rates over this trailing window (workers report every few seconds: one tick would jitter)
WINDOW_S = 10.0
#: the shortest span a watts figure is taken over (the exporter's counter moves in 100 ms steps)
MIN_SPAN_S = 0.5
#: the exporter series the view shows; the rest of the page (histograms, mostly) is not parsed
SERIES = ("gpu_info", "gpu_power_watts", "gpu_energy_joules_total", "gpu_clock_", "gpu_max_clock_hertz",
          "gpu_power_limit_watts")
#: points kept per series (one a second: 24 h); the oldest go first
MAX_POINTS = 86_400


@dataclass
class Point:
    """One tick: watts per GPU (energy-counter average over the tick), their sum, and the trailing-window figures."""

    t: float  # seconds since the test started
    watts: dict[str, float]
    watts_total: float | None
    output_throughput: float | None
    joules_per_output_token: float | None
    median_ttft_ms: float | None
    p99_ttft_ms: float | None
    median_itl_ms: float | None
    p99_itl_ms: float | None


@dataclass
class _Tick:
    time: float
    metrics: MetricsSnapshot
    joules: dict[str, float]  # GPU key → cumulative joules (the exporter's counter)


@dataclass
class LiveEnergy:
    """The Energy view's data for the current (or last) test."""

    urls: list[str]
    registry: CollectorRegistry
    disaggregated: bool = False
    prompt_priced: bool = False  # a prefill-only workload: its energy is priced per prompt token too
    read: Callable[[str], Snapshot] = partial(fetch, timeout=2 * TICK_S, only=SERIES)
    clock: Callable[[], float] = time.time
    running: bool = False
    started_at: float | None = None
    points: deque[Point] = field(default_factory=lambda: deque(maxlen=MAX_POINTS))
    appended: int = 0  # points ever appended this test: clients ask for the ones after theirs
    gpus: list[GpuReading] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    totals: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    _first: _Tick | None = None
    _ticks: list[_Tick] = field(default_factory=list)
    _baseline: dict[str, float] = field(default_factory=dict)
    _last_reading: dict[str, tuple[float, float]] = field(default_factory=dict)  # GPU → (time, joules)
    _greenlet: gevent.Greenlet | None = None

    # -- test lifecycle (Locust's test_start / test_stop) ------------------------------------------------------------
    def start(self) -> None:
        self.stop()
        self.running, self.started_at = True, self.clock()
        self.points, self.appended = deque(maxlen=MAX_POINTS), 0
        self.gpus, self.errors, self.totals, self.warnings = [], {}, {}, []
        self._first, self._ticks, self._baseline, self._last_reading = None, [], {}, {}
        self.tick()
        self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
        if self.running:
            self.running = False
            self.tick()

    def _loop(self) -> None:
        next_at = time.monotonic()
        while True:
            next_at += TICK_S
            late = time.monotonic() - next_at
            if late > 0:  # the process was busy: skip the missed slots rather than tick back to back
                next_at += math.ceil(late / TICK_S) * TICK_S
            gevent.sleep(max(0.0, next_at - time.monotonic()))
            try:
                self.tick()
            except Exception:  # a view must never take the test down: log it and tick on
                log.exception("loadgen: energy view tick failed")

    # -- one tick ------------------------------------------------------------------------------------------------
    def tick(self) -> None:
        fresh = self._read_gpus()
        now = self.clock()  # after the scrape: the time its readings are from, within the exporter's tick
        joules = {g.key: g.energy_joules for g in fresh if g.energy_joules is not None}
        for key, value in joules.items():
            self._baseline.setdefault(key, value)
        current = _Tick(now, snapshot(self.registry), joules)
        if self._first is None:
            self._first = current
        first_tick = not self._ticks
        watts = self._watts(current)
        self._ticks.append(current)
        while self._ticks[0].time < now - WINDOW_S - TICK_S:
            self._ticks.pop(0)
        window_start = next(t for t in self._ticks if t.time >= now - WINDOW_S - TICK_S / 2)
        self.totals = between(self._first.metrics, current.metrics, now - self._first.time, self._energy(),
                              self.prompt_priced)
        if not first_tick:
            self._append_point(watts, window_start, current)

    def _read_gpus(self) -> list[GpuReading]:
        """Scrape every exporter; an exporter that fails keeps its last readings on show (named in `errors`)
        but gives no joules this tick."""
        fresh: list[GpuReading] = []
        shown: list[GpuReading] = []
        for i, url in enumerate(self.urls):
            try:
                readings = gpu_readings(self.read(url), i, len(self.urls), self.disaggregated)
                self.errors.pop(url, None)
                fresh += readings
            except ScrapeError as exc:
                self.errors[url] = str(exc)
                readings = [g for g in self.gpus if g.host == host_of(url)]
            shown += readings
        self.gpus = shown
        return fresh

    def _energy(self) -> float | None:
        """Joules since the test started, summed over the GPUs; a GPU whose counter went back is left out."""
        if not self.urls or not self._baseline:
            return None
        total = 0.0
        for g in self.gpus:
            begin = self._baseline.get(g.key)
            if begin is None or g.energy_joules is None:
                continue
            if g.energy_joules < begin:
                warning = f"{g.key}: energy counter reset mid-test, left out"
                if warning not in self.warnings:
                    self.warnings.append(warning)
                continue
            total += g.energy_joules - begin
        return total

    def _watts(self, current: _Tick) -> dict[str, float]:
        """Each GPU's energy-counter average since its last reading at least MIN_SPAN_S before (a failed scrape
        in between only makes the span longer)."""
        watts = {}
        for key, j in current.joules.items():
            last = self._last_reading.get(key)
            if last is None or j < last[1]:  # first reading, or the counter was reset
                self._last_reading[key] = (current.time, j)
            elif current.time - last[0] >= MIN_SPAN_S:  # shorter spans see the exporter's 100 ms steps
                watts[key] = (j - last[1]) / (current.time - last[0])
                self._last_reading[key] = (current.time, j)
        return watts

    def _append_point(self, watts: dict[str, float], window_start: _Tick, current: _Tick) -> None:
        span = current.time - window_start.time
        if span < MIN_SPAN_S:  # the test has just begun: no rates yet
            span = 0.0
        complete = span > 0 and bool(current.joules) and all(
            key in window_start.joules and j >= window_start.joules[key] for key, j in current.joules.items())
        window_joules = (sum(j - window_start.joules[key] for key, j in current.joules.items())
                         if complete else None)  # a GPU missing at either end: no figure rather than a low one
        figures = between(window_start.metrics, current.metrics, span, window_joules)
        self.points.append(Point(
            t=current.time - self.started_at, watts=watts,
            watts_total=sum(watts.values()) if watts else None,
            output_throughput=figures["output_throughput"],
            joules_per_output_token=figures["joules_per_output_token"],
            median_ttft_ms=figures["median_ttft_ms"], p99_ttft_ms=figures["p99_ttft_ms"],
            median_itl_ms=figures["median_itl_ms"], p99_itl_ms=figures["p99_itl_ms"]))
        self.appended += 1

    # -- what the routes read ----------------------------------------------------------------------------------------
    def view(self, since: int = 0) -> dict[str, Any]:
        """The view's JSON: the latest figures and GPUs, and the points numbered `since` and after."""
        oldest = self.appended - len(self.points)
        points = list(self.points)[max(0, since - oldest):]
        return {"running": self.running, "started_at": self.started_at,
                "exporters": list(self.urls), "exporter_errors": dict(self.errors), "warnings": list(self.warnings),
                "totals": dict(self.totals), "gpus": [asdict(g) for g in self.gpus],
                "points_total": self.appended, "points_from": max(since, oldest),
                "points": [asdict(p) for p in points]}
