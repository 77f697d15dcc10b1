"""Run the real `locust` command on our locustfiles, as the sweep does, and read what it wrote."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCUST = str(Path(sys.executable).parent / "locust")


def locust_cmd(host: str, out: Path, *extra: str, users: int = 3, run_time: str = "4s",
               locustfile: str = "loadgen/single.py") -> list[str]:
    """The command line; `--stop-timeout 10` lets the requests in flight at `-t` finish (with Locust's default
    of 0 they are cut, recorded as failures, and the exit code is 1): pass `--stop-timeout 0` to test that."""
    return [LOCUST, "-f", locustfile, "--headless", "-u", str(users), "-r", str(users), "-t", run_time,
            "--host", host, "--results-dir", str(out), "--csv", str(out / "locust"), "--web-host", "127.0.0.1",
            "--metrics-port", "0", "--only-summary", "--stop-timeout", "10", *extra]


def run_locust(host: str, out: Path, *extra: str, timeout: float = 120, env: dict[str, str] | None = None,
               **kw) -> subprocess.CompletedProcess:
    return subprocess.run(locust_cmd(host, out, *extra, **kw), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def read_run(out: Path) -> tuple[dict, list[dict], dict]:
    """results.json, the requests.jsonl rows, and Locust's --csv aggregated row (a snapshot Locust takes every
    second, so it may miss the last second of requests)."""
    summary = json.loads((out / "results.json").read_text())
    rows = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    with open(out / "locust_stats.csv") as f:
        aggregated = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return summary, rows, aggregated


def printed_totals(done: subprocess.CompletedProcess) -> tuple[int, int]:
    """(requests, failures) from the Aggregated line of the summary Locust prints at exit."""
    match = re.search(r"^\s+Aggregated\s+(\d+)\s+(\d+)\(", done.stdout + done.stderr, re.M)
    assert match, "no Aggregated line in Locust's output"
    return int(match[1]), int(match[2])
