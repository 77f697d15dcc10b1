"""What the Energy view shows of each GPU, taken from one scrape of an llm-dvfs exporter (`exporter/scrape.py`).

The exporters come from `--exporter-url` (one per host: repeated or comma-separated). In a disaggregated run (a
locustfile whose user reads the proxy's prefill header) the roles follow the series' own `role` label where a
relabelling adds one, else prometheus.yml's default map: with one exporter GPU 0 is prefill and GPU 1 decode; with
several, the first exporter's GPUs are prefill and the second's decode.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from llm_dvfs.exporter.scrape import Snapshot

DEFAULT_ROLES = {"0": "prefill", "1": "decode"}


def role_of(exporter: int, exporters: int, gpu: str, disaggregated: bool) -> str | None:
    if not disaggregated:
        return None
    if exporters == 1:
        return DEFAULT_ROLES.get(gpu)
    return ("prefill", "decode")[exporter] if exporter < 2 else None


def host_of(url: str) -> str:
    return urlsplit(url).netloc or url


@dataclass(frozen=True)
class GpuReading:
    """One GPU at one scrape; None where the exporter has no value (never a fake 0)."""

    key: str  # unique across exporters: "gpu 0", or "host:port gpu 0" with several exporters
    host: str
    index: str
    name: str | None
    role: str | None
    power_watts: float | None
    energy_joules: float | None
    sm_clock_hertz: float | None
    max_sm_clock_hertz: float | None
    memory_clock_hertz: float | None
    power_limit_watts: float | None
    throttle_reasons: tuple[str, ...]


def gpu_readings(snapshot: Snapshot, exporter: int, exporters: int, disaggregated: bool) -> list[GpuReading]:
    """The GPUs of one scrape of exporter number `exporter` (of `exporters`), in index order."""
    host = host_of(snapshot.url)
    return [GpuReading(
        key=f"gpu {d.index}" if exporters == 1 else f"{host} gpu {d.index}", host=host, index=str(d.index),
        name=d.labels.get("name"), role=d.role or role_of(exporter, exporters, str(d.index), disaggregated),
        power_watts=d.power_watts, energy_joules=d.energy_joules, sm_clock_hertz=d.sm_clock_hertz,
        max_sm_clock_hertz=d.max_clocks_hertz.get("sm"), memory_clock_hertz=d.clocks_hertz.get("memory"),
        power_limit_watts=d.power_limit_watts, throttle_reasons=tuple(sorted(d.clock_events_active)))
        for d in snapshot.devices if d.kind == "gpu"]
