"""Reading a running llm-dvfs exporter: one scrape of its /metrics, parsed into one reading per device.

The one place that knows how the exporter's series map back to devices; the load generator's energy window, the
sweep's recording and Locust's web UI all read exporters through it:

    snap = fetch("http://127.0.0.1:9945/metrics", timeout=5.0)   # raises ScrapeError
    for d in snap.devices:          # in (kind, index) order; kind "gpu", or "cpu" from the host backend
        d.index, d.uuid, d.name, d.role           # role: the series' `role` label, where a relabelling adds one
        d.power_watts, d.energy_joules            # W; J since the exporter started (None: not measured)
        d.sm_clock_hertz, d.clocks_hertz          # Hz; {"sm", "graphics", "memory"} as the device reports them
        d.clock_events_active                     # throttle reasons active now, e.g. {"sw_power_cap"}
        d.labels                                  # every gpu_info label: name, vendor, backend, energy_source...

Values are in the exporter's own SI units; a value the exporter does not serve (device down, not supported) is
None, never 0. `parse(text)` does the same for a page fetched some other way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping

import requests
from prometheus_client.parser import text_string_to_metric_families

from llm_dvfs.exporter.backends.base import GpuSample

KINDS = ("gpu", "cpu")
# metric suffix (after `<kind>_`) -> DeviceReading field, for the per-device series without extra labels
_VALUES = {"power_watts": "power_watts", "power_average_watts": "power_average_watts",
           "energy_joules_total": "energy_joules", "utilization_ratio": "utilization_ratio",
           "memory_utilization_ratio": "memory_utilization_ratio", "temperature_celsius": "temperature_celsius",
           "memory_used_bytes": "memory_used_bytes", "memory_total_bytes": "memory_total_bytes",
           "power_limit_watts": "power_limit_watts", "performance_state": "performance_state"}


class ScrapeError(RuntimeError):
    """The exporter could not be reached, answered with an error, or served something that is not metrics."""


@dataclass(frozen=True)
class DeviceReading:
    """One device as one scrape saw it (SI units; None = not served)."""

    kind: str
    index: int
    uuid: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)  # the `<kind>_info` labels
    up: bool | None = None
    power_watts: float | None = None
    power_average_watts: float | None = None
    energy_joules: float | None = None
    utilization_ratio: float | None = None
    memory_utilization_ratio: float | None = None
    temperature_celsius: float | None = None
    memory_used_bytes: float | None = None
    memory_total_bytes: float | None = None
    power_limit_watts: float | None = None
    performance_state: float | None = None
    clocks_hertz: Mapping[str, float] = field(default_factory=dict)
    max_clocks_hertz: Mapping[str, float] = field(default_factory=dict)
    clock_events: Mapping[str, bool] = field(default_factory=dict)  # every reason the device reports -> active

    @property
    def name(self) -> str:
        return self.labels.get("name", "unknown")

    @property
    def role(self) -> str | None:
        return self.labels.get("role")

    @property
    def sm_clock_hertz(self) -> float | None:
        return self.clocks_hertz.get("sm")

    @property
    def clock_events_active(self) -> frozenset[str]:
        return frozenset(reason for reason, on in self.clock_events.items() if on)

    def sample(self) -> GpuSample:
        """The reading as a backend sample (what the samples CSV writer takes)."""
        pstate = self.performance_state
        return GpuSample(power_w=self.power_watts, power_average_w=self.power_average_watts,
                         utilization=self.utilization_ratio, memory_utilization=self.memory_utilization_ratio,
                         temperature_c=self.temperature_celsius, memory_used_bytes=self.memory_used_bytes,
                         memory_total_bytes=self.memory_total_bytes, clocks_hz=dict(self.clocks_hertz),
                         power_limit_w=self.power_limit_watts,
                         performance_state=None if pstate is None else int(pstate),
                         clock_events=dict(self.clock_events) if self.clock_events else None)


@dataclass(frozen=True)
class Snapshot:
    """One scrape: when it was taken (Unix s) and every device the exporter lists in `<kind>_info`."""

    url: str
    time: float
    devices: tuple[DeviceReading, ...]

    def device(self, index: int, kind: str = "gpu") -> DeviceReading | None:
        return next((d for d in self.devices if d.kind == kind and d.index == index), None)


def parse(text: str, url: str = "", when: float | None = None, only: tuple[str, ...] | None = None) -> Snapshot:
    """The devices of one /metrics page; raise ScrapeError when it is not Prometheus text.

    `only`: keep just the series whose names start with these prefixes (the rest of the page is dropped line by line
    before parsing). For a reader inside a latency-sensitive process, e.g. Locust's web UI reading power and clocks
    every second: the histograms are most of the page and most of prometheus_client's parsing time.
    """
    if only is not None:
        text = "".join(line + "\n" for line in text.splitlines() if line.startswith(only))
    found: dict[tuple[str, int], dict] = {}
    try:
        samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    except (ValueError, TypeError, IndexError) as exc:
        raise ScrapeError(f"{url or 'the page'} is not Prometheus metrics: {exc}") from None
    for s in samples:
        kind, _, what = s.name.partition("_")
        if kind not in KINDS or kind not in s.labels:
            continue
        try:
            key = (kind, int(s.labels[kind]))
        except ValueError:
            continue
        d = found.setdefault(key, {"kind": kind, "index": key[1], "clocks_hertz": {}, "max_clocks_hertz": {},
                                   "clock_events": {}})
        d.setdefault("uuid", s.labels.get("uuid", ""))
        if what == "info":
            d["labels"] = {k: v for k, v in s.labels.items() if k not in (kind, "uuid")}
        elif what == "up":
            d["up"] = s.value >= 1
        elif what in ("clock_hertz", "max_clock_hertz") and "clock" in s.labels:
            d["clocks_hertz" if what == "clock_hertz" else "max_clocks_hertz"][s.labels["clock"]] = s.value
        elif what == "clock_event_active" and "reason" in s.labels:
            d["clock_events"][s.labels["reason"]] = s.value >= 1
        elif what in _VALUES:
            d[_VALUES[what]] = s.value
    devices = tuple(DeviceReading(**d) for key, d in sorted(found.items()) if "labels" in d)
    return Snapshot(url, time.time() if when is None else when, devices)


def fetch(url: str, timeout: float = 5.0, only: tuple[str, ...] | None = None) -> Snapshot:
    """Scrape `url` (an exporter's /metrics) once; raise ScrapeError with the reason when it cannot (`only`: as
    for `parse`)."""
    when = time.time()
    try:
        response = requests.get(url, timeout=timeout)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise ScrapeError(f"cannot read {url}: {exc}") from None
    return parse(response.text, url, when, only)
