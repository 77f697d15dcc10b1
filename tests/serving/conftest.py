"""Fixtures for the proxy tests: the proxy as a real subprocess, and scripted instances in threads."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.serving.proxy_process import ProxyProcess
from tests.serving.scripted_vllm import ScriptedInstance

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
