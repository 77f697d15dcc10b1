"""The sweep's two ways of recording a level, each against a real exporter subprocess replaying a trace."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_dvfs.analysis.samples import read_samples
from llm_dvfs.common.errors import UsageError
from llm_dvfs.commands.sweep.exporter_child import ExporterChild
from llm_dvfs.commands.sweep.exporter_scraper import ExporterScraper
from llm_dvfs.exporter.samples_csv import SamplesReader, header, read_trace
from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT / "tests" / "fixtures" / "analysis" / "synthetic-trace.csv"


def test_own_exporter_records_the_level_and_names_the_devices(tmp_path):
    exporter = ExporterChild(f"replay:{TRACE}", None, free_port())
    devices = exporter.start(tmp_path)
    try:
        assert [(d.index, d.name, d.labels["source"]) for d in devices] == \
            [(0, "replay of synthetic-trace", "replay"), (1, "replay of synthetic-trace", "replay")]
        time.sleep(2.0)
    finally:
        exporter.stop()
    samples = read_samples(tmp_path / "samples.csv")
    assert samples.gpus == [0, 1] and len(samples.timestamps) >= 15  # 100 ms ticks
    energy = [e for e in samples.series(0, "energy_j") if e is not None]
    assert energy[-1] > energy[0]
    assert exporter.child is None


def test_an_exporter_that_cannot_start_is_one_usage_error(tmp_path):
    with pytest.raises(UsageError, match="the exporter exited"):
        ExporterChild("replay:/nonexistent.csv", None, free_port()).start(tmp_path)


def test_scraping_a_running_exporter_writes_the_samples_csv(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llm_dvfs.exporter", "--backend", f"replay:{TRACE}", "--port", str(port),
                             "--listen-address", "127.0.0.1"], cwd=ROOT, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        scraper = ExporterScraper(url, interval=0.1)
        assert wait_until(lambda: _up(scraper, tmp_path), timeout=30)
        time.sleep(2.0)
        scraper.stop()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    samples = read_samples(tmp_path / "samples.csv")
    assert samples.gpus == [0, 1] and len(samples.timestamps) >= 10
    assert samples.series(0, "energy_j")[0] == 0.0  # relative to the first scrape
    # written by the exporter's own CSV writer: the recorder's columns, and a file the replay backend accepts
    assert SamplesReader(tmp_path / "samples.csv").header == header([("gpu", 0), ("gpu", 1)])
    assert len(read_trace(tmp_path / "samples.csv").timestamps) == len(samples.timestamps)
    power = samples.series(1, "power")  # empty where a loaded machine made the exporter's read time out
    assert all(p > 0 for p in power if p is not None) and sum(p is not None for p in power) >= 0.8 * len(power)
    assert samples.has(0, "utilization") and samples.has(0, "sm_clock")


def _up(scraper: ExporterScraper, directory: Path) -> bool:
    try:
        scraper.start(directory)
        return True
    except UsageError:
        return False


def test_scraping_something_that_is_not_an_exporter_is_one_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read the exporter"):
        ExporterScraper(f"http://127.0.0.1:{free_port()}/metrics").start(tmp_path)
