"""The real processes of the monitoring stack for the integration tests: a Prometheus (Debian's binary) built
from the committed prometheus.yml and rules.yml with test targets, the exporter on a replayed trace, and a
bounded headless Locust run. Everything binds 127.0.0.1 on free ports and is stopped by its owner."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

import requests
import yaml

from tests.dashboards.panel_queries import ROOT
from tests.support import free_port, wait_until


def start_process(cmd: Sequence[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group we started, SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def config_for_test(targets: Mapping[str, str], rules: Path = ROOT / "prometheus" / "rules.yml") -> dict:
    """The committed prometheus.yml with every interval at 1 s, the committed rules, and each kept job pointed at
    `targets[job]`; jobs without a target are dropped. Labels and relabelling stay as committed."""
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(rules)]
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] in targets:
            job["static_configs"][0]["targets"] = [targets[job["job_name"]]]
            jobs.append(job)
    config["scrape_configs"] = jobs
    return config


class PrometheusServer:
    """Debian's `prometheus` with temporary storage on a free loopback port."""

    def __init__(self, config: dict, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.proc: subprocess.Popen | None = None

    def start(self) -> "PrometheusServer":
        self.proc = start_process(["prometheus", f"--config.file={self.workdir / 'prometheus.yml'}",
                            f"--storage.tsdb.path={self.workdir / 'data'}",
                            f"--web.listen-address=127.0.0.1:{self.port}"], self.workdir / "prometheus.log")
        if not wait_until(self._ready, timeout=60):
            raise RuntimeError(f"Prometheus did not become ready:\n{self.log_tail()}")
        return self

    def _ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def log_tail(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")[-3000:]

    def targets_up(self) -> dict[str, bool]:
        active = requests.get(f"{self.url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        return {t["labels"]["job"]: t["health"] == "up" for t in active}

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0) -> list[dict]:
        r = requests.post(f"{self.url}/api/v1/query_range",
                          data={"query": expr, "start": start, "end": end, "step": step}, timeout=30)
        body = r.json()
        if body.get("status") != "success":
            raise AssertionError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]["result"]

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


def finite_points(result: list[dict]) -> int:
    return sum(1 for series in result for _, v in series["values"] if math.isfinite(float(v)))


def trace_with_power_average(src: Path, dst: Path, window: int = 10) -> Path:
    """The committed trace, with empty `gpu_<i>_power_average` cells filled by the trailing mean of `window`
    rows of power (about 1 s at 100 ms, as NVIDIA's driver averages), since the synthetic trace leaves them
    empty and the overview's driver-average query needs them."""
    with src.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = list(rows[0])
    for col in [c for c in columns if c.endswith("_power_average")]:
        power = col.removesuffix("_average")
        for i, row in enumerate(rows):
            if not row[col]:
                recent = [float(r[power]) for r in rows[max(0, i - window + 1):i + 1] if r[power]]
                row[col] = f"{sum(recent) / len(recent):.2f}" if recent else ""
    with dst.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        writer.writerows(rows)
    return dst


def start_exporter(trace: Path, port: int, log: Path) -> subprocess.Popen:
    proc = start_process([sys.executable, "-m", "llm_dvfs.exporter", "--backend", f"replay:{trace}", "--listen-address",
                   "127.0.0.1", "--port", str(port)], log)

    def serving() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).ok
        except requests.RequestException:
            return proc.poll() is not None

    wait_until(serving, timeout=30)
    if proc.poll() is not None:
        raise RuntimeError(f"exporter exited:\n{log.read_text(errors='replace')[-2000:]}")
    return proc


def start_locust(locustfile: str, host: str, metrics_port: int, seconds: int, users: int, log: Path,
                 results_dir: Path) -> subprocess.Popen:
    """A headless run that stops by itself after `seconds`; short prompts and replies for the tiny CPU model."""
    locust = str(Path(sys.executable).with_name("locust"))
    return start_process([locust, "-f", str(ROOT / locustfile), "--headless", "-u", str(users), "-r", str(users),
                   "-t", f"{seconds}s", "--stop-timeout", "10", "--host", host, "--web-host", "127.0.0.1",
                   "--metrics-port", str(metrics_port), "--input-len", "32", "--output-len", "16",
                   "--results-dir", str(results_dir), "--only-summary"], log)
