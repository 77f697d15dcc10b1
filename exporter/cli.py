"""`llm-dvfs exporter` / `python -m llm_dvfs.exporter`: sample, serve /metrics, record; stop on SIGINT/SIGTERM or
after --duration with complete files."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, NoReturn, Sequence

from llm_dvfs.exporter.backends import NAMES, create_backend
from llm_dvfs.exporter.backends.base import Backend, BackendUnavailableError
from llm_dvfs.exporter.backends.cadence import ReadCadence
from llm_dvfs.exporter.collector import ExporterCollector
from llm_dvfs.exporter.recorder import Recorder
from llm_dvfs.exporter.sampler import Sampler
from llm_dvfs.exporter.server import MetricsServer
from llm_dvfs.exporter.store import Store
from llm_dvfs.common.errors import UsageError

DEFAULT_PORT = 9945
BUFFER_DEPTH_S = 2.0  # the NVML sample buffer holds ~2.4 s (120 samples, 20 ms apart); drain it before it wraps


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as one UsageError line instead of usage text and SystemExit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _gpu_ids(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gpu-ids wants comma-separated integers, got {text!r}") from None
    if not ids or any(i < 0 for i in ids):
        raise argparse.ArgumentTypeError(f"--gpu-ids wants comma-separated non-negative integers, got {text!r}")
    return ids


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="llm-dvfs exporter", description="Sample GPU power, energy and clocks on a fixed schedule; "
                "serve them as Prometheus /metrics and/or record them to CSV/JSON.")
    p.add_argument("--backend", default="auto", help=f"one of {', '.join(NAMES)} (default auto: nvml, amdsmi, "
                   "smi-cli, then host)")
    p.add_argument("--gpu-ids", type=_gpu_ids, default=None, help="comma-separated device indices (default all)")
    p.add_argument("--interval", type=_positive, default=0.1, help="seconds between ticks (default 0.1)")
    p.add_argument("--energy-interval", type=_positive, default=1.0, metavar="SECONDS",
                   help="seconds between reads of the NVML energy counter (~3 ms each); power samples are "
                   "integrated in between and each read re-anchors gpu_energy_joules_total (default 1.0; at most "
                   "once per tick)")
    p.add_argument("--buffer-interval", type=_positive, default=1.0, metavar="SECONDS",
                   help=f"seconds between drains of the NVML power-sample buffer (default 1.0, at most "
                   f"{BUFFER_DEPTH_S:g}: the driver keeps ~2.4 s)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"/metrics port (default {DEFAULT_PORT})")
    p.add_argument("--listen-address", default="0.0.0.0", help="address to bind /metrics to (default 0.0.0.0)")
    p.add_argument("--no-http", action="store_true", help="do not serve /metrics (record only)")
    p.add_argument("--output", metavar="FILE.csv", help="record one CSV row per tick (docs/interfaces.md)")
    p.add_argument("--json", metavar="FILE.json", help="at the end, write every sample and per-GPU statistics")
    p.add_argument("--duration", type=_positive, default=None, help="stop after this many seconds (default: "
                   "run until SIGINT/SIGTERM)")
    return p


def _cadence(args: argparse.Namespace) -> ReadCadence:
    if args.buffer_interval > BUFFER_DEPTH_S:
        raise UsageError(f"--buffer-interval must be at most {BUFFER_DEPTH_S:g} s (the driver keeps ~2.4 s of "
                         f"samples), got {args.buffer_interval:g}")
    return ReadCadence.for_tick(args.interval, args.energy_interval, args.buffer_interval)


def _open_backend(spec: str, gpu_ids: list[int] | None, cadence: ReadCadence) -> Backend:
    try:
        return create_backend(spec, gpu_ids, cadence)
    except BackendUnavailableError as exc:
        raise UsageError(str(exc)) from None


def _open_recorder(args: argparse.Namespace, backend: Backend) -> Recorder | None:
    if not (args.output or args.json):
        return None
    try:
        return Recorder(backend.devices(), args.output, args.json,
                        metadata={"backend": args.backend, "interval_s": args.interval,
                                  "energy_interval_s": args.energy_interval,
                                  "buffer_interval_s": args.buffer_interval})
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename}: {exc.strerror}") from None


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0-65535, got {args.port}")
    stop = threading.Event()
    sys.setswitchinterval(0.001)  # the sampler thread gets the GIL back within 1 ms even while scrapes run
    backend = _open_backend(args.backend, args.gpu_ids, _cadence(args))
    recorder = server = sampler = None
    previous: dict[int, Any] = {}
    try:
        recorder = _open_recorder(args, backend)
        store = Store(backend.devices())
        sampler = Sampler(backend, store, interval=args.interval)
        if recorder is not None:
            sampler.subscribe(recorder)
        if not args.no_http:
            server = MetricsServer(ExporterCollector(store.snapshot, sampler.stats, args.interval),
                                   args.listen_address, args.port, version=lambda: store.snapshot().tick)
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
        if not backend.has_gpu:
            print("llm-dvfs exporter: no GPU found; exporting host CPU metrics only", file=sys.stderr)
        where = f"http://{args.listen_address}:{server.port}/metrics" if server else "no HTTP"
        print(f"llm-dvfs exporter: {backend.name} backend, {len(backend.devices())} device(s), every "
              f"{args.interval} s, {where}", file=sys.stderr, flush=True)
        sampler.start()
        stop.wait(args.duration)
    finally:
        if sampler is not None:
            sampler.stop()
        if recorder is not None:
            recorder.close()
        if server is not None:
            server.close()
        backend.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
