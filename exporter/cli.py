"""`llm-dvfs exporter` / `python -m llm_dvfs.exporter`: sample, serve /metrics, record; stop on SIGINT/SIGTERM or
after --duration with complete files."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
from typing import Any, Callable, Sequence

from llm_dvfs.exporter.backends import NAMES, create_backend
from llm_dvfs.exporter.backends.base import Backend, BackendUnavailableError
from llm_dvfs.exporter.backends.cadence import ReadCadence
from llm_dvfs.exporter.collector import ExporterCollector
from llm_dvfs.exporter.recorder import Recorder
from llm_dvfs.exporter.sampler import Sampler
from llm_dvfs.exporter.server import DEFAULT_TIMEOUT_S, MetricsServer
from llm_dvfs.exporter.web_config import load_web_config
from llm_dvfs.exporter.store import Store
from llm_dvfs.common.cli_args import UsageErrorParser
from llm_dvfs.common.errors import UsageError

DEFAULT_PORT = 9945
BUFFER_DEPTH_S = 2.0  # the NVML sample buffer holds ~2.4 s (120 samples, 20 ms apart); drain it before it wraps
DEFAULT_ENERGY_INTERVAL_S = 30.0  # 8 GPUs x ~3.5 ms per counter read / 30 s = 0.1% of a core (issue 16); the 20 ms
# samples carry the energy in between (within 0.3% of the step-dated counter over 20 s under a harsh square wave)
DEFAULT_BUFFER_INTERVAL_S = 2.0  # every driver sample still seen (the buffer keeps ~2.4 s)
MAX_INTERVAL_S = 3600.0
MAX_DURATION_S = 10 * 365 * 86400.0  # finite and within what a thread can wait for
MAX_HTTP_TIMEOUT_S = 3600.0


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


def _seconds(most: float) -> Callable[[str], float]:
    """A positive, finite number of seconds up to `most` (inf and nan would stop the sampler's clock)."""
    def parse(text: str) -> float:
        value = _positive(text)
        if not math.isfinite(value) or value > most:
            raise argparse.ArgumentTypeError(f"must be a finite number of seconds up to {most:g}: {text!r}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = UsageErrorParser(prog="llm-dvfs exporter", description="Sample GPU power, energy and clocks on a fixed schedule; "
                "serve them as Prometheus /metrics and/or record them to CSV/JSON.")
    p.add_argument("--backend", default="auto", help=f"one of {', '.join(NAMES)} (default auto: nvml, amdsmi, "
                   "smi-cli, then host)")
    p.add_argument("--gpu-ids", type=_gpu_ids, default=None, help="comma-separated device indices (default all)")
    p.add_argument("--interval", type=_seconds(MAX_INTERVAL_S), default=0.1,
                   help="seconds between ticks (default 0.1)")
    p.add_argument("--energy-interval", type=_seconds(86400), default=DEFAULT_ENERGY_INTERVAL_S, metavar="SECONDS",
                   help="seconds between reads of the NVML energy counter (~3.5 ms of CPU each); power samples are "
                   "integrated in between and each read re-anchors gpu_energy_joules_total (default "
                   f"{DEFAULT_ENERGY_INTERVAL_S:g}; at most once per tick)")
    p.add_argument("--buffer-interval", type=_seconds(86400), default=DEFAULT_BUFFER_INTERVAL_S, metavar="SECONDS",
                   help=f"seconds between drains of the NVML power-sample buffer (default "
                   f"{DEFAULT_BUFFER_INTERVAL_S:g}, at most {BUFFER_DEPTH_S:g}: the driver keeps ~2.4 s)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"/metrics port (default {DEFAULT_PORT})")
    p.add_argument("--listen-address", default="0.0.0.0",
                   help="address to bind /metrics to: IPv4, IPv6 (`::1`; `::` is every IPv6 and IPv4 address) or a "
                   "host name (default 0.0.0.0, every IPv4 interface: firewall the port or bind 127.0.0.1)")
    p.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                   help="TLS and basic auth for /metrics, in the Prometheus exporter toolkit's format "
                   "(tls_server_config, basic_auth_users with bcrypt hashes), as node_exporter takes it; read at "
                   "start (default: plain HTTP, no auth)")
    p.add_argument("--http-timeout", type=_seconds(MAX_HTTP_TIMEOUT_S), default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                   help="a connection must deliver a whole request within this many seconds of connecting or of "
                   "its previous response, and take the response as fast, else it is closed (default "
                   f"{DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--no-http", action="store_true", help="do not serve /metrics (record only)")
    p.add_argument("--output", metavar="FILE.csv", help="record one CSV row per tick (docs/interfaces.md)")
    p.add_argument("--json", metavar="FILE.json", help="record every sample as JSON, written as it goes, and "
                   "per-GPU statistics at the end (format: exporter/samples_json.py)")
    p.add_argument("--duration", type=_seconds(MAX_DURATION_S), default=None,
                   help="stop after this many seconds (default: run until SIGINT/SIGTERM)")
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
    web = load_web_config(args.web_config_file) if args.web_config_file else None
    stop = threading.Event()
    sys.setswitchinterval(0.001)  # the sampler thread gets the GIL back within 1 ms even while scrapes run
    backend = _open_backend(args.backend, args.gpu_ids, _cadence(args))
    recorder = server = sampler = None
    recorded = True
    previous: dict[int, Any] = {}
    try:
        recorder = _open_recorder(args, backend)
        store = Store(backend.devices())
        sampler = Sampler(backend, store, interval=args.interval)
        if recorder is not None:
            sampler.subscribe(recorder)
        if not args.no_http:
            server = MetricsServer(ExporterCollector(store.snapshot, sampler.stats, args.interval,
                                                     recorder.health if recorder is not None else None),
                                   args.listen_address, args.port, version=lambda: store.snapshot().tick,
                                   timeout=args.http_timeout, web=web)
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
        if not backend.has_gpu:
            print("llm-dvfs exporter: no GPU found; exporting host CPU metrics only", file=sys.stderr)
        where = server.url if server else "no HTTP"
        print(f"llm-dvfs exporter: {backend.name} backend, {len(backend.devices())} device(s), every "
              f"{args.interval} s, {where}", file=sys.stderr, flush=True)
        sampler.start()
        stop.wait(args.duration)
    finally:
        if sampler is not None:
            sampler.stop()
        if recorder is not None:
            recorded = recorder.close()
        if server is not None:
            server.close()
        backend.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not recorded:
        print("llm-dvfs exporter: some rows could not be written (see above); the files hold whole rows up to "
              "there", file=sys.stderr)
        return 1
    return 0
