"""`./quick_start.sh` in its short CI mode, from a copy of the working tree (as a fresh clone would be)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.support import clean_copy, wait_until

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT / "tests" / "fixtures" / "analysis" / "synthetic-trace.csv"


def _left_running(marker: str) -> list[str]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if marker in cmd:
            out.append(cmd)
    return out


@pytest.mark.vllm
@pytest.mark.parametrize("replay", [False, True], ids=["this-machine", "replay"])
def test_quick_start_runs_the_whole_flow_and_stops_what_it_started(tmp_path, replay):
    tree = clean_copy(tmp_path / "clone")
    assert not (tree / ".venv").exists()
    out = tmp_path / "out"
    env = {**os.environ, "QUICK": "1", "LLM_DVFS_VENV": str(ROOT / ".venv"), "LLM_DVFS_OUT": str(out),
           "LLM_DVFS_TRACE": str(TRACE)}
    result = subprocess.run(["./quick_start.sh", *(["--replay"] if replay else [])], cwd=tree, env=env,
                            capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stderr[-4000:]
    report = out / "sweep" / "report.md"
    assert f"report: {report}" in result.stderr
    text = report.read_text()
    assert "| concurrency 1 |" in text and "| concurrency 2 |" in text
    assert (out / "sweep" / "c1-latency.png").exists()
    if replay:
        assert "replay of synthetic-trace" in text and "energy counter" in text
        assert (out / "sweep" / "pareto.png").exists()
    elif "no power sensor" in text:
        # no readable sensor here: the script and the report say so instead of printing zeros
        assert "no power sensor the exporter can read" in result.stderr
    assert _left_running(str(out)) == []


@pytest.mark.vllm
def test_ctrl_c_during_the_sweep_stops_everything_and_keeps_the_sweep(tmp_path):
    tree = clean_copy(tmp_path / "clone")
    out = tmp_path / "out"
    env = {**os.environ, "QUICK": "1", "LLM_DVFS_VENV": str(ROOT / ".venv"), "LLM_DVFS_OUT": str(out)}
    log = open(tmp_path / "stderr.txt", "w+")
    # its own process group, so the SIGINT below reaches it as a terminal's Ctrl-C reaches a foreground job
    proc = subprocess.Popen(["./quick_start.sh"], cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=log,
                            start_new_session=True)
    try:
        assert wait_until(lambda: (out / "sweep" / "level-1" / "locust.log").exists(), timeout=900)
        time.sleep(3)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=240) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log.seek(0)
    err = log.read()
    assert "stopped everything quick_start.sh started" in err
    assert json.loads((out / "sweep" / "sweep.json").read_text())["model"] == "tiny"
    assert _left_running(str(out)) == []
