"""The load generator's command-line options, added to Locust's parser, and their validation.

`add_options` is the `init_command_line_parser` hook; `LoadgenOptions.from_parsed` turns Locust's parsed options
into a checked, typed value and raises `UsageError` with one line for anything wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_dvfs.common.errors import UsageError
from llm_dvfs.loadgen.datasets import KINDS
from llm_dvfs.loadgen.request import ENDPOINT_PATHS
from llm_dvfs.loadgen.stats import parse_goodput

DEFAULT_INPUT_LEN, DEFAULT_OUTPUT_LEN = 1024, 128


def add_options(parser: Any) -> None:
    group = parser.add_argument_group("llm-dvfs load generator")
    group.add_argument("--model", default=None, help="model name to request (default: the first id of /v1/models)")
    group.add_argument("--endpoint", default="completions", help="completions (default) or chat")
    group.add_argument("--dataset", default="random", help=f"prompt source: {', '.join(KINDS)} (default random)")
    group.add_argument("--dataset-path", default=None, help="file (or BBH directory) for sharegpt, bbh, jsonl")
    group.add_argument("--input-len", type=int, default=DEFAULT_INPUT_LEN, help="random: prompt tokens")
    group.add_argument("--output-len", type=int, default=None,
                       help=f"max output tokens (default {DEFAULT_OUTPUT_LEN}; sharegpt: the reference reply)")
    group.add_argument("--range-ratio", type=float, default=0.0, help="random: lengths vary by ±ratio")
    group.add_argument("--tokenizer", default=None, help="local tokenizer (model dir or tokenizer.json): exact lengths")
    group.add_argument("--token-ids", action="store_true", default=False,
                       help="random: send prompts as token-id lists (servers with --skip-tokenizer-init)")
    group.add_argument("--ignore-eos", default=None, action="store_true",
                       help="ask for exactly max tokens (default: on for random)")
    group.add_argument("--no-ignore-eos", dest="ignore_eos", action="store_false")
    group.add_argument("--request-rate", type=float, default=math.inf,
                       help="open loop: mean requests/s over all users (default inf: closed loop)")
    group.add_argument("--burstiness", type=float, default=1.0, help="gamma shape of arrivals; 1 = Poisson")
    group.add_argument("--goodput", nargs="+", default=[], metavar="KEY:MS", help="SLOs, e.g. ttft:500 tpot:50")
    group.add_argument("--results-dir", default=None, help="write results.json and requests.jsonl here")
    group.add_argument("--metrics-port", type=int, default=9946, help="Prometheus metrics port (0: off)")
    group.add_argument("--exporter-url", default=None, help="llm-dvfs exporter /metrics URL for GPU energy")


@dataclass(frozen=True)
class LoadgenOptions:
    model: str | None
    endpoint: str
    dataset: str
    dataset_path: str | None
    input_len: int
    output_len: int
    output_len_given: bool
    range_ratio: float
    tokenizer: str | None
    token_ids: bool
    ignore_eos: bool
    request_rate: float
    burstiness: float
    goodput: dict[str, float]
    results_dir: str | None
    metrics_port: int
    exporter_url: str | None

    @classmethod
    def from_parsed(cls, ns: Any) -> "LoadgenOptions":
        get = lambda name, default=None: getattr(ns, name, default)  # noqa: E731
        endpoint, dataset = get("endpoint", "completions"), get("dataset", "random")
        if endpoint not in ENDPOINT_PATHS:
            raise UsageError(f"--endpoint {endpoint!r}: choose completions or chat")
        if dataset not in KINDS:
            raise UsageError(f"--dataset {dataset!r}: choose from {', '.join(KINDS)}")
        output_len = get("output_len")
        opts = cls(
            model=get("model"), endpoint=endpoint, dataset=dataset, dataset_path=get("dataset_path"),
            input_len=get("input_len", DEFAULT_INPUT_LEN),
            output_len=DEFAULT_OUTPUT_LEN if output_len is None else output_len,
            output_len_given=output_len is not None, range_ratio=get("range_ratio", 0.0),
            tokenizer=get("tokenizer"), token_ids=bool(get("token_ids")),
            ignore_eos=(dataset == "random") if get("ignore_eos") is None else bool(get("ignore_eos")),
            request_rate=get("request_rate", math.inf), burstiness=get("burstiness", 1.0),
            goodput=parse_goodput(get("goodput") or []), results_dir=get("results_dir"),
            metrics_port=get("metrics_port", 9946), exporter_url=get("exporter_url"))
        opts._check()
        return opts

    def _check(self) -> None:
        if self.input_len < 1 or self.output_len < 1:
            raise UsageError("--input-len and --output-len must be at least 1")
        if not 0 <= self.range_ratio < 1:
            raise UsageError(f"--range-ratio {self.range_ratio}: must be in [0, 1)")
        if not self.request_rate > 0:
            raise UsageError(f"--request-rate {self.request_rate}: must be > 0 (inf: closed loop)")
        if not self.burstiness > 0:
            raise UsageError(f"--burstiness {self.burstiness}: must be > 0")
        if self.token_ids and (self.dataset != "random" or self.endpoint != "completions"):
            raise UsageError("--token-ids works with --dataset random and --endpoint completions only")
        if self.dataset != "random" and not self.dataset_path:
            raise UsageError(f"--dataset {self.dataset} needs --dataset-path")
        if self.dataset_path and not Path(self.dataset_path).exists():
            raise UsageError(f"--dataset-path {self.dataset_path}: no such file or directory")
        if self.tokenizer and not Path(self.tokenizer).exists():
            raise UsageError(f"--tokenizer {self.tokenizer}: no such file or directory")
        if not 0 <= self.metrics_port < 65536:
            raise UsageError(f"--metrics-port {self.metrics_port}: not a port")
