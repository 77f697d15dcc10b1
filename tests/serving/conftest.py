"""Fixtures for the proxy tests: the proxy as a real subprocess, and scripted instances in threads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from tests.support import free_port, wait_until
from tests.serving.scripted_vllm import ScriptedInstance

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


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[Callable[..., ProxyProcess]]:
    started: list[ProxyProcess] = []

    def start(*args: str) -> ProxyProcess:
        proxy = ProxyProcess(list(args), tmp_path / f"proxy-{len(started)}.log")
        started.append(proxy)
        return proxy.wait_ready()

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def scripted() -> Iterator[Callable[[str], ScriptedInstance]]:
    """Factory of started scripted instances, all stopped at the end of the test."""
    made: list[ScriptedInstance] = []

    def make(name: str) -> ScriptedInstance:
        inst = ScriptedInstance(name).start()
        made.append(inst)
        return inst

    yield make
    for inst in made:
        inst.stop()
