"""The load generator's command-line options, added to Locust's parser, and their validation.

`add_options` is the `init_command_line_parser` hook; `LoadgenOptions.from_parsed` turns Locust's parsed options
into a checked, typed value and raises `UsageError` with one line for anything wrong.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_dvfs.common.errors import UsageError
from llm_dvfs.loadgen.datasets import KINDS
from llm_dvfs.loadgen.http1 import check_header
from llm_dvfs.loadgen.request import ENDPOINT_PATHS
from llm_dvfs.loadgen.stats import parse_goodput
from llm_dvfs.loadgen.workloads import WORKLOADS, request_shape

DEFAULT_INPUT_LEN, DEFAULT_OUTPUT_LEN = 1024, 128
#: the most tokens --input-len or --output-len may ask for (2**20, more than the context of any model measured
#: here): it keeps an absurd value from spending minutes of CPU on prompts that the server would refuse anyway
MAX_LEN = 1 << 20


def add_options(parser: Any) -> None:
    group = parser.add_argument_group("llm-dvfs load generator")
    group.add_argument("--model", default=None, help="model name to request (default: the first id of /v1/models)")
    group.add_argument("--endpoint", default="completions", help="completions (default) or chat")
    group.add_argument("--dataset", default="random", help=f"prompt source: {', '.join(KINDS)} (default random)")
    group.add_argument("--dataset-path", default=None, help="file (or BBH directory) for sharegpt, bbh, jsonl")
    group.add_argument("--input-len", type=int, default=None,
                       help=f"random: prompt tokens (default {DEFAULT_INPUT_LEN}; decode workload: 16)")
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
    group.add_argument("--metrics-port", type=int, default=9946,
                       help="Prometheus metrics port (0: off), bound to --web-host: every interface unless "
                            "--web-host says otherwise (e.g. --web-host 127.0.0.1)")
    group.add_argument("--exporter-url", action="append", default=None, metavar="URL",
                       help="llm-dvfs exporter /metrics URL for GPU energy; one per host: repeat it or use commas")
    group.add_argument("--api-key", default=None, env_var="OPENAI_API_KEY",
                       help="sent as 'Authorization: Bearer KEY' (default: $OPENAI_API_KEY); never written out")
    group.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'", dest="headers",
                       help="extra request header, repeatable (replaces --api-key's Authorization if so named)")
    group.add_argument("--seed", type=int, default=None,
                       help="seed for prompt lengths, dataset sampling and arrivals (default: a random one; "
                            "results.json records it)")
    group.add_argument("--workload", default="mixed", help="mixed (default): prompts and outputs as given; "
                       "prefill: max_tokens 1; decode: a few-token random prompt and long outputs")


def split_urls(value: str | list[str] | None) -> tuple[str, ...]:
    """`--exporter-url` as parsed (None, one string, or the option repeated), each maybe comma-separated."""
    items = [value] if isinstance(value, str) else value or []
    return tuple(url.strip() for item in items for url in item.split(",") if url.strip())


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
    exporter_urls: tuple[str, ...]
    workload: str = "mixed"
    api_key: str | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    seed: int | None = None

    @classmethod
    def from_parsed(cls, ns: Any) -> "LoadgenOptions":
        get = lambda name, default=None: getattr(ns, name, default)  # noqa: E731
        endpoint, dataset = get("endpoint", "completions"), get("dataset", "random")
        if endpoint not in ENDPOINT_PATHS:
            raise UsageError(f"--endpoint {endpoint!r}: choose completions or chat")
        if dataset not in KINDS:
            raise UsageError(f"--dataset {dataset!r}: choose from {', '.join(KINDS)}")
        workload = get("workload", "mixed") or "mixed"
        input_len, output_len = request_shape(workload, get("input_len"), get("output_len"),
                                              DEFAULT_INPUT_LEN, DEFAULT_OUTPUT_LEN)
        given = get("output_len") is not None or workload == "prefill"
        if workload == "decode" and dataset != "random":
            raise UsageError("--workload decode makes its own short random prompts: use --dataset random")
        opts = cls(
            model=get("model"), endpoint=endpoint, dataset=dataset, dataset_path=get("dataset_path"),
            input_len=input_len, output_len=output_len, output_len_given=given, range_ratio=get("range_ratio", 0.0),
            tokenizer=get("tokenizer"), token_ids=bool(get("token_ids")),
            ignore_eos=(dataset == "random") if get("ignore_eos") is None else bool(get("ignore_eos")),
            request_rate=get("request_rate", math.inf), burstiness=get("burstiness", 1.0),
            goodput=parse_goodput(get("goodput") or []), results_dir=get("results_dir"),
            metrics_port=get("metrics_port", 9946), exporter_urls=split_urls(get("exporter_url")),
            workload=workload, api_key=get("api_key") or None, headers=parse_headers(get("headers") or []),
            seed=get("seed"))
        opts._check()
        return opts

    @property
    def request_headers(self) -> dict[str, str]:
        """What every request (and the /v1/models look-up) carries: the key, then the --header values."""
        return ({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}) | self.headers

    def check_context(self, max_model_len: int) -> None:
        """Refuse random prompts plus outputs longer than the server's context: every request would be refused."""
        if self.dataset != "random":
            return
        longest = int(self.input_len * (1 + self.range_ratio)) + int(self.output_len * (1 + self.range_ratio))
        if longest > max_model_len:
            raise UsageError(f"--input-len {self.input_len} + --output-len {self.output_len} (range ratio "
                             f"{self.range_ratio}: up to {longest} tokens) exceed the model's context of "
                             f"{max_model_len} tokens (max_model_len at /v1/models)")

    def _check(self) -> None:
        if self.input_len < 1 or self.output_len < 1:
            raise UsageError("--input-len and --output-len must be at least 1")
        if max(self.input_len, self.output_len) * (1 + self.range_ratio) > MAX_LEN:
            raise UsageError(f"--input-len {self.input_len} / --output-len {self.output_len}: at most {MAX_LEN} "
                             "tokens (with --range-ratio)")
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


def check_results_dir(path: str) -> None:
    """Make the results directory and write a file in it now, so that a bad --results-dir stops the run before
    any load is sent instead of losing the results after it."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UsageError(f"--results-dir {path}: cannot write there: {exc.strerror or exc}") from None


def parse_headers(values: list[str]) -> dict[str, str]:
    """`--header 'Name: value'` values as a dict; errors name the header, never its value (it may be a secret)."""
    headers: dict[str, str] = {}
    for text in values:
        name, colon, value = text.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not name:
            raise UsageError("--header: expected 'Name: value' (the value is not shown: it may be a secret)")
        try:
            check_header(name, value)
        except ValueError as exc:
            raise UsageError(f"--header {name[:40]!r}: {exc}") from None
        headers[name] = value
    return headers
