"""`llm-dvfs proxy`: parse options, build the hand-off, serve the Quart app with Hypercorn until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import signal
import socket
import sys
from typing import Sequence
from urllib.parse import urlsplit

from llm_dvfs.common.cli_args import UsageErrorParser
from llm_dvfs.common.errors import UsageError
from llm_dvfs.serving.proxy.app import create_app
from llm_dvfs.serving.proxy.handoff import Handoff
from llm_dvfs.serving.proxy.upstream import Timeouts

log = logging.getLogger("serving.proxy")

KV_PROTOCOLS = ("kv-transfer-params", "p2p-nccl")


def build_parser() -> argparse.ArgumentParser:
    p = UsageErrorParser(prog="llm-dvfs proxy",
                         description="Disaggregated prefill/decode proxy for vLLM (OpenAI API).")
    p.add_argument("--prefill", default="", help="prefill instance base URL(s), comma-separated (e.g. "
                   "http://127.0.0.1:8100); with p2p-nccl optional: limits which pinging instances are accepted")
    p.add_argument("--decode", default="", help="decode instance base URL(s), comma-separated")
    p.add_argument("--kv-protocol", choices=KV_PROTOCOLS, default="kv-transfer-params",
                   help="kv-transfer-params: vLLM >= 0.24 NixlConnector/ExampleConnector; p2p-nccl: vLLM <= 0.23 "
                   "P2pNcclConnector, instances register through the discovery port (default %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default %(default)s)")
    p.add_argument("--listen-address", default="127.0.0.1",
                   help="address for HTTP (default %(default)s; 0.0.0.0 exposes the proxy)")
    p.add_argument("--discovery-address", default="127.0.0.1",
                   help="p2p-nccl: address the discovery port binds to (default %(default)s: only instances on this "
                   "host can register; anything that reaches it may register, so firewall it when you widen it)")
    p.add_argument("--discovery-port", type=int, default=30001,
                   help="p2p-nccl: ZMQ port the instances ping (their proxy_port) (default %(default)s)")
    p.add_argument("--instance-ttl", type=float, default=5.0,
                   help="p2p-nccl: forget an instance silent this many seconds (default %(default)s)")
    p.add_argument("--connect-timeout", type=float, default=5.0,
                   help="seconds to reach an instance before answering 503 (default %(default)s)")
    p.add_argument("--prefill-timeout", type=float, default=600.0,
                   help="seconds for the whole prefill hop before answering 504 (default %(default)s)")
    p.add_argument("--decode-timeout", type=float, default=600.0,
                   help="longest silence from the decode instance before giving up (default %(default)s)")
    p.add_argument("--max-request-bytes", type=int, default=4 * 1024 * 1024,
                   help="larger request bodies get 413 (default %(default)s)")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def parse_urls(value: str, flag: str) -> list[str]:
    """Comma-separated http(s) base URLs, normalised without a trailing slash."""
    urls = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        parts = urlsplit(item)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("http", "https") or not parts.hostname or port is None or parts.path not in ("", "/"):
            raise UsageError(f"{flag}: {item!r} is not a base URL like http://127.0.0.1:8100")
        urls.append(f"{parts.scheme}://{parts.netloc}")
    return urls


def build_handoff(args: argparse.Namespace) -> Handoff:
    prefill, decode = parse_urls(args.prefill, "--prefill"), parse_urls(args.decode, "--decode")
    if args.kv_protocol == "kv-transfer-params":
        if not prefill or not decode:
            raise UsageError("kv-transfer-params needs at least one --prefill and one --decode URL")
        from llm_dvfs.serving.proxy.handoff.kv_transfer_params import KvTransferParamsHandoff
        return KvTransferParamsHandoff(prefill, decode)
    from llm_dvfs.serving.proxy.handoff.p2p_nccl import InstanceRegistry, P2pNcclHandoff, host_port
    allowed = [host_port(url) for url in prefill + decode] or None
    return P2pNcclHandoff(args.discovery_address, args.discovery_port,
                          InstanceRegistry(args.instance_ttl, allowed=allowed))


def check_numbers(args: argparse.Namespace) -> None:
    for flag, port in (("--port", args.port), ("--discovery-port", args.discovery_port)):
        if not 1 <= port <= 65535:
            raise UsageError(f"{flag} must be 1-65535, got {port}")
    if args.kv_protocol == "p2p-nccl" and args.port == args.discovery_port:
        raise UsageError("--port and --discovery-port must differ")
    for flag in ("instance_ttl", "connect_timeout", "prefill_timeout", "decode_timeout", "max_request_bytes"):
        value = getattr(args, flag)
        if not (math.isfinite(value) and value > 0):  # nan passes `<= 0`; inf would never time out
            raise UsageError(f"--{flag.replace('_', '-')} must be a positive finite number, got {value}")


def check_free(host: str, port: int, flag: str) -> None:
    """Fail with one line before anything starts when a port is taken (Hypercorn would fail after start-up)."""
    try:
        with socket.create_server((host, port), reuse_port=False) as _:
            pass
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port} ({flag}): {exc.strerror or exc}") from exc


async def serve(app, host: str, port: int) -> None:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.graceful_timeout = 3.0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await hypercorn_serve(app, config, shutdown_trigger=stop.wait)


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    check_numbers(args)
    handoff = build_handoff(args)
    check_free(args.listen_address, args.port, "--port")
    if args.kv_protocol == "p2p-nccl":
        check_free(args.discovery_address, args.discovery_port, "--discovery-port")
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(handoff, Timeouts(args.connect_timeout, args.prefill_timeout, args.decode_timeout),
                     args.max_request_bytes)
    log.info("proxy on http://%s:%d, %s, instances %s", args.listen_address, args.port, handoff.name,
             handoff.instances() if args.kv_protocol == "kv-transfer-params"
             else f"from discovery on {args.discovery_address}:{args.discovery_port}")
    try:
        asyncio.run(serve(app, args.listen_address, args.port))
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.listen_address}:{args.port}: {exc.strerror or exc}") from exc
    return 0
