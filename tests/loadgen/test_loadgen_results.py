"""Result files (atomic pair), Prometheus metrics (names, buckets, promtool lint) and energy figures."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from prometheus_client import generate_latest

from llm_dvfs.common import atomic_file
from llm_dvfs.common.errors import UsageError
from llm_dvfs.loadgen import results
from llm_dvfs.loadgen.energy import EnergyWindow
from llm_dvfs.loadgen.metrics import LoadgenMetrics, bind_address
from llm_dvfs.loadgen.record import RunRecord
from llm_dvfs.loadgen.results import RequestResult

INTERFACE_KEYS = {"start_time", "ttft_s", "itl_s", "e2el_s", "prompt_tokens", "output_tokens", "success", "error",
                  "prefill_s"}


def sample(success: bool = True) -> RequestResult:
    if not success:
        return RequestResult(start_time=5.0, success=False, error="reset_mid_stream: closed", elapsed_s=0.3)
    return RequestResult(start_time=5.0, success=True, ttft_s=0.1, itl_s=[0.02, 0.03], e2el_s=0.15,
                         prompt_tokens=12, output_tokens=3, output_tokens_source="usage", prefill_s=0.05)


def test_record_writes_a_consistent_pair(tmp_path):
    metrics = LoadgenMetrics()
    clock = iter([100.0, 110.0, 120.0]).__next__
    record = RunRecord({"backend": "openai", "model_id": "m"}, metrics, str(tmp_path), wall_clock=clock)
    for r in (sample(), sample(), sample(False)):
        record.add(r)
    record.write()
    summary = json.loads((tmp_path / "results.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert len(rows) == summary["num_prompts"] == 3
    assert INTERFACE_KEYS <= set(rows[0]) and rows[0]["itl_s"] == [0.02, 0.03]
    assert summary["completed"] == sum(r["success"] for r in rows) == 2
    assert summary["total_output_tokens"] == sum(r["output_tokens"] for r in rows if r["success"])
    assert summary["errors"] == {"reset_mid_stream": 1} and summary["duration"] == 10.0
    assert summary["model_id"] == "m" and summary["output_tokens_source"] == {"usage": 2}
    assert [r.to_json() for r in results.read_requests(tmp_path / results.REQUESTS)] == rows
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


def test_the_reader_ignores_unknown_keys_and_defaults_missing_ones(tmp_path):
    path = tmp_path / results.REQUESTS
    later = {**sample().to_json(), "start_time": 9.0, "phase_joules": 1.5}  # a key a later writer may add
    older = {"start_time": 2.0, "success": True, "ttft_s": 0.1, "itl_s": [0.1], "e2el_s": 0.2,
             "output_tokens": 2}  # written before elapsed_s existed
    path.write_text(json.dumps(later) + "\n\n" + json.dumps(older) + "\n")
    first, second = results.read_requests(path)  # sorted by start time
    assert first.end_time == pytest.approx(2.2)  # without elapsed_s the request held its user until E2EL
    assert first.tpot_s == pytest.approx(0.1) and first.prefill_s is None
    assert second.to_json() == {**sample().to_json(), "start_time": 9.0}


def test_a_torn_last_line_is_skipped_but_a_bad_middle_line_is_one_error(tmp_path):
    good = json.dumps(sample().to_json())
    path = tmp_path / results.REQUESTS
    path.write_text(good + "\n" + good + "\n" + '{"start_ti')
    assert len(results.read_requests(path)) == 2
    path.write_text(good + "\nnot json\n" + good + "\n")
    with pytest.raises(UsageError, match=":2: not a request record"):
        results.read_requests(path)
    path.write_text(good + "\n[1, 2]\n" + good + "\n")
    with pytest.raises(UsageError, match=":2:"):
        results.read_requests(path)
    with pytest.raises(UsageError, match="cannot read"):
        results.read_requests(tmp_path / "missing.jsonl")


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    results.write(tmp_path, {"completed": 1}, [sample()])
    monkeypatch.setattr(atomic_file.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        results.write(tmp_path, {"completed": 2}, [sample(), sample()])
    assert json.loads((tmp_path / "results.json").read_text()) == {"completed": 1}
    assert len((tmp_path / "requests.jsonl").read_text().splitlines()) == 1
    assert not list(tmp_path.glob(".*tmp"))


def test_metrics_names_and_values():
    m = LoadgenMetrics()
    m.observe(sample())
    m.observe(sample(False))
    get = m.registry.get_sample_value
    assert get("llm_requests_total", {"status": "ok"}) == 1
    assert get("llm_requests_total", {"status": "reset_mid_stream"}) == 1
    assert get("llm_ttft_seconds_count") == 1 and get("llm_ttft_seconds_sum") == pytest.approx(0.1)
    assert get("llm_itl_seconds_count") == 2 and get("llm_tpot_seconds_sum") == pytest.approx(0.025)
    assert get("llm_e2e_seconds_bucket", {"le": "0.25"}) == 1
    assert get("llm_itl_seconds_bucket", {"le": "0.025"}) == 1  # 20 ms and 30 ms land in different buckets
    assert get("llm_prompt_tokens_total") == 12 and get("llm_output_tokens_total") == 3
    for gauge in ("llm_active_users", "llm_in_flight_requests", "llm_test_start_time_seconds"):
        assert get(gauge) == 0


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_metrics_pass_promtool_lint():
    m = LoadgenMetrics()
    m.observe(sample())
    out = subprocess.run(["promtool", "check", "metrics"], input=generate_latest(m.registry),
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr


def test_energy_figures_from_two_readings():
    w = EnergyWindow("unused", started={"0": 1000.0, "1": 50.0, "2": 900.0},
                     stopped={"0": 1600.0, "1": 250.0, "2": 10.0, "3": 5.0}, start_time=10.0, stop_time=20.0)
    f = w.figures(output_tokens=400, completed=8)
    assert f["energy_joules_by_gpu"] == {"0": 600.0, "1": 200.0}
    assert f["energy_joules"] == 800.0 and f["avg_watts"] == 80.0
    assert f["joules_per_output_token"] == 2.0 and f["joules_per_request"] == 100.0
    assert len(f["energy_warnings"]) == 2  # gpu 2 reset, gpu 3 appeared


@pytest.mark.parametrize("web_host, address", [("", "0.0.0.0"), ("*", "0.0.0.0"), ("127.0.0.1", "127.0.0.1"),
                                               ("::1", "::1")])
def test_metrics_bind_where_locust_serves_its_web_ui(web_host, address):
    """Without --web-host (Locust's default ""), /metrics must still start: it once failed to resolve ""."""
    assert bind_address(web_host) == address
