"""sweep.json and report.md take a level's figures from one function, so they cannot disagree: checked on the
synthetic sweep fixture (the sweep's own path against the report's) and on the committed real runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llm_dvfs.analysis.level import level_entry, read_level
from llm_dvfs.analysis.report import write_report
from llm_dvfs.analysis.run import load_run
from llm_dvfs.analysis.summary import summarize

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "analysis" / "sweep"
COMMITTED_RUNS = sorted(p.parent for p in (ROOT / "data" / "runs").glob("*/sweep.json"))


def _same(entry: dict, expected: dict, rel: float = 0.0) -> None:
    """Every sweep.json key of a level equal (within `rel`: 0 means the very same floats)."""
    for key in level_entry(None, None):
        want = expected[key]
        assert entry[key] == (want if rel == 0 or want is None else pytest.approx(want, rel=rel)), key


def test_the_sweep_and_the_report_give_the_same_numbers(tmp_path):
    run = tmp_path / "sweep"
    shutil.copytree(FIXTURE, run)
    entries = []
    for c in (1, 4):  # what the sweep runner does after each level
        figures = read_level(run / f"level-{c}", c, warmup_s=2.0)
        (run / f"level-{c}" / "steady.json").write_text(json.dumps(figures.details()))
        entries.append(figures.entry)
    (run / "sweep.json").write_text(json.dumps({"device": "Synthetic GPU", "gpu_count": 2, "model": "tiny",
                                                "mode": "single", "levels": entries}))
    parts = load_run(run).parts
    text = write_report(run).read_text()
    for part, entry in zip(parts, entries, strict=True):
        s = summarize(part)
        _same(level_entry(part.concurrency, s), entry)
        assert entry["energy_joules"] and entry["completed"] and entry["ttft_ms_p99"]  # real figures compared
        row = (f"| {part.name} | {entry['duration_s']:.1f} | {entry['ttft_ms_p50']:.1f} / {entry['ttft_ms_p99']:.1f} "
               f"| {entry['itl_ms_p50']:.1f} / {entry['itl_ms_p99']:.1f} | {entry['tpot_ms_p50']:.1f} / ")
        assert row in text
        assert f"| {part.name} | {entry['energy_joules']:.1f} | {entry['joules_per_output_token']:.4f} |" in text
        assert f"| {entry['output_throughput']:.1f} |" in text and f"| {entry['avg_watts']:.1f} |" in text


@pytest.mark.skipif(not COMMITTED_RUNS, reason="no real run committed under data/runs/")
@pytest.mark.parametrize("committed", COMMITTED_RUNS, ids=[p.name for p in COMMITTED_RUNS])
def test_the_report_reproduces_a_committed_sweep_json(committed):
    run = load_run(committed)
    assert len(run.parts) == len(run.sweep["levels"])
    for part in run.parts:
        # sweep.json was written at measurement time; its last float digits may differ from today's summation order
        _same(level_entry(part.concurrency, summarize(part)), part.sweep_entry, rel=1e-9)
