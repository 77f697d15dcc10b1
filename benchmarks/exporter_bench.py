"""Exporter overhead: CPU time per second of sampling, tick jitter p50/p99, and /metrics scrape latency p50/p99.

    python benchmarks/exporter_bench.py --fake-devices 8 --json bench-fake8.json   # FakeNvml at the NVML boundary
    python benchmarks/exporter_bench.py --fake-devices 8 --fake-costs h100          # ... each call costing an H100's
    python benchmarks/exporter_bench.py --backend nvml --json bench-nvml.json      # the real GPUs

Targets (issue 2): under 1% of one core at 100 ms for 8 GPUs, jitter p99 under 5 ms, scrape p99 under 10 ms.
--energy-interval / --buffer-interval are the exporter's knobs for its two costly reads (default 1 s each).
Phase 1 samples without scrapes (CPU, jitter); phase 2 adds back-to-back scrapes (latency, jitter under scrapes).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Sequence

import requests

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT,):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from llm_dvfs.exporter.backends import create_backend  # noqa: E402
from llm_dvfs.exporter.backends.base import Backend, BackendUnavailableError  # noqa: E402
from llm_dvfs.exporter.backends.cadence import ReadCadence  # noqa: E402
from llm_dvfs.exporter.collector import ExporterCollector  # noqa: E402
from llm_dvfs.exporter.sampler import Sampler  # noqa: E402
from llm_dvfs.exporter.server import MetricsServer  # noqa: E402
from llm_dvfs.exporter.store import Store  # noqa: E402


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


def fake_backend(n: int, cadence: ReadCadence, costs: str | None) -> Backend:
    """N free-running FakeNvml GPUs at 300 W, each call costing what it costs on the named GPU (or nothing)."""
    from llm_dvfs.exporter.backends.nvml import NvmlBackend
    from tests.exporter.fake_nvml import COST_PRESETS, FakeGpu, FakeNvml

    gpus = [FakeGpu(uuid=f"GPU-fake-{i}", power_mw=300_000, live=True) for i in range(n)]
    return NvmlBackend(nvml=FakeNvml(gpus, costs=COST_PRESETS[costs] if costs else None),
                       energy_interval=cadence.energy_interval, buffer_interval=cadence.buffer_interval)


def measure(backend: Backend, interval: float, duration: float, scrapes: int) -> dict:
    sys.setswitchinterval(0.001)  # as `llm-dvfs exporter` does
    store = Store(backend.devices())
    sampler = Sampler(backend, store, interval=interval)
    server = MetricsServer(ExporterCollector(store.snapshot, sampler.stats, interval), "127.0.0.1", 0,
                           version=lambda: store.snapshot().tick)
    url = f"http://127.0.0.1:{server.port}/metrics"
    try:
        sampler.start()
        time.sleep(1.0)  # warm up: thread pool, first reads
        cpu0, wall0, lat0 = time.process_time(), time.monotonic(), len(sampler.lateness())
        time.sleep(duration)
        cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        quiet = sampler.lateness()[lat0:]
        latencies = []
        lat1 = len(sampler.lateness())
        with requests.Session() as session:
            for _ in range(scrapes):
                t0 = time.perf_counter()
                body = session.get(url, timeout=5).content
                latencies.append(time.perf_counter() - t0)
        busy = sampler.lateness()[lat1:]
        stats = sampler.stats()
    finally:
        sampler.stop()
        server.close()
        backend.close()
    ms = 1000.0
    return {
        "devices": len(store.devices), "interval_s": interval, "duration_s": duration,
        "cpu_percent_of_one_core": 100.0 * cpu,
        "jitter_ms_p50": percentile(quiet, 50) * ms, "jitter_ms_p99": percentile(quiet, 99) * ms,
        "jitter_under_scrapes_ms_p99": percentile(busy, 99) * ms,
        "scrape_ms_p50": percentile(latencies, 50) * ms, "scrape_ms_p99": percentile(latencies, 99) * ms,
        "scrapes": len(latencies), "metrics_bytes": len(body),
        "tick_duration_ms_mean": ms * stats.tick_duration.total / max(1, stats.tick_duration.count),
        "ticks": stats.ticks, "late_ticks": stats.late_ticks, "missed_ticks": stats.missed_ticks,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--fake-devices", type=int, help="N FakeNvml GPUs at the NVML call boundary")
    group.add_argument("--backend", help="a real backend: nvml, amdsmi, smi-cli, host, replay:PATH")
    p.add_argument("--fake-costs", choices=["h100"], help="FakeNvml calls busy-wait as long as that GPU's do")
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--energy-interval", type=float, default=1.0, help="seconds between energy-counter reads")
    p.add_argument("--buffer-interval", type=float, default=1.0, help="seconds between sample-buffer drains")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of sampling without scrapes")
    p.add_argument("--scrapes", type=int, default=300, help="back-to-back scrapes afterwards")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    try:
        cadence = ReadCadence.for_tick(args.interval, args.energy_interval, args.buffer_interval)
        backend = fake_backend(args.fake_devices, cadence, args.fake_costs) if args.fake_devices else \
            create_backend(args.backend, cadence=cadence)
    except BackendUnavailableError as exc:
        print(f"exporter_bench: {exc}", file=sys.stderr)
        return 2
    label = f"fake-nvml x{args.fake_devices}" if args.fake_devices else args.backend
    result = {"backend": label, "fake_costs": args.fake_costs or "none",
              "energy_interval_s": args.energy_interval, "buffer_interval_s": args.buffer_interval,
              "host": platform.node(), "python": platform.python_version(),
              **measure(backend, args.interval, args.duration, args.scrapes)}
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
