"""The latest tick's state per device, a histogram of every power sample seen, and energy counters that
survive hardware counter resets. The sampler writes it once per tick; scrapes and the recorder only read
immutable snapshots, so a scrape never sees half a tick."""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from exporter.backends.base import DeviceError, DeviceInfo, GpuSample, PowerSample

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


class PowerHistogram:
    """Counts every power sample (tick readings and driver-buffer samples) into fixed buckets."""

    def __init__(self, bounds: Sequence[float] = POWER_BUCKETS) -> None:
        self._bounds = tuple(bounds)
        self._counts = [0] * (len(self._bounds) + 1)
        self._sum = 0.0

    def observe(self, watts: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, watts)] += 1
        self._sum += watts

    def frozen(self) -> Histogram:
        cumulative, running = [], 0
        for c in self._counts:
            running += c
            cumulative.append(running)
        return Histogram(self._bounds, tuple(cumulative), self._sum, running)


class EnergyCounter:
    """Joules since the exporter started. Uses the hardware counter's deltas where there is one (a drop means
    it was reset: that tick's energy is then power × time), else integrates power samples (trapezoids)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.resets = 0
        self._last_counter: float | None = None
        self._last_point: PowerSample | None = None

    def add(self, wall_time: float, sample: GpuSample) -> None:
        points = list(sample.power_samples)  # the driver's own samples are denser and carry their own times
        if not points and sample.power_w is not None:
            points = [PowerSample(wall_time, sample.power_w)]
        integrated = self._integrate(points)
        if sample.energy_j is None:
            self.total += integrated
            return
        if self._last_counter is not None:
            delta = sample.energy_j - self._last_counter
            if delta >= 0:
                self.total += delta
            else:
                self.resets += 1
                self.total += integrated
        self._last_counter = sample.energy_j

    def _integrate(self, points: list[PowerSample]) -> float:
        joules = 0.0
        for p in points:
            last = self._last_point
            if last is not None and p.timestamp > last.timestamp:
                joules += (p.timestamp - last.timestamp) * (p.watts + last.watts) / 2
            if last is None or p.timestamp > last.timestamp:
                self._last_point = p
        return joules

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
                energy.add(wall_time, result)
                observed = [p.watts for p in result.power_samples]
                if not observed and result.power_w is not None:
                    observed = [result.power_w]
                for watts in observed:
                    histogram.observe(watts)
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
