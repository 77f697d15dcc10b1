"""The latest tick's state per device, a histogram of every power sample seen, and energy counters that
survive hardware counter resets. The sampler writes it once per tick; scrapes and the recorder only read
immutable snapshots, so a scrape never sees half a tick."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from llm_dvfs.common.buckets import BucketCounts
from llm_dvfs.exporter.backends.base import DeviceError, DeviceInfo, GpuSample
from llm_dvfs.exporter.energy import EnergyCounter

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

    def observe_many(self, watts: Iterable[float]) -> None:
        self._buckets.observe_many(watts)
        self._frozen = None

    def frozen(self) -> Histogram:
        if self._frozen is None:
            self._frozen = frozen_histogram(self._buckets)
        return self._frozen


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
        self._energy = {d.index: EnergyCounter(d.counter_staleness_s) for d in devices}
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
                    histogram.observe_many(p.watts for p in result.power_samples)
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
