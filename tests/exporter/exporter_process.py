"""Start and stop the exporter and a real Prometheus as subprocesses on free loopback ports (test helpers)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _responds(url: str, **request: Any) -> bool:
    try:
        return requests.get(url, timeout=1, **request).status_code == 200
    except requests.RequestException:
        return False


class ExporterProcess:
    """`python -m llm_dvfs.exporter` serving /metrics on 127.0.0.1 (or `host`); `scheme` and `probe` (requests
    arguments such as verify= and auth=) say how to reach it once it serves TLS or wants a password."""

    def __init__(self, *args: str, host: str = "127.0.0.1", scheme: str = "http", **probe: Any) -> None:
        self.port = free_port()
        bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
        self.url = f"{scheme}://{bracketed}:{self.port}/metrics"
        self.proc = subprocess.Popen([sys.executable, "-m", "llm_dvfs.exporter", "--listen-address", host, "--port",
                                      str(self.port), *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        if not wait_until(lambda: _responds(self.url, **probe) or self.proc.poll() is not None, timeout=30) \
                or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"exporter did not start: {self.proc.stderr.read()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class PrometheusProcess:
    """Debian's `prometheus`, scraping the given targets every second, storing in `workdir`."""

    def __init__(self, workdir: Path, targets: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        jobs = "".join(f"  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
                       for job, target in targets.items())
        config = workdir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n" + jobs)
        self.log = (workdir / "prometheus.log").open("w")
        self.proc = subprocess.Popen(["prometheus", f"--config.file={config}",
                                      f"--storage.tsdb.path={workdir / 'tsdb'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_until(lambda: _responds(f"{self.url}/-/ready"), timeout=60):
            self.stop()
            raise RuntimeError(f"prometheus did not start; see {workdir / 'prometheus.log'}")

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        body = requests.get(f"{self.url}/api/v1/query", params=params, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
