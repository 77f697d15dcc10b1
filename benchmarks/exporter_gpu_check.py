"""On a real NVIDIA GPU: does the exporter see a load step in time, and do its energy sources agree?

Samples GPU --gpu-id with the nvml backend every --interval while it drives a load step with torch matmuls
(idle ~5 s, load ~15 s, idle ~10 s), records the samples CSV, and reports:
  (a) how many ticks instant power takes to follow the step up and down (and the 1 s average's lag, for contrast),
  (b) the energy counter against integrated instant power over the whole run (≥ 30 s), in percent,
  (c) the driver power-sample buffer: samples per tick and their spacing.
It only reads the GPU (never touches clocks or power limits).

    python benchmarks/exporter_gpu_check.py --gpu-id 0 --out-dir data/runs/gpu-check
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from llm_dvfs.common.atomic_file import atomic_write_text  # noqa: E402
from llm_dvfs.exporter.backends.base import Backend, GpuSample  # noqa: E402
from llm_dvfs.exporter.recorder import Recorder  # noqa: E402
from llm_dvfs.exporter.sampler import Sampler  # noqa: E402
from llm_dvfs.exporter.store import Snapshot, Store  # noqa: E402


@dataclass(frozen=True)
class Tick:
    """What one tick saw on the checked GPU."""

    time: float  # Unix seconds
    sample: GpuSample | None


@dataclass(frozen=True)
class Phases:
    """Wall-clock boundaries of the load step (Unix seconds)."""

    start: float
    load_start: float
    load_end: float
    end: float


# ---------------------------------------------------------------- analysis (pure functions, unit-tested)

def _values(ticks: Sequence[Tick], field: str, lo: float, hi: float) -> list[float]:
    out = []
    for t in ticks:
        if lo <= t.time < hi and t.sample is not None and getattr(t.sample, field) is not None:
            out.append(getattr(t.sample, field))
    return out


def ticks_to_follow(ticks: Sequence[Tick], field: str, step_at: float, before: tuple[float, float],
                    after: tuple[float, float], fraction: float) -> int | None:
    """Ticks after `step_at` until `field` has covered `fraction` of the way from its median over `before` to
    its median over `after` (windows are (start, end) Unix seconds). The first tick at or after the step is tick 1.
    None when it never gets there (or a window has no readings)."""
    old_values, new_values = _values(ticks, field, *before), _values(ticks, field, *after)
    if not old_values or not new_values:
        return None
    old, new = statistics.median(old_values), statistics.median(new_values)
    target = old + fraction * (new - old)
    rising = new > old
    n = 0
    for t in ticks:
        if t.time < step_at or t.sample is None or getattr(t.sample, field) is None:
            continue
        n += 1
        v = getattr(t.sample, field)
        if (v >= target) if rising else (v <= target):
            return n
    return None


def step_response(ticks: Sequence[Tick], phases: Phases) -> dict:
    """Ticks to 50% and 90% of the step, up (idle -> load) and down (load -> idle), for instant and average."""
    settle = 3.0
    up_before = (max(phases.start, phases.load_start - settle), phases.load_start)
    up_after = (phases.load_start + settle, phases.load_end)
    down_before = (phases.load_end - settle, phases.load_end)
    down_after = (phases.load_end + settle, phases.end)
    out: dict = {}
    for label, field in (("instant", "power_w"), ("average", "power_average_w")):
        if not _values(ticks, field, phases.start, phases.end):
            out[label] = None
            continue
        idle, load = _values(ticks, field, *up_before), _values(ticks, field, *up_after)
        out[label] = {
            "idle_w": statistics.median(idle) if idle else None,
            "load_w": statistics.median(load) if load else None,
            "up_ticks_50": ticks_to_follow(ticks, field, phases.load_start, up_before, up_after, 0.5),
            "up_ticks_90": ticks_to_follow(ticks, field, phases.load_start, up_before, up_after, 0.9),
            "down_ticks_50": ticks_to_follow(ticks, field, phases.load_end, down_before, down_after, 0.5),
            "down_ticks_90": ticks_to_follow(ticks, field, phases.load_end, down_before, down_after, 0.9),
        }
    return out


def integrate(points: Sequence[tuple[float, float]]) -> float:
    """Trapezoid integral of (time, watts) points, joules."""
    return sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in zip(points, points[1:]))


def energy_agreement(ticks: Sequence[Tick]) -> dict:
    """Hardware counter delta vs integrated instant power (tick readings, and driver-buffer samples) over the
    span between the first and last tick that has both."""
    both = [t for t in ticks if t.sample is not None and t.sample.energy_j is not None and t.sample.power_w is not None]
    if len(both) < 2:
        return {"window_s": 0.0, "counter_j": None, "instant_j": None, "percent_diff": None}
    first, last = both[0], both[-1]
    counter = last.sample.energy_j - first.sample.energy_j
    instant = integrate([(t.time, t.sample.power_w) for t in both])
    driver = [(p.timestamp, p.watts) for t in ticks if t.sample is not None for p in t.sample.power_samples
              if first.time <= p.timestamp <= last.time]
    driver_j = integrate(driver) if len(driver) > 1 else None
    driver_span = (driver[-1][0] - driver[0][0]) if len(driver) > 1 else 0.0
    window = last.time - first.time
    return {
        "window_s": window,
        "counter_j": counter,
        "instant_j": instant,
        "percent_diff": 100.0 * (instant - counter) / counter if counter else None,
        # driver samples cover a slightly shorter span: compare mean powers, not joules
        "driver_samples_mean_w": driver_j / driver_span if driver_j is not None and driver_span else None,
        "counter_mean_w": counter / window if window else None,
    }


def driver_buffer(ticks: Sequence[Tick]) -> dict:
    """How many driver samples arrive per tick and how far apart they are (ms)."""
    per_tick = [len(t.sample.power_samples) for t in ticks if t.sample is not None]
    stamps = [p.timestamp for t in ticks if t.sample is not None for p in t.sample.power_samples]
    gaps = sorted((b - a) * 1000 for a, b in zip(stamps, stamps[1:]))
    if not stamps:
        return {"samples": 0, "per_tick_mean": 0.0, "duplicates": 0}
    return {
        "samples": len(stamps),
        "per_tick_mean": statistics.fmean(per_tick) if per_tick else 0.0,
        "per_tick_max": max(per_tick),
        "spacing_ms_median": statistics.median(gaps) if gaps else None,
        "spacing_ms_p99": gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))] if gaps else None,
        "duplicates": len(stamps) - len(set(stamps)),
        "out_of_order": sum(1 for a, b in zip(stamps, stamps[1:]) if b <= a),
    }


def analyse(ticks: Sequence[Tick], phases: Phases, interval: float) -> dict:
    return {"interval_s": interval, "ticks": len(ticks), "step_response": step_response(ticks, phases),
            "energy": energy_agreement(ticks), "driver_buffer": driver_buffer(ticks)}


# ---------------------------------------------------------------- running it

def run_check(backend: Backend, index: int, load: Callable[[threading.Event], None], idle_before: float,
              load_s: float, idle_after: float, interval: float, csv_path: Path | None) -> tuple[list[Tick], Phases]:
    """Sample `backend` device `index` through the exporter's own sampler while `load(stop)` runs in a thread
    during the middle phase."""
    store = Store([d for d in backend.devices() if d.index == index])
    sampler = Sampler(backend, store, interval=interval)
    ticks: list[Tick] = []
    sampler.subscribe(lambda snap: ticks.append(_tick(snap)))
    recorder = Recorder(store.devices, csv_path) if csv_path else None
    if recorder:
        sampler.subscribe(recorder)
    stop_load = threading.Event()
    worker = threading.Thread(target=load, args=(stop_load,), daemon=True)
    start = time.time()
    sampler.start()
    try:
        time.sleep(idle_before)
        load_start = time.time()
        worker.start()
        time.sleep(load_s)
        stop_load.set()
        worker.join()
        load_end = time.time()
        time.sleep(idle_after)
    finally:
        sampler.stop()
        if recorder:
            recorder.close()
    return ticks, Phases(start, load_start, load_end, time.time())


def _tick(snapshot: Snapshot) -> Tick:
    return Tick(snapshot.wall_time, snapshot.devices[0].sample)


def torch_matmul_load(gpu_id: int, size: int) -> Callable[[threading.Event], None]:
    """Back-to-back bf16 matmuls on the GPU until stopped (CUDA initialised up front, outside the step)."""
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # so cuda:N is NVML's GPU N
    import torch

    device = torch.device(f"cuda:{gpu_id}")
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    (a @ b).sum().item()
    torch.cuda.synchronize(device)

    def load(stop: threading.Event) -> None:
        while not stop.is_set():
            for _ in range(8):
                a @ b
            torch.cuda.synchronize(device)

    return load


def square_load(gpu_id: int, on_s: float, off_s: float, stop: threading.Event) -> None:
    """Matmuls on GPU `gpu_id` for `on_s`, idle for `off_s`, again and again until `stop` is set: the harshest
    load for an energy estimate (power steps between ~100 W and the 700 W limit)."""
    step = torch_matmul_load(gpu_id, 8192)
    while not stop.is_set():
        burst = threading.Event()
        worker = threading.Thread(target=step, args=(burst,))
        worker.start()
        stop.wait(on_s)
        burst.set()
        worker.join()
        stop.wait(off_s)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpu-id", type=int, default=0)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--idle-before", type=float, default=5.0)
    p.add_argument("--load", type=float, default=15.0)
    p.add_argument("--idle-after", type=float, default=10.5)
    p.add_argument("--matrix-size", type=int, default=8192)
    p.add_argument("--out-dir", type=Path, default=Path("gpu-check"))
    args = p.parse_args(argv)
    from llm_dvfs.exporter.backends.base import BackendUnavailableError
    from llm_dvfs.exporter.backends.nvml import NvmlBackend

    try:
        backend = NvmlBackend(gpu_ids=[args.gpu_id])
    except BackendUnavailableError as exc:
        print(f"exporter_gpu_check: {exc}", file=sys.stderr)
        return 2
    info = backend.devices()[0]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    try:
        load = torch_matmul_load(args.gpu_id, args.matrix_size)
    except (ImportError, RuntimeError, AssertionError) as exc:  # no torch, or torch without CUDA
        backend.close()
        print(f"exporter_gpu_check: cannot drive a load with torch on cuda:{args.gpu_id}: {exc}", file=sys.stderr)
        return 2
    try:
        ticks, phases = run_check(backend, args.gpu_id, load, args.idle_before, args.load, args.idle_after,
                                  args.interval, args.out_dir / "samples.csv")
    finally:
        backend.close()
    report = {"gpu": {"index": info.index, "name": info.name, "uuid": info.uuid, "driver": info.driver},
              "phases": {"idle_before_s": args.idle_before, "load_s": args.load, "idle_after_s": args.idle_after},
              **analyse(ticks, phases, args.interval)}
    atomic_write_text(args.out_dir / "gpu_check.json", json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
