"""Does the NVIDIA driver serialize NVML reads across GPUs? The per-call cost of each read the exporter makes, with
1, 2, 4 and 8 devices read at the same moment (issue 18; read-only).

For each call (the energy counter, the power-sample buffer, the POWER_INSTANT field, the SM clock, utilization)
and each device count N: N threads, one per device (GPUs 0..N-1), meet at a barrier before every repetition, then
each makes the call once, timed (wall and thread CPU time). Per call and N it reports the median and p99 wall and
CPU time per call, the median and p99 of each round's span (the first start to the last end) and the start skew
the barrier leaves. A driver that runs the reads side by side keeps the span near one call's time; one that
serializes them (a lock around the energy counter's busy-wait, say) makes it grow to about N calls' time, and the
median per-call wall time to about (N + 1) / 2 calls'. `overlap` names which, where one call outlasts the start
skew ten times over (else "undetermined": a 2 µs getter says nothing either way).

    python benchmarks/nvml_concurrency.py --out concurrency.json --repetitions 300 --label idle
    python benchmarks/nvml_concurrency.py --out fake.json --fake-devices 8     # FakeNvml at the NVML boundary
    python benchmarks/nvml_concurrency.py --summarize DIR                      # DIR/concurrency-summary.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from llm_dvfs.common.atomic_file import atomic_write_text  # noqa: E402
from llm_dvfs.common.percentile import percentile  # noqa: E402

BUFFER_WINDOW_S = 2.0  # the sample-buffer read asks for the last 2 s, as the exporter's drain at its default does
CALLS: dict[str, Callable[[Any, Any], Any]] = {
    "energy_counter": lambda nvml, h: nvml.nvmlDeviceGetTotalEnergyConsumption(h),
    "power_sample_buffer": lambda nvml, h: nvml.nvmlDeviceGetSamples(
        h, nvml.NVML_TOTAL_POWER_SAMPLES, int((time.time() - BUFFER_WINDOW_S) * 1e6)),
    "power_instant_field": lambda nvml, h: nvml.nvmlDeviceGetFieldValues(h, [nvml.NVML_FI_DEV_POWER_INSTANT]),
    "sm_clock": lambda nvml, h: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM),
    "utilization": lambda nvml, h: nvml.nvmlDeviceGetUtilizationRates(h),
}
SKEW_MARGIN = 10.0  # one call must last this many times the start skew for `overlap` to say anything


def _ms(values: Sequence[float], q: float) -> float:
    return 1000.0 * (percentile(values, q) or 0.0)


def concurrent_rounds(nvml: Any, handles: Sequence[Any], call: Callable[[Any, Any], Any],
                      repetitions: int) -> dict[str, Any]:
    """Every device's call at once, `repetitions` times: per-call wall and CPU seconds, each round's span and skew,
    and how many calls raised an NVML error."""
    n = len(handles)
    barrier = threading.Barrier(n)
    starts = [[0.0] * n for _ in range(repetitions)]
    ends = [[0.0] * n for _ in range(repetitions)]
    cpu: list[list[float]] = [[] for _ in range(n)]
    errors = [0] * n

    def worker(slot: int) -> None:
        for rep in range(repetitions):
            barrier.wait()
            c0, t0 = time.thread_time(), time.perf_counter()
            try:
                call(nvml, handles[slot])
            except nvml.NVMLError:  # e.g. NOT_FOUND from an empty sample buffer: the call's time still counts
                errors[slot] += 1
            starts[rep][slot], ends[rep][slot] = t0, time.perf_counter()
            cpu[slot].append(time.thread_time() - c0)

    threads = [threading.Thread(target=worker, args=(slot,), name=f"nvml-{slot}") for slot in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"wall": [e - s for rs, re in zip(starts, ends) for s, e in zip(rs, re)],
            "cpu": [c for per_thread in cpu for c in per_thread],
            "span": [max(re) - min(rs) for rs, re in zip(starts, ends)],
            "skew": [max(rs) - min(rs) for rs in starts],
            "errors": sum(errors)}


def overlap(n: int, single_wall_s: float, span_s: float, skew_s: float) -> str:
    """What N concurrent calls' median round span says, against one call alone (median wall `single_wall_s`)."""
    if n < 2 or single_wall_s < SKEW_MARGIN * skew_s:
        return "undetermined"
    if span_s >= 0.75 * n * single_wall_s:
        return "serialized"
    if span_s <= 1.5 * single_wall_s:
        return "concurrent"
    return "partial"


def measure(nvml: Any, counts: Sequence[int], repetitions: int,
            calls: Sequence[str] = tuple(CALLS)) -> dict[str, Any]:
    """Every call at every device count (counts above the number of GPUs are left out)."""
    available = nvml.nvmlDeviceGetCount()
    handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(available)]
    counts = [n for n in counts if 1 <= n <= available]
    results: dict[str, Any] = {}
    for name in calls:
        CALLS[name](nvml, handles[0])  # first call out of the figures (lazy driver set-up)
        rows, single = [], None
        for n in counts:
            got = concurrent_rounds(nvml, handles[:n], CALLS[name], repetitions)
            wall, span, skew = (statistics.median(got[k]) for k in ("wall", "span", "skew"))
            single = wall if single is None and n == 1 else single
            rows.append({"devices": n, "repetitions": repetitions, "errors": got["errors"],
                         "wall_ms_median": 1000 * wall, "wall_ms_p99": _ms(got["wall"], 99),
                         "cpu_ms_median": 1000 * statistics.median(got["cpu"]), "cpu_ms_p99": _ms(got["cpu"], 99),
                         "round_span_ms_median": 1000 * span, "round_span_ms_p99": _ms(got["span"], 99),
                         "start_skew_ms_median": 1000 * skew,
                         "wall_median_vs_one_device": wall / single if single else None,
                         "overlap": overlap(n, single, span, skew) if single else "undetermined"})
        results[name] = rows
    return {"devices_available": available, "counts": counts, "calls": results}


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """Per call, at the largest device count: the median wall per call against one device's, and the verdict."""
    out = {}
    for name, rows in result["calls"].items():
        first, last = rows[0], rows[-1]
        out[name] = {"devices": last["devices"], "wall_ms_median_1": first["wall_ms_median"],
                     "wall_ms_median_n": last["wall_ms_median"], "wall_ms_p99_n": last["wall_ms_p99"],
                     "cpu_ms_median_n": last["cpu_ms_median"], "round_span_ms_median_n": last["round_span_ms_median"],
                     "wall_median_vs_one_device": last["wall_median_vs_one_device"], "overlap": last["overlap"]}
    return out


def summarize(directory: Path) -> dict[str, Any]:
    """Every result JSON's summary in `directory`, by label, written to its concurrency-summary.json."""
    brief = {}
    for path in sorted(directory.glob("*.json")):
        if path.name != "concurrency-summary.json":
            doc = json.loads(path.read_text())
            brief[doc.get("label") or path.stem] = {"driver": doc.get("driver"), **doc["summary"]}
    atomic_write_text(directory / "concurrency-summary.json", json.dumps(brief, indent=2))
    return brief


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", type=Path, help="write the results (JSON) here")
    group.add_argument("--summarize", type=Path, metavar="DIR", help="only gather the summaries of DIR's results")
    p.add_argument("--fake-devices", type=int, metavar="N", help="N FakeNvml GPUs at the NVML call boundary")
    p.add_argument("--repetitions", type=int, default=300, help="rounds per call and device count (default 300)")
    p.add_argument("--counts", default="1,2,4,8", help="device counts, comma-separated (default 1,2,4,8)")
    p.add_argument("--calls", default=",".join(CALLS), help=f"which calls (default all: {','.join(CALLS)})")
    p.add_argument("--label", default="", help="a name for this run (idle, loaded ...), copied into the results")
    args = p.parse_args(argv)
    if args.summarize:
        print(json.dumps(summarize(args.summarize), indent=2))
        return 0
    try:
        counts = [int(c) for c in args.counts.split(",")]
    except ValueError:
        p.error(f"--counts: whole numbers separated by commas, not {args.counts!r}")
    calls = args.calls.split(",")
    if unknown := [c for c in calls if c not in CALLS]:
        p.error(f"--calls: unknown {', '.join(unknown)} (known: {', '.join(CALLS)})")
    if args.repetitions < 1:
        p.error("--repetitions must be at least 1")
    if args.fake_devices is not None and args.fake_devices < 1:
        p.error("--fake-devices must be at least 1")
    if args.fake_devices:
        from tests.exporter.fake_nvml import FakeGpu, FakeNvml

        nvml: Any = FakeNvml([FakeGpu(uuid=f"GPU-fake-{i}", power_mw=300_000, live=True)
                              for i in range(args.fake_devices)])
    else:
        import pynvml as nvml
    nvml.nvmlInit()
    try:
        result = {"label": args.label, "driver": str(nvml.nvmlSystemGetDriverVersion()),
                  "backend": f"fake-nvml x{args.fake_devices}" if args.fake_devices else "nvml",
                  **measure(nvml, counts, args.repetitions, calls)}
    finally:
        nvml.nvmlShutdown()
    result["summary"] = summary(result)
    atomic_write_text(args.out, json.dumps(result, indent=2))
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
