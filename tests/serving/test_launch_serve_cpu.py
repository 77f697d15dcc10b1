"""`llm-dvfs serve disagg --connector example --cpu` for real: it brings up prefill, decode and proxy, reports
ready, serves a request with an external KV hit, and SIGTERM stops every process it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support import TINY_MODEL_NAME, free_port, metric_sum, scrape, vllm_cpu_args, wait_until

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_serve_disagg_example_on_cpu(tiny_model: Path, tmp_path: Path):
    ports = {name: free_port() for name in ("proxy", "prefill", "decode")}
    cmd = [sys.executable, "-m", "llm_dvfs.cli", "serve", "disagg", "--connector", "example", "--cpu",
           "--model", str(tiny_model), "--log-dir", str(tmp_path / "logs"), "--proxy-port", str(ports["proxy"]),
           "--prefill-port", str(ports["prefill"]), "--decode-port", str(ports["decode"]), "--ready-timeout", "900",
           "--", *vllm_cpu_args()]
    out = open(tmp_path / "serve.out", "w+")
    serve = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_until(lambda: "serving at" in (tmp_path / "serve.out").read_text() or serve.poll() is not None,
                          1000, interval=1.0), (tmp_path / "serve.out").read_text()
        assert serve.poll() is None, (tmp_path / "serve.out").read_text()
        proxy = f"http://127.0.0.1:{ports['proxy']}"
        prompt = " ".join(f"launch test word {i}" for i in range(60))
        resp = requests.post(f"{proxy}/v1/completions", timeout=300,
                             json={"model": TINY_MODEL_NAME, "prompt": prompt, "max_tokens": 4})
        assert resp.status_code == 200, resp.text
        assert "X-Prefill-Seconds" in resp.headers
        hits = metric_sum(scrape(f"http://127.0.0.1:{ports['decode']}/metrics"), "vllm:external_prefix_cache_hits_total")
        assert hits > 0
        assert {p.name for p in (tmp_path / "logs").iterdir()} >= {"proxy.log", "prefill.log", "decode.log", "kv-storage"}

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(120) == 0
        assert "stopping" in (tmp_path / "serve.out").read_text()
        assert wait_until(lambda: not any(listening(p) for p in ports.values()), 30), "a child outlived serve"
    finally:
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(serve.pid, signal.SIGKILL)
