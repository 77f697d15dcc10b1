"""On a real NVIDIA GPU, read-only: when does the energy counter change, and what time does a value stand for?

The exporter anchors its energy on counter reads every --energy-interval and compares against the counter; both
are only as good as the time a counter value is dated at. The counter moves in steps (about every 100 ms on Hopper),
so a value read at a random moment can be up to one step old: at 700 W that is 70 J, 0.35% of a 20 s window. This
reads the counter back to back through nvmlDeviceGetTotalEnergyConsumption and through the
NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION field (whose struct carries a timestamp and latencyUsec), idle, under steady
matmuls and under a 1 s on / 1 s off load, and drains the driver's power-sample buffer as it goes. Everything is
written raw to OUT/counter-timing.json (analysed offline); a short
summary is printed. It never changes a setting.

    python benchmarks/nvml_counter_timing.py --out-dir OUT_DIR [--gpu-id 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from llm_dvfs.common.atomic_file import atomic_write_text  # noqa: E402
from llm_dvfs.exporter.backends.nvml import nvml_value  # noqa: E402

PHASES = (("idle", 3.0), ("steady", 5.0), ("square", 8.0))  # (load, seconds)


def _reads(nvml: Any, handle: Any, seconds: float, rows: list[list[float]], samples: list[list[float]],
           last_sample_us: list[int]) -> None:
    """Back to back: getter, then field; the sample buffer every ~0.5 s."""
    field_id = nvml.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION
    end, next_drain = time.monotonic() + seconds, 0.0
    while time.monotonic() < end:
        t0 = time.time()
        getter = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        t1 = time.time()
        value = nvml.nvmlDeviceGetFieldValues(handle, [field_id])[0]
        t2 = time.time()
        field = nvml_value(value.valueType, value.value) if value.nvmlReturn == nvml.NVML_SUCCESS else float("nan")
        rows.append([t0, t1, float(getter), t1, t2, field, float(value.timestamp), float(value.latencyUsec)])
        if time.monotonic() >= next_drain:
            next_drain = time.monotonic() + 0.5
            try:
                kind, raw = nvml.nvmlDeviceGetSamples(handle, nvml.NVML_TOTAL_POWER_SAMPLES, last_sample_us[0])
            except nvml.NVMLError:
                continue
            for s in sorted(raw, key=lambda s: s.timeStamp):
                if s.timeStamp > last_sample_us[0]:
                    last_sample_us[0] = s.timeStamp
                    samples.append([s.timeStamp / 1e6, nvml_value(kind, s.sampleValue) / 1000.0])


def _load(gpu_id: int, phase: str, seconds: float) -> threading.Thread | None:
    """Matmuls for the phase: none, all along (steady), or 1 s on / 1 s off (square)."""
    if phase == "idle":
        return None
    from benchmarks.exporter_gpu_check import square_load

    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    on, off = (1.0, 1.0) if phase == "square" else (seconds, 0.0)
    thread = threading.Thread(target=square_load, args=(gpu_id, on, off, stop), daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--gpu-id", type=int, default=0)
    args = p.parse_args(argv)
    import pynvml as nvml

    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(args.gpu_id)
    doc: dict[str, Any] = {"driver": str(nvml.nvmlSystemGetDriverVersion()), "gpu": args.gpu_id,
                           "columns": ["getter_t0", "getter_t1", "getter_mj", "field_t0", "field_t1", "field_mj",
                                       "field_timestamp_us", "field_latency_us"], "phases": {}}
    last = [int(time.time() * 1e6)]
    try:
        for phase, seconds in PHASES:
            load = _load(args.gpu_id, phase, seconds + 1.0)
            if load is not None:
                time.sleep(1.0)  # the load is running before reads start
            rows: list[list[float]] = []
            samples: list[list[float]] = []
            _reads(nvml, handle, seconds, rows, samples, last)
            if load is not None:
                load.join()
            doc["phases"][phase] = {"reads": rows, "power_samples": samples}
            steps = sum(1 for a, b in zip(rows, rows[1:]) if b[2] != a[2])
            print(f"{phase}: {len(rows)} read pairs, {steps} getter steps, {len(samples)} power samples")
    finally:
        nvml.nvmlShutdown()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out_dir / "counter-timing.json", json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
