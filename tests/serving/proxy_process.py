"""The proxy started as a real process on a free loopback port, for the serving tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]


class ProxyProcess:
    """`llm-dvfs proxy ARGS --port P` started as its own process, logging to a file."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc = subprocess.Popen([sys.executable, "-m", "llm_dvfs.cli", "proxy", *args, "--port", str(self.port)],
                                     cwd=ROOT, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 30.0) -> "ProxyProcess":
        def up() -> bool:
            assert self.proc.poll() is None, self.log()
            try:
                return requests.get(f"{self.url}/metrics", timeout=1).status_code == 200
            except requests.RequestException:
                return False
        assert wait_until(up, timeout), self.log()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
