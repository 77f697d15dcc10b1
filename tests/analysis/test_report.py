"""`llm-dvfs report` on the synthetic fixtures (a plain run and a two-level sweep) and on bad input."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llm_dvfs.analysis.level import read_level
from llm_dvfs.analysis.report import write_report
from llm_dvfs.analysis.run import load_run
from llm_dvfs.analysis.summary import summarize

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "analysis"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _pngs(directory: Path) -> dict[str, int]:
    found = {p.name: p.stat().st_size for p in directory.glob("*.png")}
    for name in found:
        assert (directory / name).read_bytes()[:8] == PNG_MAGIC
    return found


def _sweep_copy(tmp_path: Path, name: str, mode: str) -> Path:
    """The fixture sweep's level directories with sweep.json written the way the sweep writes it."""
    run = tmp_path / name
    shutil.copytree(FIXTURES / "sweep", run)
    levels = []
    for c in (1, 4):
        figures = read_level(run / f"level-{c}", c, warmup_s=2.0)
        (run / f"level-{c}" / "steady.json").write_text(json.dumps(figures.details()))
        levels.append(figures.entry)
    (run / "sweep.json").write_text(json.dumps({"device": "Synthetic GPU", "gpu_count": 2, "model": "tiny",
                                                "input_len": 64, "output_len": 32, "mode": mode, "levels": levels}))
    return run


def test_plain_run_report_has_the_summary_plots_and_statistics(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "run", run)
    text = write_report(run).read_text()
    pngs = _pngs(run)
    assert {"run-power.png", "run-power-all.png", "run-util-power.png", "run-thermals.png",
            "run-latency.png"} <= set(pngs)
    assert all(size > 10_000 for size in pngs.values())  # drawn, not empty canvases
    for png in pngs:
        assert f"]({png})" in text
    s = summarize(load_run(run).parts[0])
    assert f"| {s.energy_j:.1f} | {s.j_per_token:.4f} |" in text
    assert s.j_per_token == pytest.approx(s.energy_j / s.tokens)
    # the statistics section: mean/max/min of the power column over the whole CSV, as the seeds printed them
    with open(run / "samples.csv") as f:
        power = [float(row["gpu_0_power"]) for row in csv.DictReader(f)]
    assert f"GPU 0: mean {sum(power) / len(power):.1f} W, max {max(power):.1f} W, min {min(power):.1f} W" in text


def test_sweep_report_has_the_pareto_view_and_compare_puts_runs_side_by_side(tmp_path):
    single = _sweep_copy(tmp_path, "single", "single")
    disagg = _sweep_copy(tmp_path, "disagg", "disaggregated")
    text = write_report(single, disagg).read_text()
    assert "| concurrency 1 |" in text and "| concurrency 4 |" in text
    assert "![pareto](pareto.png)" in text and "![side by side](compare.png)" in text
    assert f"Compared with `{disagg}`" in text
    assert {"pareto.png", "compare.png", "c1-power.png", "c4-power.png"} <= set(_pngs(single))
    # the report's window is the sweep's: J/token in the table equals sweep.json's
    sweep = json.loads((single / "sweep.json").read_text())
    assert f"{sweep['levels'][1]['joules_per_output_token']:.4f}" in text


def test_without_a_power_sensor_the_energy_columns_say_so(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "run", run)
    with open(run / "samples.csv") as f:
        rows = list(csv.reader(f))
    keep = [i for i, name in enumerate(rows[0]) if not name.endswith(("_power", "_energy_j"))]
    with open(run / "samples.csv", "w", newline="") as f:
        csv.writer(f).writerows([[row[i] for i in keep] for row in rows])
    text = write_report(run).read_text()
    assert "no power sensor on this machine: energy not measured" in text
    assert "**no power sensor**" in text


def test_a_results_dir_with_the_samples_csv_elsewhere(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "run", run, ignore=shutil.ignore_patterns("samples.csv"))
    result = subprocess.run([sys.executable, "-m", "llm_dvfs.cli", "report", str(run), "--samples",
                             str(FIXTURES / "run" / "samples.csv")], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "energy counter" in (run / "report.md").read_text() and (run / "run-power.png").exists()


def test_a_bare_samples_csv_gets_the_seeds_plots_and_statistics(tmp_path):
    shutil.copy(FIXTURES / "synthetic-trace.csv", tmp_path / "gpu_monitor.csv")
    text = write_report(tmp_path).read_text()
    assert "GPU 1: mean" in text and "run-power-all.png" in _pngs(tmp_path)


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "is not a directory"),
    (lambda p: p, "holds no sweep.json, requests.jsonl or samples CSV"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, make, message):
    result = subprocess.run([sys.executable, "-m", "llm_dvfs.cli", "report", str(make(tmp_path))], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


COMMITTED_RUNS = sorted(p.parent for p in (ROOT / "data" / "runs").glob("*/sweep.json"))


@pytest.mark.skipif(not COMMITTED_RUNS, reason="no real run committed under data/runs/ yet")
@pytest.mark.parametrize("committed", COMMITTED_RUNS, ids=[p.name for p in COMMITTED_RUNS])
def test_report_on_a_committed_real_run(tmp_path, committed):
    run = tmp_path / committed.name
    shutil.copytree(committed, run, ignore=shutil.ignore_patterns("*.png", "report.md"))
    text = write_report(run).read_text()
    sweep = json.loads((run / "sweep.json").read_text())
    for level in sweep["levels"]:
        assert f"| concurrency {level['concurrency']} |" in text
        if level["joules_per_output_token"] is not None:
            assert f"{level['joules_per_output_token']:.4f}" in text  # the report agrees with the sweep
    assert "pareto.png" in _pngs(run) or len(sweep["levels"]) == 1
