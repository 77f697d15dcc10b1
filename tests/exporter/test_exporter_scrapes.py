"""The running exporter under scrapes: 50 concurrent scrapers while sampling at 100 ms, `promtool check
metrics` on its output, and a golden list of metric names and labels (catches accidental renames)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from .exporter_process import ExporterProcess
from tests.support import metric_sum, scrape, wait_until

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "exporter" / "synthetic_h100_2gpu.csv"
GOLDEN = ROOT / "tests" / "fixtures" / "exporter" / "metrics_replay.golden"
VARYING_LABELS = {"le"}  # histogram bounds are listed once per family instead


@pytest.fixture
def exporter():
    e = ExporterProcess("--backend", f"replay:{FIXTURE}", "--interval", "0.1")
    yield e
    assert e.stop() == 0


def test_fifty_concurrent_scrapes_fail_none_and_miss_no_tick(exporter):
    assert wait_until(lambda: metric_sum(scrape(exporter.url), "llm_dvfs_exporter_ticks_total") > 5, timeout=10)
    before = scrape(exporter.url)
    deadline = time.monotonic() + 5.0

    def scraper(_: int) -> tuple[int, int]:
        ok = failed = 0
        with requests.Session() as session:
            while time.monotonic() < deadline:
                try:
                    r = session.get(exporter.url, timeout=5)
                    ok += r.status_code == 200 and b"gpu_power_watts" in r.content
                    failed += r.status_code != 200
                except requests.RequestException:
                    failed += 1
        return ok, failed

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(scraper, range(50)))
    after = scrape(exporter.url)
    assert sum(f for _, f in results) == 0
    assert all(ok > 0 for ok, _ in results)
    assert metric_sum(after, "llm_dvfs_exporter_missed_ticks_total") == 0
    ticks = metric_sum(after, "llm_dvfs_exporter_ticks_total") - metric_sum(before, "llm_dvfs_exporter_ticks_total")
    assert ticks >= 45  # 5 s at 100 ms


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (run_tests.sh installs it)")
def test_promtool_accepts_the_metrics(exporter):
    assert wait_until(lambda: metric_sum(scrape(exporter.url), "llm_dvfs_exporter_ticks_total") > 2, timeout=10)
    text = requests.get(exporter.url, timeout=5).text
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).strip() == ""


def describe(text: str) -> list[str]:
    """One line per series shape: `type name{label=value,...}` without values that change between runs."""
    lines = set()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k not in VARYING_LABELS)
            lines.add(f"{family.type} {s.name}{{{labels}}}")
    return sorted(lines)


def test_golden_metric_names_and_labels(exporter):
    assert wait_until(lambda: metric_sum(scrape(exporter.url), "llm_dvfs_exporter_ticks_total") > 2, timeout=10)
    got = describe(requests.get(exporter.url, timeout=5).text)
    # read errors appear only after a failure; the synthetic trace has none
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text("\n".join(got) + "\n")
    assert got == GOLDEN.read_text().splitlines(), "metric names/labels changed; if on purpose, rerun with " \
                                                   "UPDATE_GOLDEN=1 and update docs/interfaces.md"
