"""A running exporter given by `--exporter-url`: its /metrics polled into a level's samples CSV.

The exporter's own recorder is not ours to start here, so the sweep writes the same CSV from scrapes (every
`interval` seconds; the energy column is the energy counter relative to the first scrape), through the exporter's
own scrape parser and CSV writer.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from llm_dvfs.common.errors import UsageError
from llm_dvfs.exporter.scrape import DeviceReading, ScrapeError, fetch
from llm_dvfs.exporter.samples_csv import SamplesWriter, sample_values


class ExporterScraper:
    """Polls `url` in a thread while a level runs."""

    def __init__(self, url: str, interval: float = 0.5) -> None:
        self.url, self.interval = url, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, level_dir: Path, timeout: float = 10.0) -> list[DeviceReading]:
        try:
            found = list(fetch(self.url, timeout=timeout).devices)
        except ScrapeError as exc:
            raise UsageError(f"cannot read the exporter at {self.url}: {exc}") from None
        if not found:
            raise UsageError(f"{self.url} serves no gpu_info: is it an llm-dvfs exporter?")
        self._stop.clear()
        self._thread = threading.Thread(target=self._record, args=(level_dir / "samples.csv", found), daemon=True)
        self._thread.start()
        return found

    def _record(self, path: Path, found: list[DeviceReading]) -> None:
        first_energy: dict[tuple[str, int], float] = {}
        out = SamplesWriter(path, [(d.kind, d.index) for d in found])
        try:
            next_tick = time.monotonic()
            while not self._stop.is_set():
                try:
                    snap = fetch(self.url, timeout=self.interval * 4)
                except ScrapeError:
                    snap = None
                row = []
                for d in found:
                    now = snap.device(d.index, d.kind) if snap else None
                    energy = None if now is None else now.energy_joules
                    if energy is not None:
                        energy -= first_energy.setdefault((d.kind, d.index), energy)
                    row.append(sample_values(None if now is None else now.sample(), energy))
                out.write(time.time(), row)
                out.flush()
                next_tick += self.interval
                self._stop.wait(max(0.0, next_tick - time.monotonic()))
        finally:
            out.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
