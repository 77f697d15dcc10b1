"""GPU energy over the test window, from an llm-dvfs exporter's `gpu_energy_joules_total{gpu,uuid}` counters.

Read once at test start and once at stop; the difference per GPU is that GPU's energy (a counter that went
backwards was reset, so that GPU is left out and named in `energy_warnings`). With several exporters (one per
host) a GPU is named `host:port/index`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence
from urllib.parse import urlsplit

from llm_dvfs.exporter.scrape import ScrapeError, fetch

COUNTER = "gpu_energy_joules_total"


class EnergyReadError(RuntimeError):
    """The exporter could not be read or exports no energy counter."""


def read_energy(url: str, timeout: float = 5.0) -> dict[str, float]:
    """{gpu index: cumulative joules} from one scrape of the exporter's /metrics page."""
    try:
        snapshot = fetch(url, timeout=timeout)
    except ScrapeError as exc:
        raise EnergyReadError(str(exc)) from None
    joules = {str(d.index): d.energy_joules for d in snapshot.devices
              if d.kind == "gpu" and d.energy_joules is not None}
    if not joules:
        raise EnergyReadError(f"{url} exports no {COUNTER}")
    return joules


def read_energies(urls: Sequence[str]) -> dict[str, float]:
    """{gpu: cumulative joules} over every exporter: keyed by index for one, by `host:port/index` for several."""
    if len(urls) == 1:
        return read_energy(urls[0])
    return {f"{urlsplit(url).netloc or url}/{gpu}": joules for url in urls for gpu, joules in read_energy(url).items()}


@dataclass
class EnergyWindow:
    """Energy between `start()` and `stop()`; `figures()` turns it into the results.json energy keys."""

    urls: Sequence[str]
    clock: Callable[[], float] = time.time
    started: dict[str, float] = field(default_factory=dict)
    stopped: dict[str, float] = field(default_factory=dict)
    start_time: float = 0.0
    stop_time: float = 0.0

    def start(self) -> None:
        self.started, self.start_time = read_energies(self.urls), self.clock()

    def stop(self) -> None:
        self.stopped, self.stop_time = read_energies(self.urls), self.clock()

    def figures(self, output_tokens: int, completed: int) -> dict[str, object]:
        by_gpu: dict[str, float] = {}
        warnings: list[str] = []
        for gpu, end in self.stopped.items():
            begin = self.started.get(gpu)
            if begin is None or end < begin:
                warnings.append(f"gpu {gpu}: energy counter {'appeared' if begin is None else 'reset'} mid-test")
                continue
            by_gpu[gpu] = end - begin
        total = sum(by_gpu.values())
        seconds = self.stop_time - self.start_time
        figures: dict[str, object] = {
            "energy_joules": total, "energy_joules_by_gpu": by_gpu,
            "joules_per_output_token": total / output_tokens if output_tokens else None,
            "joules_per_request": total / completed if completed else None,
            "avg_watts": total / seconds if seconds > 0 else None,
            "energy_window_s": seconds,
        }
        if warnings:
            figures["energy_warnings"] = warnings
        return figures
