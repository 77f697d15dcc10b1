"""The benchmark script runs and reports every figure the README needs (numbers are measured, not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_with_fake_devices_writes_its_figures(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "benchmarks/exporter_bench.py", "--fake-devices", "2", "--duration", "1",
                             "--scrapes", "20", "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    for key in ("cpu_percent_of_one_core", "jitter_ms_p50", "jitter_ms_p99", "scrape_ms_p50", "scrape_ms_p99"):
        assert doc[key] >= 0 and key in result.stdout
    assert doc["devices"] == 2 and doc["scrapes"] == 20 and doc["ticks"] >= 10
