"""The proxy started as a real process on a free loopback port, for the serving tests."""

from __future__ import annotations

import sys
from pathlib import Path

import requests

from llm_dvfs.common.child_process import ChildProcess
from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]


class ProxyProcess(ChildProcess):
    """`llm-dvfs proxy ARGS --port P`, started on construction, logging to a file.

    Ready once /metrics answers, not /health: several tests start it before (or without) healthy instances."""

    stop_grace = 10.0

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__([sys.executable, "-m", "llm_dvfs.cli", "proxy", *args, "--port", str(self.port)],
                         log_path, cwd=ROOT)
        self.start()

    def wait_ready(self, timeout: float = 30.0) -> "ProxyProcess":
        def up() -> bool:
            assert self.running(), self.log()
            try:
                return requests.get(f"{self.url}/metrics", timeout=1).status_code == 200
            except requests.RequestException:
                return False
        assert wait_until(up, timeout), self.log()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
