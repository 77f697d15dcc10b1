"""Real processes for the Energy view tests: a replaying exporter, and Locust with its web UI on a free port,
started by itself (--autostart) and leaving by itself (--autoquit) after a bounded test."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import requests

from tests.loadgen.locust_run import LOCUST, ROOT
from tests.support import free_port, wait_until

TRACES = ROOT / "data" / "traces"
#: a real H100 trace whose GPU hits its power cap (sw_power_cap) from about row 360 on (36 s into the sweep)
H100_TRACE = TRACES / "h100-vllm0.24-single-llama8b-shape-sweep.csv"
H100_CAPPED_FROM_ROW = 340
#: 100 rows from here are power-capped 68% of the time, in bursts of 1-3 s: a 1 s poll cannot miss them
H100_MOSTLY_CAPPED_FROM_ROW = 920
DISAGG_TRACE = TRACES / "h200x2-vllm0.23-disagg-llama8b-shape-sweep.csv"


def trace_slice(trace: Path, first_row: int, rows: int, dest: Path) -> Path:
    """The header and `rows` rows from `first_row` of a recorded trace, lines copied unchanged: a replay that
    starts in the middle of the real run (the replay backend plays a file from its first row)."""
    lines = trace.read_text().splitlines(keepends=True)
    dest.write_text(lines[0] + "".join(lines[1 + first_row:1 + first_row + rows]))
    return dest


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


@contextlib.contextmanager
def replay_exporter(trace: Path) -> Iterator[str]:
    """`python -m llm_dvfs.exporter --backend replay:TRACE` on a free loopback port; yields its /metrics URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llm_dvfs.exporter", "--backend", f"replay:{trace}",
                             "--listen-address", "127.0.0.1", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        assert wait_until(lambda: _up(url), timeout=30), "the replaying exporter did not start"
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def locust_web(host: str, out: Path, *extra: str, run_time: str = "8s", autoquit: int = 30,
               users: int = 2, locustfile: str = "loadgen/single.py", base_path: str = "") -> Iterator[str]:
    """Locust with its web UI, the test started at once and bounded by `run_time`; yields the web UI's base URL
    (`base_path`: the --web-base-path among `extra`, if any).
    The process quits `autoquit` seconds after the test stops (and is terminated on the way out if still there)."""
    port = free_port()
    cmd = [LOCUST, "-f", locustfile, "--autostart", "--autoquit", str(autoquit), "-u", str(users), "-r", str(users),
           "-t", run_time, "--host", host, "--web-host", "127.0.0.1", "--web-port", str(port), "--metrics-port", "0",
           "--results-dir", str(out), "--stop-timeout", "5", *extra]
    log = (out.parent / f"{out.name}-locust.log").open("w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}{base_path}"
    try:
        wait_until(lambda: proc.poll() is not None or _up(base + "/energy/data"), timeout=60)
        assert proc.poll() is None and _up(base + "/energy/data"), \
            (out.parent / f"{out.name}-locust.log").read_text()[-3000:]
        yield base
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(30)
        log.close()


def browser_available() -> bool:
    return bool(shutil.which("chromium") and shutil.which("chromedriver"))


@contextlib.contextmanager
def headless_chromium(width: int = 1400, height: int = 1500) -> Iterator["object"]:
    """Debian's chromium driven through its chromedriver by selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()
