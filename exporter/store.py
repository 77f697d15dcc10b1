"""The latest tick's state per device, a histogram of every power sample seen, and energy counters that
survive hardware counter resets. The sampler writes it once per tick; scrapes and the recorder only read
immutable snapshots, so a scrape never sees half a tick."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from llm_dvfs.common.buckets import BucketCounts
from llm_dvfs.exporter.backends.base import DeviceError, DeviceInfo, GpuSample, PowerSample

# Watts; spans an idle GPU (~50 W) to a 1 kW accelerator.
POWER_BUCKETS: tuple[float, ...] = (25, 50, 75, 100, 150, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 1000,
                                    1200, 1500)


@dataclass(frozen=True)
class Histogram:
    """Cumulative counts per upper bound (the last is +Inf), like a Prometheus histogram."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float
    count: int


def frozen_histogram(buckets: BucketCounts) -> Histogram:
    """An immutable copy of `buckets`, cumulative as Prometheus wants them."""
    cumulative = buckets.cumulative()
    return Histogram(buckets.bounds, cumulative, buckets.sum, cumulative[-1])


class PowerHistogram:
    """Counts every power sample (tick readings and driver-buffer samples) into fixed buckets."""

    def __init__(self, bounds: Sequence[float] = POWER_BUCKETS) -> None:
        self._buckets = BucketCounts(bounds)
        self._frozen: Histogram | None = None  # reused until the next observation: most ticks add none

    def observe(self, watts: float) -> None:
        self._buckets.observe(watts)
        self._frozen = None

    def frozen(self) -> Histogram:
        if self._frozen is None:
            self._frozen = frozen_histogram(self._buckets)
        return self._frozen


class EnergyCounter:
    """Joules since the exporter started; never goes backwards.

    Each hardware counter read re-anchors: the anchored total grows by the counter's delta (or, when the counter
    dropped, i.e. was reset, by the power integrated since the last read). Between reads, power samples are
    integrated (trapezoids, only the part after the last read) on top of the anchor, so the value stays fresh
    while the ~3 ms counter is read only every few ticks. If the integral ran ahead of the counter, the exported
    total holds until anchor + integral passes it again. A device without a counter is integrated throughout.
    """

    def __init__(self) -> None:
        self.total = 0.0
        self.resets = 0
        self._anchored = 0.0  # joules up to the latest counter read
        self._since = 0.0  # joules integrated after the latest counter read
        self._anchor_time: float | None = None  # wall time of the latest counter read
        self._last_counter: float | None = None
        self._last_point: PowerSample | None = None

    def add(self, wall_time: float, sample: GpuSample) -> None:
        # The driver's own samples are denser and carry their own times; on ticks without them the tick's reading
        # keeps the integral fresh. Only points newer than the last one integrated count, so a drained buffer
        # never integrates a stretch twice.
        points = sample.power_samples
        if not points and sample.power_w is not None:
            points = (PowerSample(wall_time, sample.power_w),)
        if points:
            self._since += self._integrate(points)
        if sample.energy_j is not None:
            self._anchor(wall_time, sample.energy_j)
        self.total = max(self.total, self._anchored + self._since)

    def _anchor(self, wall_time: float, counter: float) -> None:
        if self._last_counter is None:  # first read: count on from what was exported so far
            self._anchored = self.total
        elif counter < self._last_counter:
            self.resets += 1
            self._anchored += self._since
        else:
            self._anchored += counter - self._last_counter
        self._since = 0.0
        self._anchor_time = wall_time
        self._last_counter = counter

    def _integrate(self, points: Sequence[PowerSample]) -> float:
        joules = 0.0
        for p in points:
            last = self._last_point
            if last is not None and p.timestamp > last.timestamp:
                joules += self._after_anchor(last, p)
            if last is None or p.timestamp > last.timestamp:
                self._last_point = p
        return joules

    def _after_anchor(self, a: PowerSample, b: PowerSample) -> float:
        """The trapezoid a -> b, cut to the part after the latest counter read (the counter holds the rest)."""
        start = a.timestamp if self._anchor_time is None else max(a.timestamp, self._anchor_time)
        if start >= b.timestamp:
            return 0.0
        w_start = a.watts + (b.watts - a.watts) * (start - a.timestamp) / (b.timestamp - a.timestamp)
        return (b.timestamp - start) * (w_start + b.watts) / 2

    def gap(self) -> None:
        """A failed read: do not integrate across the hole (the hardware counter still covers it)."""
        self._last_point = None


@dataclass(frozen=True)
class DeviceState:
    """One device after one tick: its sample, or the error that replaced it."""

    info: DeviceInfo
    sample: GpuSample | None
    error: DeviceError | None
    energy_j: float  # since the exporter started
    energy_resets: int
    power_histogram: Histogram

    @property
    def up(self) -> bool:
        return self.sample is not None


@dataclass(frozen=True)
class Snapshot:
    """Everything one tick produced, published as a whole."""

    tick: int
    wall_time: float
    devices: tuple[DeviceState, ...] = field(default_factory=tuple)


class Store:
    """Owns the per-device accumulators; `update` publishes a new Snapshot atomically."""

    def __init__(self, devices: Sequence[DeviceInfo], bounds: Sequence[float] = POWER_BUCKETS) -> None:
        self._devices = list(devices)
        self._energy = {d.index: EnergyCounter() for d in devices}
        self._histograms = {d.index: PowerHistogram(bounds) for d in devices}
        self._lock = threading.Lock()
        self._snapshot = Snapshot(tick=0, wall_time=0.0, devices=tuple(
            DeviceState(d, None, None, 0.0, 0, self._histograms[d.index].frozen()) for d in devices))

    @property
    def devices(self) -> list[DeviceInfo]:
        return list(self._devices)

    def update(self, tick: int, wall_time: float, results: Mapping[int, GpuSample | DeviceError]) -> Snapshot:
        states = []
        for info in self._devices:
            result = results.get(info.index)
            energy, histogram = self._energy[info.index], self._histograms[info.index]
            if isinstance(result, GpuSample):
                energy.add(result.read_at if result.read_at is not None else wall_time, result)
                if result.power_samples:
                    for p in result.power_samples:
                        histogram.observe(p.watts)
                elif not result.buffered and result.power_w is not None:
                    histogram.observe(result.power_w)
                states.append(DeviceState(info, result, None, energy.total, energy.resets, histogram.frozen()))
            else:
                energy.gap()
                states.append(DeviceState(info, None, result, energy.total, energy.resets, histogram.frozen()))
        snapshot = Snapshot(tick=tick, wall_time=wall_time, devices=tuple(states))
        with self._lock:
            self._snapshot = snapshot
        return snapshot

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot
