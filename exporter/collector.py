"""The /metrics view: a prometheus_client custom collector that builds fresh families from the latest snapshot
on every scrape. A device whose last read failed keeps only `gpu_up 0` and `gpu_info`, so nothing stale (and no
fake 0 W) is ever served; a device that is gone from the snapshot is gone from /metrics."""

from __future__ import annotations

from typing import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from llm_dvfs.exporter.backends.base import DeviceInfo
from llm_dvfs.exporter.recorder import FileHealth
from llm_dvfs.exporter.sampler import SamplerStats
from llm_dvfs.exporter.store import DeviceState, Histogram, Snapshot

SELF = "llm_dvfs_exporter"


def _buckets(h: Histogram) -> list[tuple[str, float]]:
    return [(repr(float(b)), c) for b, c in zip(h.bounds, h.counts)] + [("+Inf", h.counts[-1])]


class _Families:
    """Lazily created families for one device kind ("gpu" or "cpu"), named `<kind>_<what>`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.labels = [kind, "uuid"]
        self._families: dict[str, Metric] = {}

    def family(self, what: str, make: Callable[[str], Metric]) -> Metric:
        """The family `<kind>_<what>`, created by `make(name)` on first use."""
        name = f"{self.kind}_{what}"
        if name not in self._families:
            self._families[name] = make(name)
        return self._families[name]

    def gauge(self, what: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
        return self.family(what, lambda name: GaugeMetricFamily(name, doc, labels=[*self.labels, *extra]))

    def add(self, what: str, doc: str, state: DeviceState, value: float | None, **extra: str) -> None:
        if value is None:
            return
        key = [str(state.info.index), state.info.uuid]
        self.gauge(what, doc, tuple(extra)).add_metric([*key, *extra.values()], value)

    def all(self) -> list[Metric]:
        return list(self._families.values())


class ExporterCollector(Collector):
    """Reads the store's snapshot and the sampler's self-metrics; never touches hardware."""

    def __init__(self, snapshot: Callable[[], Snapshot], stats: Callable[[], SamplerStats], interval: float,
                 recorder_health: Callable[[], list[FileHealth]] | None = None) -> None:
        self._snapshot, self._stats, self._interval = snapshot, stats, interval
        self._recorder_health = recorder_health

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        by_kind: dict[str, _Families] = {}
        for state in snap.devices:
            fams = by_kind.setdefault(state.info.kind, _Families(state.info.kind))
            self._device(fams, state)
        for fams in by_kind.values():
            yield from fams.all()
        yield from self._self_metrics(snap)

    def _device(self, f: _Families, state: DeviceState) -> None:
        info: DeviceInfo = state.info
        key = [str(info.index), info.uuid]
        f.gauge("up", "1 if the device was read in the latest tick, else 0").add_metric(key, 1.0 if state.up else 0.0)
        info_family = f.gauge("info", "Device identity; energy_source (counter, counter_interpolated, integrated, "
                                      "none) says how gpu_energy_joules_total is made",
                              ("name", "vendor", "driver", "backend", "source", "energy_source"))
        info_family.add_metric([*key, info.name, info.vendor, info.driver, info.backend, info.source,
                                info.energy_source], 1.0)
        for clock, hz in info.max_clocks_hz.items():
            f.add("max_clock_hertz", "Maximum clock", state, hz, clock=clock)
        s = state.sample
        if s is None:
            return
        f.add("power_watts", "Latest instant power draw", state, s.power_w)
        f.add("power_average_watts", "The driver's averaged power (about 1 s on NVIDIA Hopper)", state,
              s.power_average_w)
        if info.energy_source != "none":
            self._energy(f, state, key)
        for clock, hz in s.clocks_hz.items():
            f.add("clock_hertz", "Current clock", state, hz, clock=clock)
        f.add("utilization_ratio", "Fraction of time a kernel was running (0-1)", state, s.utilization)
        f.add("memory_utilization_ratio", "Fraction of time device memory was being read or written (0-1)", state,
              s.memory_utilization)
        f.add("temperature_celsius", "Temperature", state, s.temperature_c)
        f.add("memory_used_bytes", "Device memory in use", state, s.memory_used_bytes)
        f.add("memory_total_bytes", "Device memory", state, s.memory_total_bytes)
        f.add("power_limit_watts", "Enforced power limit", state, s.power_limit_w)
        f.add("performance_state", "Performance state (P0 = 0 is the fastest)", state,
              None if s.performance_state is None else float(s.performance_state))
        for reason, active in (s.clock_events or {}).items():
            f.add("clock_event_active", "1 while this clock-event (throttle) reason is active", state,
                  1.0 if active else 0.0, reason=reason)

    @staticmethod
    def _energy(f: _Families, state: DeviceState, key: list[str]) -> None:
        f.family("energy_joules", lambda name: CounterMetricFamily(
            name, "Energy since the exporter started (never decreasing): power samples integrated, held to the "
                  "hardware counter; gpu_info energy_source says how often that is read: counter = every tick, "
                  "counter_interpolated = every --energy-interval, integrated = no counter",
            labels=f.labels)).add_metric(key, state.energy_j)
        h = state.power_histogram
        f.family("power_samples_watts", lambda name: HistogramMetricFamily(
            name, "Every power sample seen, driver-buffer samples included", labels=f.labels,
        )).add_metric(key, _buckets(h), h.total)

    def _self_metrics(self, snap: Snapshot) -> Iterator[Metric]:
        st = self._stats()
        yield CounterMetricFamily(f"{SELF}_ticks", "Sampling ticks taken", value=st.ticks)
        yield CounterMetricFamily(f"{SELF}_late_ticks", "Ticks that started later than 20% of the interval",
                                  value=st.late_ticks)
        yield CounterMetricFamily(f"{SELF}_missed_ticks", "Scheduled ticks skipped because the sampler fell behind",
                                  value=st.missed_ticks)
        h = st.tick_duration
        yield HistogramMetricFamily(f"{SELF}_tick_duration_seconds", "Time to read every device and publish",
                                    buckets=_buckets(h), sum_value=h.total)
        h = st.tick_lateness
        yield HistogramMetricFamily(f"{SELF}_tick_lateness_seconds", "How long after its scheduled time each tick "
                                    "started (jitter)", buckets=_buckets(h), sum_value=h.total)
        errors = CounterMetricFamily(f"{SELF}_read_errors", "Failed reads by device and kind (lost, read, "
                                                            "timeout, or the field that failed)",
                                     labels=["gpu", "kind"])
        for (index, kind), count in sorted(st.read_errors.items()):
            errors.add_metric([str(index), kind], count)
        yield errors
        yield GaugeMetricFamily(f"{SELF}_interval_seconds", "Sampling interval", value=self._interval)
        yield GaugeMetricFamily(f"{SELF}_gpus", "GPUs being sampled (0 on the host backend: no GPU here)",
                                value=sum(1 for d in snap.devices if d.info.kind == "gpu"))
        if snap.tick:
            yield GaugeMetricFamily(f"{SELF}_last_tick_timestamp_seconds", "Unix time of the latest tick",
                                    value=snap.wall_time)
        resets = CounterMetricFamily(f"{SELF}_energy_resets", "Drops of the hardware energy counter (resets) seen",
                                     labels=["gpu", "uuid"])
        position = GaugeMetricFamily(f"{SELF}_replay_position_seconds", "Trace seconds replayed so far (replay "
                                                                         "backend)", labels=["gpu", "uuid"])
        for d in snap.devices:
            resets.add_metric([str(d.info.index), d.info.uuid], d.energy_resets)
            if d.sample is not None and d.sample.replay_position_s is not None:
                position.add_metric([str(d.info.index), d.info.uuid], d.sample.replay_position_s)
        yield resets
        if position.samples:
            yield position
        if self._recorder_health is not None:
            yield from self._recorder_metrics(self._recorder_health())

    @staticmethod
    def _recorder_metrics(files: list[FileHealth]) -> Iterator[Metric]:
        up = GaugeMetricFamily(f"{SELF}_recorder_up", "1 if the latest write of this recorded file (--output, "
                               "--json) succeeded, 0 while writes fail (rows then wait in memory)", labels=["file"])
        errors = CounterMetricFamily(f"{SELF}_recorder_errors", "Failed writes of a recorded file (disk full, I/O "
                                     "error), one per attempt (about once a second while it lasts)", labels=["file"])
        dropped = CounterMetricFamily(f"{SELF}_recorder_dropped_rows", "Rows never written because writes failed "
                                      "for longer than the memory kept for them", labels=["file"])
        for f in files:
            up.add_metric([f.path], 1.0 if f.up else 0.0)
            errors.add_metric([f.path], f.errors)
            dropped.add_metric([f.path], f.dropped_rows)
        yield from (up, errors, dropped)
