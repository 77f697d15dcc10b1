"""`llm-dvfs sweep` refuses bad input with one line and exit 2, before starting anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def sweep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llm_dvfs.cli", "sweep", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("args, message", [
    (["--host", "localhost:8000", "--concurrency", "1"], "--host must be a URL"),
    (["--host", "http://127.0.0.1:1", "--concurrency", "1,x"], "comma-separated numbers"),
    (["--host", "http://127.0.0.1:1", "--concurrency", "0,4"], "positive"),
    (["--host", "http://127.0.0.1:1", "--concurrency", "4,4"], "twice"),
    (["--host", "http://127.0.0.1:1", "--concurrency", "1", "--request-rate", "2"], "not allowed with"),
    (["--host", "http://127.0.0.1:1", "--concurrency", "1", "--steady", "0"], "--steady must be positive"),
    (["--host", "http://127.0.0.1:1", "--concurrency", "1"], "cannot list models"),
    (["--host", "http://127.0.0.1:1", "--concurrency", "4", "--output-len", "0"], "--output-len must be positive"),
    (["--host", "http://127.0.0.1:1", "--concurrency", "4", "--output-len", "1,64,1"],
     "--output-len lists a value twice"),
    (["--host", "http://127.0.0.1:1", "--concurrency", "4", "--input-len", "512,x"], "--input-len must be comma-sep"),
    (["--host", "http://127.0.0.1:1", "--concurrency", "4", "--workload", "prefill", "--output-len", "5"],
     "--workload prefill sends max_tokens 1"),
    (["--host", "http://127.0.0.1:1", "--concurrency", "4", "--workload", "decode", "--input-len", "512"],
     "--workload decode sends a short prompt"),
    (["--host", "http://127.0.0.1:1", "--concurrency", "4", "--workload", "both"], "--workload"),
    (["--host", "http://127.0.0.1:1", "--concurrency", "4", "--idle", "-1"], "--idle must not be negative"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = sweep(*args, "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_an_existing_sweep_is_never_overwritten(tmp_path):
    (tmp_path / "sweep.json").write_text("{}")
    result = sweep("--host", "http://127.0.0.1:1", "--concurrency", "1", "--run-dir", str(tmp_path))
    assert result.returncode == 2 and "already holds a sweep" in result.stderr
    assert (tmp_path / "sweep.json").read_text() == "{}"
