"""`llm-dvfs sweep --instance-metrics ROLE=URL` refuses a malformed spec in one line, before contacting anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("spec, message", [
    ("prefill", "--instance-metrics takes ROLE=URL"),
    ("prefill=127.0.0.1:8100", "--instance-metrics takes ROLE=URL"),
    ("Pre fill=http://127.0.0.1:8100", "--instance-metrics takes ROLE=URL"),
    ("host=http://127.0.0.1:8100", "names role 'host' twice"),
])
def test_bad_instance_metrics_is_one_line_and_exit_2(tmp_path, spec, message):
    result = subprocess.run([sys.executable, "-m", "llm_dvfs.cli", "sweep", "--host", "http://127.0.0.1:1",
                             "--concurrency", "1", "--instance-metrics", spec, "--run-dir", str(tmp_path / "run")],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
