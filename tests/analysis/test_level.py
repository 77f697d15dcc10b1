"""A level's figures over its steady window, on the synthetic fixture (known power and request timing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_dvfs.analysis.energy import COUNTER, integrated_energy
from llm_dvfs.analysis.level import read_level
from llm_dvfs.analysis.samples import read_samples
from llm_dvfs.loadgen.results import read_requests

LEVEL = Path(__file__).resolve().parents[1] / "fixtures" / "analysis" / "sweep" / "level-4"


def test_level_energy_is_the_counter_delta_over_the_steady_window():
    figures = read_level(LEVEL, concurrency=4, warmup_s=2.0)
    e, w = figures.entry, figures.window
    assert w is not None and w.duration_s == pytest.approx(e["duration_s"])
    first_start = read_requests(LEVEL / "requests.jsonl")[0].start_time
    assert w.start == pytest.approx(first_start + 2.0)  # all 4 users were in flight before the warm-up ended
    samples = read_samples(LEVEL / "samples.csv")
    for gpu in (0, 1):
        assert figures.energy[gpu].source == COUNTER
        # the fixture's counter is the trapezoid integral of its power column, so both agree
        by_power = integrated_energy(samples.timestamps, samples.series(gpu, "power"), w.start, w.end)
        assert e["energy_joules_by_gpu"][str(gpu)] == pytest.approx(by_power, rel=0.01)
    assert e["energy_joules"] == pytest.approx(sum(e["energy_joules_by_gpu"].values()))
    assert e["avg_watts"] == pytest.approx(e["energy_joules"] / e["duration_s"])
    assert e["joules_per_output_token"] == pytest.approx(e["energy_joules"] / (e["output_throughput"] *
                                                                               e["duration_s"]))
    # 4 users at full load on GPU 0 (>= 70 + 330*0.5 W) and 60% of that on GPU 1
    assert 200 < e["energy_joules_by_gpu"]["0"] / e["duration_s"] < 260


def test_level_latencies_come_from_requests_started_in_the_window():
    e = read_level(LEVEL, concurrency=4, warmup_s=2.0).entry
    # the fixture's TTFT is 0.04 + 0.004*4 + U(0, 0.01) s and its ITL 0.015*1.5 + U(0, 0.003) s
    assert 56 <= e["ttft_ms_p50"] <= 66 and e["ttft_ms_p99"] <= 66
    assert 22.5 <= e["itl_ms_p50"] <= 25.5
    assert e["tpot_ms_p50"] == pytest.approx(e["itl_ms_p50"], rel=0.1)
    assert e["completed"] > 0 and e["output_tokens"] == pytest.approx(e["output_throughput"] * e["duration_s"])


def test_without_samples_the_energy_is_unknown_not_zero(tmp_path):
    (tmp_path / "requests.jsonl").write_text((LEVEL / "requests.jsonl").read_text())
    e = read_level(tmp_path, concurrency=4, warmup_s=0.0).entry
    assert e["energy_joules"] is None and e["joules_per_output_token"] is None and e["output_throughput"] > 0
