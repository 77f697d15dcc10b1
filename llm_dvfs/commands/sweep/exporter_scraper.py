"""A running exporter given by `--exporter-url`: its /metrics polled into a level's samples CSV.

The exporter's own recorder is not ours to start here, so the sweep writes the same CSV format from scrapes
(every `interval` seconds; the energy column is the energy counter relative to the first scrape).
"""

from __future__ import annotations

import csv
import threading
import time
from datetime import datetime
from pathlib import Path

import requests

from llm_dvfs.common.errors import UsageError
from llm_dvfs.commands.sweep.exporter_metrics import Device, devices, fetch, parse

_FIELDS = ("power", "utilization", "temperature", "memory_used", "memory_total", "graphics_clock", "memory_clock",
           "sm_clock", "energy_j")
_MB = 1024 * 1024


def _row_values(samples: dict, device: Device) -> dict[str, float | None]:
    """One device's CSV cells from a scrape, converted to the CSV's units (%, MB, MHz)."""
    def get(what: str, scale: float = 1.0, **labels: str) -> float | None:
        name, want = f"{device.kind}_{what}", {device.kind: str(device.index), **labels}
        for (n, ls), v in samples.items():
            if n == name and all(dict(ls).get(k) == val for k, val in want.items()):
                return v * scale
        return None

    return {"power": get("power_watts"), "utilization": get("utilization_ratio", 100.0),
            "temperature": get("temperature_celsius"), "memory_used": get("memory_used_bytes", 1 / _MB),
            "memory_total": get("memory_total_bytes", 1 / _MB),
            "graphics_clock": get("clock_hertz", 1e-6, clock="graphics"),
            "memory_clock": get("clock_hertz", 1e-6, clock="memory"),
            "sm_clock": get("clock_hertz", 1e-6, clock="sm"), "energy_j": get("energy_joules_total")}


class ExporterScraper:
    """Polls `url` in a thread while a level runs."""

    def __init__(self, url: str, interval: float = 0.5) -> None:
        self.url, self.interval = url, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, level_dir: Path, timeout: float = 10.0) -> list[Device]:
        try:
            found = devices(parse(fetch(self.url, timeout=timeout)))
        except (requests.RequestException, ValueError) as exc:
            raise UsageError(f"cannot read the exporter at {self.url}: {exc}") from None
        if not found:
            raise UsageError(f"{self.url} serves no gpu_info: is it an llm-dvfs exporter?")
        self._stop.clear()
        self._thread = threading.Thread(target=self._record, args=(level_dir / "samples.csv", found), daemon=True)
        self._thread.start()
        return found

    def _record(self, path: Path, found: list[Device]) -> None:
        first_energy: dict[int, float] = {}
        with open(path, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["timestamp", "datetime"] + [f"{d.kind}_{d.index}_{name}" for d in found for name in _FIELDS])
            next_tick = time.monotonic()
            while not self._stop.is_set():
                try:
                    samples = parse(fetch(self.url, timeout=self.interval * 4))
                except (requests.RequestException, ValueError):
                    samples = {}
                now = time.time()
                row = [f"{now:.6f}", datetime.fromtimestamp(now).astimezone().isoformat(timespec="milliseconds")]
                for d in found:
                    values = _row_values(samples, d)
                    if values["energy_j"] is not None:
                        values["energy_j"] -= first_energy.setdefault(d.index, values["energy_j"])
                    row += ["" if values[name] is None else f"{values[name]:.3f}" for name in _FIELDS]
                out.writerow(row)
                f.flush()
                next_tick += self.interval
                self._stop.wait(max(0.0, next_tick - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
