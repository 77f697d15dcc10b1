"""Exporter overhead: CPU time per second of sampling, tick jitter p50/p99, /metrics scrape latency p50/p99, and
energy against the hardware counter.

    python benchmarks/exporter_bench.py --fake-devices 8 --json bench-fake8.json   # FakeNvml at the NVML boundary
    python benchmarks/exporter_bench.py --fake-devices 8 --fake-costs h200          # ... each call costing an H200's
    python benchmarks/exporter_bench.py --fake-devices 8 --fake-load square         # ... 100 W / 700 W, 2 s each
    python benchmarks/exporter_bench.py --backend nvml --json bench-nvml.json      # the real GPUs

Targets (issue 16): 8 GPUs at 100 ms under 1% of one core, jitter p99 under 5 ms, scrape p99 under 10 ms, every
20 ms driver power sample in the histogram, energy over 20 s and 30 s windows within 0.5% of the counter.
--energy-interval / --buffer-interval are the exporter's knobs for its two costly reads (defaults: the exporter's).
Phase 1 samples without scrapes (CPU, tick duration, jitter, driver samples per second per GPU, energy against
each GPU's counter, which a thread of the benchmark reads every --energy-check-every seconds, its CPU time kept out
of the exporter's); phase 2 adds back-to-back scrapes (latency, jitter under scrapes).

The energy reference is the counter dated at its step. Measured on an H200 (driver 580), the counter changes in
steps about every 100 ms and holds its value in between; dated at its step instant it equals the integral of the
driver's 20 ms power samples to within 0.1%, but a value read at a random moment is 0-130 ms stale, up to ~90 J at
700 W (~0.5% of a 20 s window under a square load: the reference's error, not the exporter's). So each check reads
every GPU's counter back to back until the value changes and dates the new value between the last read that
returned the old one and the first that returned the new one (the half-gap is its dating uncertainty, reported);
a counter that changes on every read (continuous) is read once, dated at the read's midpoint. Fake GPUs
(--fake-counter-step, default 0.1 s: the H200's) step the same way.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import threading
import time
from dataclasses import dataclass
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


FAKE_LOADS = ("constant", "square")


def fake_gpus(n: int, load: str = "constant", counter_step_s: float = 0.0) -> list[Any]:
    """N free-running FakeGpus: at 300 W ("constant") or 100 W / 700 W for 2 s each ("square", high first: the
    2 s on / 2 s off matmuls of benchmarks/gpu/exporter_h200.sh), their counters stepping every `counter_step_s`
    (0: continuous), each GPU's steps at a different phase."""
    from tests.exporter.fake_nvml import FakeGpu, SquareWave

    profile = SquareWave(low_mw=100_000, high_mw=700_000, period_s=4.0) if load == "square" else None
    return [FakeGpu(uuid=f"GPU-fake-{i}", power_mw=300_000, live=True, profile=profile,
                    counter_step_s=counter_step_s, counter_phase_s=counter_step_s * i / n) for i in range(n)]


def fake_counter(gpus: Sequence[Any]) -> Counter:
    """What each fake GPU's energy counter reports now (stepped as the fake steps it), read straight from the
    fake at no modelled cost."""
    return lambda index: gpus[index].counter_mj(time.time()) / 1000.0


def fake_backend(n: int, cadence: ReadCadence, costs: str | None, load: str = "constant",
                 counter_step_s: float = 0.0) -> tuple[Backend, Counter]:
    """N free-running FakeNvml GPUs (`fake_gpus`), each call costing what it costs on the named GPU (or nothing),
    and their energy counters (`fake_counter`)."""
    from llm_dvfs.exporter.backends.nvml import NvmlBackend
    from tests.exporter.fake_nvml import COST_PRESETS, FakeNvml

    gpus = fake_gpus(n, load, counter_step_s)
    backend = NvmlBackend(nvml=FakeNvml(gpus, costs=COST_PRESETS[costs] if costs else None),
                          energy_interval=cadence.energy_interval, buffer_interval=cadence.buffer_interval,
                          slow_interval=cadence.slow_interval)
    return backend, fake_counter(gpus)


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


@dataclass(frozen=True)
class DatedRead:
    """One counter value and the Unix time it is dated at; `uncertainty` is half the interval that time lies in
    (None: no step seen before giving up, the value dated at its read's midpoint and possibly stale)."""

    at: float
    value: float
    uncertainty: float | None


class EnergyCheck:
    """Reads every GPU's counter every `every` seconds in a thread of its own, so that those reads (milliseconds of
    busy-waiting each on a real GPU, eight GPUs in a row) delay no tick and their CPU time (`cpu_s`) can be kept
    out of the exporter's. Each value is dated at the counter's step (`read_dated`) and paired with the exporter's
    energy at that time, interpolated between that device's reads in the ticks around it."""

    def __init__(self, counter: Counter, every: float, give_up_s: float = 0.3, pause_s: float = 0.0005) -> None:
        """`give_up_s`: how long to wait for a step before dating the last read at its midpoint; `pause_s`: a sleep
        between reads (it lets other threads run and widens the dating interval by as much)."""
        self._counter, self._every = counter, every
        self._give_up_s, self._pause_s = give_up_s, pause_s
        self._snapshots: list[Snapshot] = []  # every tick from the first: the first read needs a tick before it
        self.rounds: list[dict[int, DatedRead]] = []  # per round: {gpu: its dated read}
        self.continuous: dict[int, bool] = {}  # gpu -> its counter changes on every read (found on its first read)
        self.fallbacks = 0  # reads that saw no step within give_up_s
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
            started, cpu0 = time.monotonic(), time.thread_time()
            self.rounds.append({index: self.read_dated(index) for index in indices})
            self.cpu_s += time.thread_time() - cpu0
            if self._stop.wait(max(0.0, started + self._every - time.monotonic())):
                return

    def read_dated(self, index: int) -> DatedRead:
        """GPU `index`'s counter dated at its step: read back to back until the value changes, and date the new
        value at the middle of the interval from the end of the last read of the old value to the end of the first
        read of the new one. A counter found continuous (it changed again on the very next read) is read once."""
        if self.continuous.get(index):
            t0 = time.time()
            value = self._counter(index)
            t1 = time.time()
            return DatedRead((t0 + t1) / 2, value, (t1 - t0) / 2)
        old, old_end = self._counter(index), time.time()
        give_up = old_end + self._give_up_s
        while True:
            self._pause()
            t0 = time.time()
            value = self._counter(index)
            end = time.time()
            if value != old:
                break
            if end > give_up:
                self.fallbacks += 1
                return DatedRead((t0 + end) / 2, value, None)
            old_end = end
        if index not in self.continuous:
            self._pause()
            self.continuous[index] = self._counter(index) != value
        return DatedRead((old_end + end) / 2, value, (end - old_end) / 2)

    def _pause(self) -> None:
        if self._pause_s:
            time.sleep(self._pause_s)

    def stop_reading(self) -> None:
        """No more counter reads (the ticks after the last one are still collected, to interpolate it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def uncertainties(self) -> list[float]:
        """The dating uncertainty of every read dated at a step or continuous read (seconds)."""
        return [r.uncertainty for reads in self.rounds for r in reads.values() if r.uncertainty is not None]

    def points(self) -> list[tuple[float, dict[int, tuple[float, float]]]]:
        """(time of the round, {gpu: (exported J, counter J)}) for every round with ticks on both sides."""
        out = []
        for reads in self.rounds:
            pairs = {}
            for gpu, read in reads.items():
                around = _ticks_around(self._snapshots, gpu, read.at)
                if around is not None:
                    pairs[gpu] = (_energy_at(read.at, *around), read.value)
            if pairs:
                out.append((min(read.at for read in reads.values()), pairs))
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


def _histogram_counts(store: Store) -> dict[int, int]:
    return {d.info.index: d.power_histogram.count for d in store.snapshot().devices}


def measure(backend: Backend, interval: float, duration: float, scrapes: int, counter: Counter | None = None,
            check_every: float = 5.0) -> dict:
    sys.setswitchinterval(0.001)  # as `llm-dvfs exporter` does
    store = Store(backend.devices())
    sampler = Sampler(backend, store, interval=interval)
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
        ticks0 = len(sampler.tick_durations())
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
        durations = sampler.tick_durations()[ticks0:]
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
        uncertainties = check.uncertainties()
        energy["energy_reference"] = "counter, step-dated"
        energy["energy_check_dating_uncertainty_ms_median"] = percentile_ms(uncertainties, 50)
        energy["energy_check_dating_uncertainty_ms_max"] = max(uncertainties) * ms if uncertainties else float("nan")
        energy["energy_check_fallbacks"] = check.fallbacks
        energy["energy_check_continuous_counters"] = sum(check.continuous.values())
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
    p.add_argument("--fake-load", choices=FAKE_LOADS, default="constant",
                   help="fake GPUs' power: constant 300 W, or square: 100 W / 700 W for 2 s each (default constant)")
    p.add_argument("--fake-counter-step", type=float, default=0.1, metavar="SECONDS",
                   help="fake GPUs' energy counter changes every SECONDS (default 0.1, the H200's; 0 = continuous)")
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
    if args.fake_counter_step < 0:
        p.error("--fake-counter-step must be 0 or more seconds")
    if args.summarize:
        summarize(args.summarize)
        return 0
    try:
        cadence = ReadCadence.for_tick(args.interval, args.energy_interval, args.buffer_interval)
        if args.fake_devices:
            backend, counter = fake_backend(args.fake_devices, cadence, args.fake_costs, args.fake_load,
                                            args.fake_counter_step)
        else:
            backend = create_backend(args.backend, cadence=cadence)
            counter = nvml_counter() if args.backend == "nvml" else None
    except BackendUnavailableError as exc:
        print(f"exporter_bench: {exc}", file=sys.stderr)
        return 2
    label = f"fake-nvml x{args.fake_devices}" if args.fake_devices else args.backend
    fake = bool(args.fake_devices)
    result = {"label": args.label, "backend": label, "fake_costs": args.fake_costs or "none",
              "fake_load": args.fake_load if fake else "none",
              "fake_counter_step_s": args.fake_counter_step if fake else None,
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
