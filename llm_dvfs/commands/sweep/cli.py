"""`llm-dvfs sweep`: options, checks, and the choice of recording (own exporter or `--exporter-url`)."""

from __future__ import annotations

import argparse
import re
import shlex
import signal
from pathlib import Path
from typing import Sequence

from rich.console import Console

from llm_dvfs.common.cli_args import UsageErrorParser
from llm_dvfs.common.errors import UsageError
from llm_dvfs.loadgen.server_metrics import metrics_url
from llm_dvfs.loadgen.workloads import WORKLOADS, request_shape
from llm_dvfs.commands.dvfs import options as dvfs_options
from llm_dvfs.commands.sweep.exporter_child import ExporterChild
from llm_dvfs.commands.sweep.exporter_scraper import ExporterScraper
from llm_dvfs.commands.sweep.levels import Level, Load, shaped_levels
from llm_dvfs.commands.sweep.runner import Recording, SweepRunner, free_port
from llm_dvfs.commands.sweep.settings_sweep import SettingsSweep
from llm_dvfs.commands.sweep.target import detect_mode, model_id


def _parser() -> argparse.ArgumentParser:
    p = UsageErrorParser(prog="llm-dvfs sweep", description=(
        "Run the load generator headless at each load level against a vLLM server or the disaggregation proxy, "
        "with an exporter recording GPU power; energy is taken over each level's steady state. Writes "
        "RUN_DIR/sweep.json and RUN_DIR/level-<n>/{results.json,requests.jsonl,samples.csv,steady.json}."))
    load = p.add_mutually_exclusive_group(required=True)
    load.add_argument("--concurrency", help="closed-loop levels: comma-separated user counts, e.g. 1,16,64")
    load.add_argument("--request-rate", help="open-loop levels: comma-separated request rates (req/s), e.g. 1,4")
    p.add_argument("--host", required=True, help="base URL of vLLM or of the proxy, e.g. http://127.0.0.1:8000")
    p.add_argument("--run-dir", required=True, type=Path, help="output directory (must not hold a sweep yet)")
    p.add_argument("--input-len", help="prompt tokens per request, or a comma-separated list to sweep "
                   "(default 512; decode workload 16)")
    p.add_argument("--output-len", help="output tokens per request, or a comma-separated list to sweep, e.g. "
                   "1,64,256 for the differential fit (default 256; prefill workload 1)")
    p.add_argument("--workload", choices=WORKLOADS, default="mixed",
                   help="mixed (default); prefill: max_tokens 1; decode: a few-token prompt, long outputs")
    p.add_argument("--idle", type=float, default=3.0,
                   help="seconds recorded before each level's load, for its idle power (default 3)")
    p.add_argument("--mode", choices=("auto", "single", "disaggregated"), default="auto",
                   help="auto: disaggregated when --host serves the proxy's metrics (default)")
    p.add_argument("--model", help="model name (default: the first id from /v1/models)")
    p.add_argument("--token-ids", action="store_true",
                   help="send prompts as token ids (servers started with --skip-tokenizer-init)")
    p.add_argument("--tokenizer", help="tokenizer path for exact prompt lengths")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds of warm-up per level (default 10)")
    p.add_argument("--steady", type=float, default=30.0, help="seconds of steady state per level (default 30)")
    p.add_argument("--stop-timeout", type=float, default=60.0,
                   help="seconds Locust lets in-flight requests finish at the end of a level (default 60)")
    p.add_argument("--rate-users", type=int, default=256,
                   help="Locust users that carry an open-loop --request-rate level (default 256)")
    p.add_argument("--locust-args", default="", help="extra arguments for every Locust run, one quoted string")
    p.add_argument("--instance-metrics", action="append", default=[], metavar="ROLE=URL",
                   help="also save this server's /metrics before, halfway through and after each level into "
                   "level-*/metrics/ROLE-*.prom (repeatable), e.g. prefill=http://127.0.0.1:8100; --host's is "
                   "always saved, as role host")
    exp = p.add_argument_group("exporter (default: the sweep starts one per level)")
    exp.add_argument("--backend", default="auto", help="auto|nvml|amdsmi|smi-cli|host|replay:PATH (default auto)")
    exp.add_argument("--gpu-ids", help="GPU indices to record, e.g. 0,1 (default: all)")
    exp.add_argument("--interval", type=float, default=0.1, help="sampling interval in seconds (default 0.1)")
    exp.add_argument("--exporter-port", type=int, help="port of the sweep's exporter (default: a free one)")
    exp.add_argument("--exporter-url", help="use a running exporter's /metrics instead of starting one")
    dvfs_options.add_arguments(p)
    return p


def _numbers(text: str, kind: type, what: str) -> list:
    try:
        values = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise UsageError(f"{what} must be positive numbers, got {text!r}")
    if len(set(values)) != len(values):
        raise UsageError(f"{what} lists a value twice: {text!r}")
    return values


def _check(args: argparse.Namespace) -> None:
    if not args.host.startswith(("http://", "https://")):
        raise UsageError(f"--host must be a URL like http://127.0.0.1:8000, got {args.host!r}")
    for name in ("steady", "rate_users", "interval"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if args.warmup < 0 or args.stop_timeout < 0:
        raise UsageError("--warmup and --stop-timeout must not be negative")
    if args.idle < 0:
        raise UsageError("--idle must not be negative")
    if (args.run_dir / "sweep.json").exists():
        raise UsageError(f"{args.run_dir} already holds a sweep; choose a new --run-dir")
    if args.run_dir.exists() and not args.run_dir.is_dir():
        raise UsageError(f"--run-dir {args.run_dir} is not a directory")
    if args.tokenizer and not Path(args.tokenizer).exists():
        raise UsageError(f"--tokenizer {args.tokenizer} does not exist")


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _snapshots(host: str, specs: Sequence[str]) -> dict[str, str]:
    """Role -> /metrics URL of every server whose metrics each level saves; --host is role "host"."""
    found = {"host": metrics_url(host)}
    for spec in specs:
        role, sep, url = spec.partition("=")
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_-]*", role) or not url.startswith(("http://", "https://")):
            raise UsageError(f"--instance-metrics takes ROLE=URL, e.g. prefill=http://127.0.0.1:8100, got {spec!r}")
        if role in found:
            raise UsageError(f"--instance-metrics names role {role!r} twice (host is --host's)")
        found[role] = url if url.rstrip("/").endswith("/metrics") else metrics_url(url)
    return found


def _interrupt_once(signum: int, frame: object) -> None:
    """First Ctrl-C (or SIGTERM): stop the sweep; its cleanup stops every child, which run in their own sessions
    and so never see the terminal's signal. Later signals are ignored so they cannot cut that cleanup short."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def _shapes(args: argparse.Namespace) -> tuple[list[int], list[int]]:
    """The prompt and output lengths to sweep, checked against the workload (prefill: output 1 only)."""
    inputs = _numbers(args.input_len, int, "--input-len") if args.input_len else [None]
    outputs = _numbers(args.output_len, int, "--output-len") if args.output_len else [None]
    pairs = [request_shape(args.workload, i, o, 512, 256) for i in inputs for o in outputs]  # checks each
    return list(dict.fromkeys(i for i, _ in pairs)), list(dict.fromkeys(o for _, o in pairs))


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    _check(args)
    snapshots = _snapshots(args.host.rstrip("/"), args.instance_metrics)
    input_lens, output_lens = _shapes(args)
    levels = [Level(concurrency=c) for c in _numbers(args.concurrency, int, "--concurrency")] if args.concurrency \
        else [Level(request_rate=r) for r in _numbers(args.request_rate, float, "--request-rate")]
    levels = shaped_levels(levels, input_lens, output_lens)
    dvfs = dvfs_options.parse(args)  # None without settings; refuses changes without --allow-clock-changes
    settings = SettingsSweep(args.run_dir, dvfs, [lv.label for lv in levels], args.gpu_ids, Console(stderr=True)) \
        if dvfs else None  # checks every value against the GPUs before the server is contacted
    if settings is not None and dvfs.dry_run:  # prints every change and restore; calls no setter
        settings.console = Console()
        settings.run(None, args.mode)
        return 0
    host = args.host.rstrip("/")
    model = args.model or model_id(host)
    mode = detect_mode(host) if args.mode == "auto" else args.mode
    load = Load(host=host, mode=mode, model=model, input_len=input_lens[0], output_len=output_lens[0],
                token_ids=args.token_ids, tokenizer=args.tokenizer, warmup_s=args.warmup, steady_s=args.steady,
                stop_timeout_s=args.stop_timeout, rate_users=args.rate_users,
                extra_args=tuple(shlex.split(args.locust_args)), workload=args.workload, idle_s=args.idle)
    recording: Recording = ExporterScraper(args.exporter_url, args.interval) if args.exporter_url else \
        ExporterChild(args.backend, args.gpu_ids, args.exporter_port or free_port(), args.interval)
    console = Console(stderr=True)
    console.print(f"sweep: {mode} {model} at {host}, {len(levels)} levels, "
                  f"{args.warmup:g} s warm-up + {args.steady:g} s steady each -> {args.run_dir}")

    def sweep_into(run_dir: Path) -> SweepRunner:
        return SweepRunner(run_dir, load, levels, recording, console, snapshots)

    runner = settings or sweep_into(args.run_dir)
    previous = {sig: signal.signal(sig, _interrupt_once) for sig in STOP_SIGNALS}
    try:
        if settings is not None:
            settings.run(sweep_into, mode)
        else:
            runner.run()
    except KeyboardInterrupt:
        done = len(runner.result["levels"])
        kept = args.run_dir / ("dvfs.json" if dvfs else "sweep.json")
        console.print(f"[yellow]interrupted: kept {done} level(s) in {kept}")
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
