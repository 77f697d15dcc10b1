"""The report's energy-optimal setting: lowest J/token among the settings meeting every SLO, per phase and level,
with its saving against the default setting."""

from __future__ import annotations

from llm_dvfs.analysis.dvfs_summary import Row, optimal


def row(setting: str, level: str, j: float | None, ttft_p99: float, itl_p99: float = 10.0) -> Row:
    entry = {"joules_per_output_token": j, "ttft_ms_p99": ttft_p99, "itl_ms_p99": itl_p99, "tpot_ms_p50": 5.0}
    return Row(setting, setting == "default", setting, "mixed", level, entry, {}, {})


ROWS = [row("default", "concurrency 1", 1.00, 100), row("sm1600", "concurrency 1", 0.80, 150),
        row("sm1200", "concurrency 1", 0.70, 400), row("default", "concurrency 16", 0.20, 300),
        row("sm1200", "concurrency 16", None, 200)]


def test_the_lowest_j_per_token_meeting_the_slos_and_its_saving():
    lines = optimal(ROWS, {"ttft": 200.0})
    assert lines[0] == "SLOs: ttft p99 <= 200 ms."
    assert "| mixed | concurrency 1 | sm1600 | 0.8000 | 1.0000 | 20.0% |" in lines  # sm1200 misses TTFT
    assert "| mixed | concurrency 16 | none meets the SLOs | n/a | 0.2000 | n/a |" in lines


def test_without_slos_every_measured_setting_qualifies():
    lines = optimal(ROWS, {})
    assert "| mixed | concurrency 1 | sm1200 | 0.7000 | 1.0000 | 30.0% |" in lines
    assert "| mixed | concurrency 16 | default | 0.2000 | 0.2000 | 0.0% |" in lines
