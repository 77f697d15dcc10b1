"""`llm-dvfs sweep`: options, checks, and the choice of recording (own exporter or `--exporter-url`)."""

from __future__ import annotations

import argparse
import shlex
import signal
from pathlib import Path
from typing import Sequence

from rich.console import Console

from llm_dvfs.common.errors import UsageError
from llm_dvfs.commands.sweep.exporter_child import ExporterChild
from llm_dvfs.commands.sweep.exporter_scraper import ExporterScraper
from llm_dvfs.commands.sweep.levels import Level, Load
from llm_dvfs.commands.sweep.runner import Recording, SweepRunner, free_port
from llm_dvfs.commands.sweep.target import detect_mode, served_model


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2 through the dispatcher, not argparse's usage dump
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="llm-dvfs sweep", description=(
        "Run the load generator headless at each load level against a vLLM server or the disaggregation proxy, "
        "with an exporter recording GPU power; energy is taken over each level's steady state. Writes "
        "RUN_DIR/sweep.json and RUN_DIR/level-<n>/{results.json,requests.jsonl,samples.csv,steady.json}."))
    load = p.add_mutually_exclusive_group(required=True)
    load.add_argument("--concurrency", help="closed-loop levels: comma-separated user counts, e.g. 1,16,64")
    load.add_argument("--request-rate", help="open-loop levels: comma-separated request rates (req/s), e.g. 1,4")
    p.add_argument("--host", required=True, help="base URL of vLLM or of the proxy, e.g. http://127.0.0.1:8000")
    p.add_argument("--run-dir", required=True, type=Path, help="output directory (must not hold a sweep yet)")
    p.add_argument("--input-len", type=int, default=512, help="prompt tokens per request (default 512)")
    p.add_argument("--output-len", type=int, default=256, help="output tokens per request (default 256)")
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
    exp = p.add_argument_group("exporter (default: the sweep starts one per level)")
    exp.add_argument("--backend", default="auto", help="auto|nvml|amdsmi|smi-cli|host|replay:PATH (default auto)")
    exp.add_argument("--gpu-ids", help="GPU indices to record, e.g. 0,1 (default: all)")
    exp.add_argument("--interval", type=float, default=0.1, help="sampling interval in seconds (default 0.1)")
    exp.add_argument("--exporter-port", type=int, help="port of the sweep's exporter (default: a free one)")
    exp.add_argument("--exporter-url", help="use a running exporter's /metrics instead of starting one")
    return p


def _numbers(text: str, kind: type, what: str) -> list:
    try:
        values = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise UsageError(f"{what} must be positive numbers, got {text!r}")
    if len(set(values)) != len(values):
        raise UsageError(f"{what} lists a level twice: {text!r}")
    return values


def _check(args: argparse.Namespace) -> None:
    if not args.host.startswith(("http://", "https://")):
        raise UsageError(f"--host must be a URL like http://127.0.0.1:8000, got {args.host!r}")
    for name in ("input_len", "output_len", "steady", "rate_users", "interval"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if args.warmup < 0 or args.stop_timeout < 0:
        raise UsageError("--warmup and --stop-timeout must not be negative")
    if (args.run_dir / "sweep.json").exists():
        raise UsageError(f"{args.run_dir} already holds a sweep; choose a new --run-dir")
    if args.run_dir.exists() and not args.run_dir.is_dir():
        raise UsageError(f"--run-dir {args.run_dir} is not a directory")
    if args.tokenizer and not Path(args.tokenizer).exists():
        raise UsageError(f"--tokenizer {args.tokenizer} does not exist")


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _interrupt_once(signum: int, frame: object) -> None:
    """First Ctrl-C (or SIGTERM): stop the sweep; its cleanup stops every child, which run in their own sessions
    and so never see the terminal's signal. Later signals are ignored so they cannot cut that cleanup short."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    _check(args)
    levels = [Level(concurrency=c) for c in _numbers(args.concurrency, int, "--concurrency")] if args.concurrency \
        else [Level(request_rate=r) for r in _numbers(args.request_rate, float, "--request-rate")]
    host = args.host.rstrip("/")
    model = args.model or served_model(host)
    mode = detect_mode(host) if args.mode == "auto" else args.mode
    load = Load(host=host, mode=mode, model=model, input_len=args.input_len, output_len=args.output_len,
                token_ids=args.token_ids, tokenizer=args.tokenizer, warmup_s=args.warmup, steady_s=args.steady,
                stop_timeout_s=args.stop_timeout, rate_users=args.rate_users,
                extra_args=tuple(shlex.split(args.locust_args)))
    recording: Recording = ExporterScraper(args.exporter_url, args.interval) if args.exporter_url else \
        ExporterChild(args.backend, args.gpu_ids, args.exporter_port or free_port(), args.interval)
    console = Console(stderr=True)
    console.print(f"sweep: {mode} {model} at {host}, {len(levels)} levels, "
                  f"{args.warmup:g} s warm-up + {args.steady:g} s steady each -> {args.run_dir}")
    runner = SweepRunner(args.run_dir, load, levels, recording, console)
    previous = {sig: signal.signal(sig, _interrupt_once) for sig in STOP_SIGNALS}
    try:
        runner.run()
    except KeyboardInterrupt:
        done = len(runner.result["levels"])
        console.print(f"[yellow]interrupted: kept {done} level(s) in {args.run_dir / 'sweep.json'}")
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
