"""A sweep's load levels and the headless Locust command line that runs one of them."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

from llm_dvfs import loadgen

LOCUSTFILES = {"single": "single.py", "disaggregated": "disagg.py"}


@dataclass(frozen=True)
class Load:
    """What every level shares: the target and the request shape."""

    host: str
    mode: str
    model: str
    input_len: int
    output_len: int
    token_ids: bool = False
    tokenizer: str | None = None
    warmup_s: float = 10.0
    steady_s: float = 30.0
    stop_timeout_s: float = 60.0
    rate_users: int = 256
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Level:
    """A closed-loop concurrency or an open-loop request rate."""

    concurrency: int | None = None
    request_rate: float | None = None

    @property
    def name(self) -> str:
        return f"level-{self.concurrency}" if self.concurrency is not None else f"level-rate-{self.request_rate:g}"

    @property
    def label(self) -> str:
        return f"concurrency {self.concurrency}" if self.concurrency is not None else f"{self.request_rate:g} req/s"


def locustfile(mode: str) -> Path:
    """The locustfile beside the installed `loadgen` package."""
    return Path(loadgen.__file__).resolve().parent / LOCUSTFILES[mode]


def run_time_s(load: Load) -> int:
    """Locust's `-t`: warm-up plus steady state, in whole seconds (Locust's unit)."""
    return math.ceil(load.warmup_s + load.steady_s)


def locust_command(load: Load, level: Level, results_dir: Path, metrics_port: int,
                   exporter_url: str | None) -> list[str]:
    """`exporter_url` (GPU exporters only) adds the load generator's own whole-run energy keys to results.json."""
    users = level.concurrency if level.concurrency is not None else load.rate_users
    cmd = [sys.executable, "-m", "locust", "-f", str(locustfile(load.mode)), "--headless", "--only-summary",
           "-u", str(users), "-r", str(users), "-t", f"{run_time_s(load)}s",
           "--stop-timeout", str(math.ceil(load.stop_timeout_s)), "--host", load.host, "--model", load.model,
           "--input-len", str(load.input_len), "--output-len", str(load.output_len),
           "--results-dir", str(results_dir),
           # the load generator's metrics bind to Locust's --web-host; keep them on loopback
           "--metrics-port", str(metrics_port), "--web-host", "127.0.0.1"]
    if exporter_url:
        cmd += ["--exporter-url", exporter_url]
    if level.request_rate is not None:
        cmd += ["--request-rate", f"{level.request_rate:g}"]
    if load.token_ids:
        cmd.append("--token-ids")
    if load.tokenizer:
        cmd += ["--tokenizer", load.tokenizer]
    return cmd + list(load.extra_args)
