"""A sweep's load levels and the headless Locust command line that runs one of them."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace
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
    workload: str = "mixed"  # see llm_dvfs.loadgen.workloads
    idle_s: float = 0.0  # recorded before each level's load: the idle power of the phase attribution


@dataclass(frozen=True)
class Level:
    """A closed-loop concurrency or an open-loop request rate; with a request shape of its own when the sweep
    varies prompt or output lengths (None: the Load's)."""

    concurrency: int | None = None
    request_rate: float | None = None
    input_len: int | None = None
    output_len: int | None = None

    @property
    def _shape(self) -> str:
        return "" if self.input_len is None else f"-in{self.input_len}-out{self.output_len}"

    @property
    def name(self) -> str:
        load = f"level-{self.concurrency}" if self.concurrency is not None else f"level-rate-{self.request_rate:g}"
        return load + self._shape

    @property
    def label(self) -> str:
        load = f"concurrency {self.concurrency}" if self.concurrency is not None else f"{self.request_rate:g} req/s"
        return load + ("" if self.input_len is None else f", {self.input_len}/{self.output_len} tokens")

    def lengths(self, load: "Load") -> tuple[int, int]:
        """(prompt tokens, output tokens) of this level's requests."""
        return (load.input_len if self.input_len is None else self.input_len,
                load.output_len if self.output_len is None else self.output_len)


def shaped_levels(loads: list[Level], input_lens: list[int], output_lens: list[int]) -> list[Level]:
    """Every load level at every request shape, shapes outermost; a one-shape sweep keeps the plain names."""
    if len(input_lens) == 1 and len(output_lens) == 1:
        return loads
    return [replace(lv, input_len=i, output_len=o) for i in input_lens for o in output_lens for lv in loads]


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
           "--input-len", str(level.lengths(load)[0]), "--output-len", str(level.lengths(load)[1]),
           "--workload", load.workload,
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
