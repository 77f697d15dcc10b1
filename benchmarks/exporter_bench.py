"""Exporter overhead: CPU time per second of sampling, tick jitter p50/p99, /metrics scrape latency p50/p99, and
energy against the hardware counter.

    python benchmarks/exporter_bench.py --fake-devices 8 --json bench-fake8.json   # FakeNvml at the NVML boundary
    python benchmarks/exporter_bench.py --fake-devices 8 --fake-costs h200          # ... each call costing an H200's
    python benchmarks/exporter_bench.py --backend nvml --json bench-nvml.json      # the real GPUs

Targets (issue 16): 8 GPUs at 100 ms under 1% of one core, jitter p99 under 5 ms, scrape p99 under 10 ms, every
20 ms driver power sample in the histogram, energy over 20 s and 30 s windows within 0.5% of the counter.
--energy-interval / --buffer-interval are the exporter's knobs for its two costly reads (defaults: the exporter's).
Phase 1 samples without scrapes (CPU, tick duration, jitter, driver samples per second per GPU, energy against
each GPU's counter, which a thread of the benchmark reads every --energy-check-every seconds, its CPU time kept out
of the exporter's); phase 2 adds back-to-back scrapes (latency, jitter under scrapes).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import requests

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT,):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from llm_dvfs.common.atomic_file import atomic_write_text  # noqa: E402
from llm_dvfs.common.percentile import percentile  # noqa: E402
from llm_dvfs.exporter.backends import create_backend  # noqa: E402
from llm_dvfs.exporter.backends.base import Backend, BackendUnavailableError  # noqa: E402
from llm_dvfs.exporter.backends.cadence import ReadCadence  # noqa: E402
from llm_dvfs.exporter.cli import DEFAULT_BUFFER_INTERVAL_S, DEFAULT_ENERGY_INTERVAL_S  # noqa: E402
from llm_dvfs.exporter.collector import ExporterCollector  # noqa: E402
from llm_dvfs.exporter.sampler import Sampler  # noqa: E402
from llm_dvfs.exporter.server import MetricsServer  # noqa: E402
from llm_dvfs.exporter.store import DeviceState, Snapshot, Store  # noqa: E402

Counter = Callable[[int], float]  # device index -> the hardware energy counter now, joules


def percentile_ms(values_s: Sequence[float], q: float) -> float:
    """The shared percentile in milliseconds; NaN when there is nothing to measure."""
    value = percentile(values_s, q)
    return float("nan") if value is None else value * 1000.0


def fake_backend(n: int, cadence: ReadCadence, costs: str | None) -> tuple[Backend, Counter]:
    """N free-running FakeNvml GPUs at 300 W, each call costing what it costs on the named GPU (or nothing), and
    their energy counters read straight from the fake (at no cost)."""
    from llm_dvfs.exporter.backends.nvml import NvmlBackend
    from tests.exporter.fake_nvml import COST_PRESETS, FakeGpu, FakeNvml

    gpus = [FakeGpu(uuid=f"GPU-fake-{i}", power_mw=300_000, live=True) for i in range(n)]
    backend = NvmlBackend(nvml=FakeNvml(gpus, costs=COST_PRESETS[costs] if costs else None),
                          energy_interval=cadence.energy_interval, buffer_interval=cadence.buffer_interval,
                          slow_interval=cadence.slow_interval)
    return backend, lambda index: (gpus[index].energy_mj + gpus[index].power_mw * (time.time() -
                                                                                 gpus[index].live_since)) / 1000.0


def nvml_counter() -> Counter:
    """The real GPUs' energy counters through pynvml, beside the exporter's own reads (NVML init is counted)."""
    import pynvml

    pynvml.nvmlInit()
    handles: dict[int, Any] = {}

    def read(index: int) -> float:
        if index not in handles:
            handles[index] = pynvml.nvmlDeviceGetHandleByIndex(index)
        return pynvml.nvmlDeviceGetTotalEnergyConsumption(handles[index]) / 1000.0
    return read


class EnergyCheck:
    """Reads every GPU's counter every `every` seconds in a thread of its own, so that those reads (milliseconds of
    busy-waiting each on a real GPU, eight in a row on an 8-GPU host) delay no tick and their CPU time (`cpu_s`)
    can be kept out of the exporter's; each read is paired with the exporter's energy at its midpoint, interpolated
    between that device's reads in the ticks around it."""

    def __init__(self, counter: Counter, every: float) -> None:
        self._counter, self._every = counter, every
        self._snapshots: list[Snapshot] = []  # every tick from the first: the first read needs a tick before it
        self._reads: list[dict[int, tuple[float, float]]] = []  # per round: {gpu: (Unix time, counter J)}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cpu_s = 0.0  # CPU time of the counter reads

    def __call__(self, snapshot: Snapshot) -> None:
        self._snapshots.append(snapshot)

    def start(self, indices: Sequence[int]) -> None:
        self._thread = threading.Thread(target=self._run, args=(list(indices),), name="energy-check", daemon=True)
        self._thread.start()

    def _run(self, indices: list[int]) -> None:
        while True:
            cpu0, reads = time.thread_time(), {}
            for index in indices:
                t0 = time.time()
                value = self._counter(index)
                reads[index] = ((t0 + time.time()) / 2.0, value)
            self._reads.append(reads)
            self.cpu_s += time.thread_time() - cpu0
            if self._stop.wait(self._every):
                return

    def stop_reading(self) -> None:
        """No more counter reads (the ticks after the last one are still collected, to interpolate it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def points(self) -> list[tuple[float, dict[int, tuple[float, float]]]]:
        """(time of the round, {gpu: (exported J, counter J)}) for every round with ticks on both sides."""
        out = []
        for reads in self._reads:
            pairs = {}
            for gpu, (at, value) in reads.items():
                around = _ticks_around(self._snapshots, gpu, at)
                if around is not None:
                    pairs[gpu] = (_energy_at(at, *around), value)
            if pairs:
                out.append((min(at for at, _ in reads.values()), pairs))
        return out


def _ticks_around(snapshots: Sequence[Snapshot], gpu: int, at: float) -> tuple[DeviceState, DeviceState] | None:
    """That device's states in the last tick that read it at or before `at` and the first one after."""
    before = None
    for snapshot in snapshots:
        state = next((d for d in snapshot.devices if d.info.index == gpu and d.up), None)
        if state is None or state.sample.read_at is None:
            continue
        if state.sample.read_at <= at:
            before = state
        elif before is not None:
            return before, state
    return None


def _energy_at(at: float, before: DeviceState, after: DeviceState) -> float:
    """The exporter's energy at Unix time `at`, between two ticks' values (each as of that device's read)."""
    t0, t1 = (s.sample.read_at for s in (before, after))
    share = (at - t0) / (t1 - t0) if t0 is not None and t1 is not None and t1 > t0 else 1.0
    return before.energy_j + share * (after.energy_j - before.energy_j)


def energy_errors_by_gpu(points: Sequence[tuple[float, dict[int, tuple[float, float]]]],
                         window: float) -> dict[int, list[float]]:
    """Percent error of exported energy against the counter over every window of about `window` seconds between
    check points (from each point to the first one at least `window` later), per GPU."""
    errors: dict[int, list[float]] = {}
    for i, (t0, start) in enumerate(points):
        end = next(((t, p) for t, p in points[i + 1:] if t - t0 >= window - 0.5), None)
        if end is None:
            break
        for gpu, (exported0, counter0) in start.items():
            if gpu in end[1] and end[1][gpu][1] > counter0:
                exported1, counter1 = end[1][gpu]
                errors.setdefault(gpu, []).append(
                    100.0 * ((exported1 - exported0) - (counter1 - counter0)) / (counter1 - counter0))
    return errors


def energy_errors(points: Sequence[tuple[float, dict[int, tuple[float, float]]]], window: float) -> list[float]:
    """The windows' errors of every GPU together."""
    return [e for gpu_errors in energy_errors_by_gpu(points, window).values() for e in gpu_errors]


class TimedSampler(Sampler):
    """The exporter's sampler with each tick's duration kept (its own statistics keep only a histogram)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.durations: list[float] = []

    def tick(self, deadline: float | None = None) -> Snapshot:
        started = time.monotonic()
        snapshot = super().tick(deadline)
        self.durations.append(time.monotonic() - started)
        return snapshot


def _histogram_counts(store: Store) -> dict[int, int]:
    return {d.info.index: d.power_histogram.count for d in store.snapshot().devices}


def measure(backend: Backend, interval: float, duration: float, scrapes: int, counter: Counter | None = None,
            check_every: float = 5.0) -> dict:
    sys.setswitchinterval(0.001)  # as `llm-dvfs exporter` does
    store = Store(backend.devices())
    sampler = TimedSampler(backend, store, interval=interval)
    check = EnergyCheck(counter, check_every) if counter is not None else None
    if check is not None:
        sampler.subscribe(check)
    server = MetricsServer(ExporterCollector(store.snapshot, sampler.stats, interval), "127.0.0.1", 0,
                           version=lambda: store.snapshot().tick)
    url = f"http://127.0.0.1:{server.port}/metrics"
    try:
        sampler.start()
        time.sleep(1.0)  # warm up: first reads, first counter anchors
        cpu0, wall0, lat0 = time.process_time(), time.monotonic(), len(sampler.lateness())
        ticks0 = len(sampler.durations)
        if check is not None:
            check.start([d.index for d in store.devices])
        samples0 = _histogram_counts(store)
        time.sleep(duration)
        if check is not None:
            check.stop_reading()
        elapsed = time.monotonic() - wall0
        checker_cpu = check.cpu_s if check is not None else 0.0
        cpu = (time.process_time() - cpu0 - checker_cpu) / elapsed
        samples = {i: (n - samples0[i]) / elapsed for i, n in _histogram_counts(store).items()}
        quiet = sampler.lateness()[lat0:]
        durations = sampler.durations[ticks0:]
        if check is not None:
            time.sleep(2 * interval)  # a tick after the last counter read, to interpolate at it
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
    energy: dict[str, Any] = {}
    if check is not None:
        points = check.points()
        for window in (20.0, 30.0):
            by_gpu = energy_errors_by_gpu(points, window)
            errors = [e for gpu_errors in by_gpu.values() for e in gpu_errors]
            energy[f"energy_error_pct_max_abs_{window:g}s"] = max(map(abs, errors)) if errors else float("nan")
            energy[f"energy_windows_{window:g}s"] = len(errors)
            energy[f"energy_error_pct_max_abs_{window:g}s_per_gpu"] = {
                str(g): max(map(abs, e)) for g, e in sorted(by_gpu.items())}
        energy["energy_check_cpu_s"] = checker_cpu
        energy["energy_check_points"] = [[t, {str(g): list(v) for g, v in p.items()}] for t, p in points]
    return {
        "devices": len(store.devices), "interval_s": interval, "duration_s": duration,
        "cpu_percent_of_one_core": 100.0 * cpu,
        "jitter_ms_p50": percentile_ms(quiet, 50), "jitter_ms_p99": percentile_ms(quiet, 99),
        "jitter_under_scrapes_ms_p99": percentile_ms(busy, 99),
        "scrape_ms_p50": percentile_ms(latencies, 50), "scrape_ms_p99": percentile_ms(latencies, 99),
        "scrapes": len(latencies), "metrics_bytes": len(body),
        "tick_duration_ms_mean": ms * stats.tick_duration.total / max(1, stats.tick_duration.count),
        "tick_duration_ms_p50": percentile_ms(durations, 50), "tick_duration_ms_p99": percentile_ms(durations, 99),
        "ticks": stats.ticks, "late_ticks": stats.late_ticks, "missed_ticks": stats.missed_ticks,
        "reader_threads_started": sampler.reader_threads_started,
        "power_samples_per_s_min": min(samples.values(), default=float("nan")),
        "power_samples_per_s_per_gpu": {str(i): rate for i, rate in sorted(samples.items())},
        **energy,
    }


SUMMARY_KEYS = ("label", "devices", "energy_interval_s", "buffer_interval_s", "cpu_percent_of_one_core",
                "tick_duration_ms_p50", "tick_duration_ms_p99", "jitter_ms_p50", "jitter_ms_p99", "scrape_ms_p50",
                "scrape_ms_p99", "power_samples_per_s_min", "power_samples_per_s_per_gpu",
                "energy_error_pct_max_abs_20s", "energy_error_pct_max_abs_30s",
                "energy_error_pct_max_abs_30s_per_gpu", "missed_ticks")


def summarize(directory: Path) -> list[dict]:
    """The key figures of every result JSON in `directory`, written to its summary.json and printed."""
    rows = []
    for path in sorted(directory.glob("*.json")):
        if path.name != "summary.json":
            doc = json.loads(path.read_text())
            rows.append({key: doc.get(key) for key in SUMMARY_KEYS})
    atomic_write_text(directory / "summary.json", json.dumps(rows, indent=2))
    for row in rows:
        print("  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--fake-devices", type=int, help="N FakeNvml GPUs at the NVML call boundary")
    group.add_argument("--backend", help="a real backend: nvml, amdsmi, smi-cli, host, replay:PATH")
    group.add_argument("--summarize", type=Path, metavar="DIR", help="only summarize the result JSONs in DIR")
    p.add_argument("--fake-costs", choices=["h100", "h200"], help="FakeNvml calls busy-wait as long as that GPU's do")
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--energy-interval", type=float, default=DEFAULT_ENERGY_INTERVAL_S,
                   help=f"seconds between energy-counter reads (default {DEFAULT_ENERGY_INTERVAL_S:g}, the exporter's)")
    p.add_argument("--buffer-interval", type=float, default=DEFAULT_BUFFER_INTERVAL_S,
                   help=f"seconds between sample-buffer drains (default {DEFAULT_BUFFER_INTERVAL_S:g}, the exporter's)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of sampling without scrapes")
    p.add_argument("--energy-check-every", type=float, default=5.0, metavar="SECONDS",
                   help="read the energy counter beside the exporter this often (nvml and fake GPUs; default 5)")
    p.add_argument("--label", default="", help="a name for this configuration, copied into the results")
    p.add_argument("--scrapes", type=int, default=300, help="back-to-back scrapes afterwards")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    if args.summarize:
        summarize(args.summarize)
        return 0
    try:
        cadence = ReadCadence.for_tick(args.interval, args.energy_interval, args.buffer_interval)
        if args.fake_devices:
            backend, counter = fake_backend(args.fake_devices, cadence, args.fake_costs)
        else:
            backend = create_backend(args.backend, cadence=cadence)
            counter = nvml_counter() if args.backend == "nvml" else None
    except BackendUnavailableError as exc:
        print(f"exporter_bench: {exc}", file=sys.stderr)
        return 2
    label = f"fake-nvml x{args.fake_devices}" if args.fake_devices else args.backend
    result = {"label": args.label, "backend": label, "fake_costs": args.fake_costs or "none",
              "energy_interval_s": args.energy_interval, "buffer_interval_s": args.buffer_interval,
              "host": platform.node(), "python": platform.python_version(),
              **measure(backend, args.interval, args.duration, args.scrapes, counter, args.energy_check_every)}
    width = max(map(len, result))
    for key, value in result.items():
        if key == "energy_check_points":
            continue
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
