"""`llm-dvfs report` computes the prefill/decode figures offline, also for sweeps made before the sweep recorded
them, and pools separate sweeps (one output length each) into one differential fit with `--combine`."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from llm_dvfs.analysis.window import steady_window
from llm_dvfs.loadgen import results as results_files
from tests.analysis.phase_power import spans, write_trace
from tests.analysis.test_attribution import IDLE_W, PER_DECODE, PER_PROMPT, _closed_loop

ROOT = Path(__file__).resolve().parents[2]


def _old_sweep(path: Path, output_len: int, seed: int) -> Path:
    """A one-level sweep directory as the sweep wrote it before phases existed: no workload, no lengths per
    level, no phases, the level directory named by concurrency only."""
    requests, timelines = _closed_loop(4, output_len, 256, 70.0, random.Random(seed))
    level = path / "level-4"
    level.mkdir(parents=True)
    results_files.write(level, {"model_id": "tiny", "max_concurrency": 4}, requests)
    window = steady_window(requests, 4, 10.0)  # the sweep's rule after a 10 s warm-up, as steady.json records it
    (level / "steady.json").write_text(json.dumps({"window_start": window.start, "window_end": window.end,
                                                   "window_rule": window.reason}))
    write_trace(level / "samples.csv", spans(timelines, PER_PROMPT, PER_DECODE), 997.0, 1075.0, IDLE_W)
    (path / "sweep.json").write_text(json.dumps({
        "device": "Synthetic GPU", "gpu_count": 1, "model": "tiny", "input_len": 256, "output_len": output_len,
        "mode": "single", "levels": [{"concurrency": 4}]}))
    return path


def test_report_pools_three_old_sweeps_into_one_differential_fit(tmp_path):
    runs = [_old_sweep(tmp_path / f"out{n}", n, seed) for seed, n in enumerate((1, 32, 96))]
    done = subprocess.run([sys.executable, "-m", "llm_dvfs.cli", "report", str(runs[0]), "--combine", str(runs[1]),
                           "--combine", str(runs[2])], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    phases = json.loads((runs[0] / "phases.json").read_text())
    assert phases["combined_with"] == [str(runs[1]), str(runs[2])]
    level = phases["levels"][0]
    assert level["workload"] == "prefill" and level["decode_joules"] == 0  # output 1: inferred, all prefill
    assert level["phase_workload"]["joules_per_prompt_token"] == pytest.approx(PER_PROMPT, rel=0.03)
    fit = next(f for f in phases["differential"] if f["over"] == "output_len")
    assert [p["output_len"] for p in fit["points"]] == [1, 32, 96]
    assert fit["above_idle"]["slope_joules_per_token"] == pytest.approx(PER_DECODE, rel=0.02)
    assert fit["above_idle"]["joules_per_prompt_token"] == pytest.approx(PER_PROMPT, rel=0.02)
    text = (runs[0] / "report.md").read_text()
    assert "## Prefill vs decode on one GPU" in text and "### The three methods" in text
    assert "| differential | concurrency 4" in text and "![energy by phase](phases-energy.png)" in text
    assert (runs[0] / "c4-phases.png").exists()
    # each decode figure stands beside the context its steps read: prompt + output/2, or the fit's range
    prompt = fit["input_len"]
    assert f"| {prompt + 48} | above idle |" in text  # the 96-output level's attribution row
    assert f"| {prompt + 1}–{prompt + 95} | above idle |" in text


def test_report_on_a_real_h200_sweep_made_before_phases(tmp_path):
    """The committed H200 run: its sweep.json has no phase keys; the report computes them from the files."""
    import shutil

    run = tmp_path / "h200"
    source = ROOT / "data" / "runs" / "2026-11-22-h200-single-llama8b-shape"
    shutil.copytree(source, run, ignore=shutil.ignore_patterns("*.png", "report.md", "logs", "vllm-metrics"))
    done = subprocess.run([sys.executable, "-m", "llm_dvfs.cli", "report", str(run)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    phases = json.loads((run / "phases.json").read_text())
    sweep = json.loads((run / "sweep.json").read_text())
    for level, entry in zip(phases["levels"], sweep["levels"]):
        parts = level["prefill_joules"] + level["decode_joules"] + level["idle_joules"] + level["unattributed_joules"]
        assert parts == pytest.approx(entry["energy_joules"], rel=0.01)  # the same steady window and counter
        assert 100 < level["idle_watts"] < 200 and "idle window" in level["idle_source"]
        assert 0 < level["prefill_share"] < level["decode_share"]
    assert "| concurrency 64 | mixed | 512/256 |" in (run / "report.md").read_text()
