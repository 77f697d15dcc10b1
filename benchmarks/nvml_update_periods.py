"""On a real NVIDIA GPU, read-only: how often does each value the exporter reads every tick actually change?

Reading a value every 100 ms that the driver refreshes once a second costs a driver call and Python per tick for
nothing (issue 16). This reads GPU utilization, memory utilization, the SM clock, the clock-event mask and the
instant and averaged power fields every 10 ms while a 1 s on / 1 s off matmul load runs, and reports, per value,
how many times it changed and the median and 10th-percentile time between changes. Writes OUT/update-periods.json.

    python benchmarks/nvml_update_periods.py --out-dir OUT_DIR [--gpu-id 0] [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from llm_dvfs.common.atomic_file import atomic_write_text  # noqa: E402
from llm_dvfs.common.percentile import percentile  # noqa: E402
from llm_dvfs.exporter.backends.nvml import nvml_value  # noqa: E402


def readers(nvml: Any, handle: Any) -> dict[str, Callable[[], float]]:
    def field(fid: int) -> Callable[[], float]:
        def read() -> float:
            v = nvml.nvmlDeviceGetFieldValues(handle, [fid])[0]
            return nvml_value(v.valueType, v.value)
        return read
    return {
        "utilization_gpu": lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu,
        "utilization_memory": lambda: nvml.nvmlDeviceGetUtilizationRates(handle).memory,
        "sm_clock": lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM),
        "clock_events": lambda: nvml.nvmlDeviceGetCurrentClocksEventReasons(handle),
        "power_instant_field": field(nvml.NVML_FI_DEV_POWER_INSTANT),
        "power_average_field": field(nvml.NVML_FI_DEV_POWER_AVERAGE),
    }


def changes(series: list[tuple[float, float]]) -> dict[str, float | int | None]:
    times = [t for (t, v), (_, w) in zip(series, series[1:]) if v != w]
    gaps = [b - a for a, b in zip(times, times[1:])]
    return {"reads": len(series), "changes": len(times),
            "median_s_between_changes": statistics.median(gaps) if gaps else None,
            "p10_s_between_changes": percentile(gaps, 10) if gaps else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--gpu-id", type=int, default=0)
    p.add_argument("--seconds", type=float, default=8.0)
    args = p.parse_args(argv)
    import pynvml as nvml

    from benchmarks.exporter_gpu_check import square_load

    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(args.gpu_id)
    stop = threading.Event()
    load = threading.Thread(target=square_load, args=(args.gpu_id, 1.0, 1.0, stop), daemon=True)
    load.start()
    series: dict[str, list[tuple[float, float]]] = {}
    try:
        read = readers(nvml, handle)
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            for name, call in read.items():
                series.setdefault(name, []).append((time.monotonic(), float(call())))
            time.sleep(0.01)
    finally:
        stop.set()
        load.join()
        nvml.nvmlShutdown()
    doc = {"gpu": args.gpu_id, "values": {k: changes(v) for k, v in series.items()}}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out_dir / "update-periods.json", json.dumps(doc, indent=2))
    for name, figures in doc["values"].items():
        print(name, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
