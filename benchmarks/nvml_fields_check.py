"""On a real NVIDIA GPU, read-only: do NVML's field values equal the getters the exporter used before, and what
does each call cost? (issue 16: the exporter now reads instant and 1 s average power in one
nvmlDeviceGetFieldValues call per tick; nobody without a GPU can confirm the fields match the getters.)

Every --interval for --seconds, per GPU: each field read alone and its getter right after (the 1 s average power,
the power limit, the energy counter), then the exporter's own call (instant + average in one call), each call
timed (wall and CPU). Writes OUT/nvml-fields.json: per pair the field's nvmlReturn, the differences against the
getter, and per call the median and p99 time. It never changes a setting.

    python benchmarks/nvml_fields_check.py --out-dir OUT_DIR --seconds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from llm_dvfs.common.atomic_file import atomic_write_text  # noqa: E402
from llm_dvfs.common.percentile import percentile  # noqa: E402
from llm_dvfs.exporter.backends.nvml import nvml_value  # noqa: E402

# name (with NVML's unit) -> (field id constant, getter): each field against the getter it could replace (the
# current limit against the enforced one: they differ only while another limit, e.g. a thermal one, is enforced)
PAIRS: dict[str, tuple[str, str]] = {
    "power_average_mw": ("NVML_FI_DEV_POWER_AVERAGE", "nvmlDeviceGetPowerUsage"),
    "power_limit_mw": ("NVML_FI_DEV_POWER_CURRENT_LIMIT", "nvmlDeviceGetEnforcedPowerLimit"),
    "energy_mj": ("NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "nvmlDeviceGetTotalEnergyConsumption"),
}


def _timed(times: dict[str, list[float]], name: str, call: Callable[[], Any]) -> Any:
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        return call()
    finally:
        times.setdefault(f"{name}_wall", []).append(time.perf_counter() - wall)
        times.setdefault(f"{name}_cpu", []).append(time.thread_time() - cpu)


def _field(nvml: Any, handle: Any, field_id: int) -> tuple[int, float | None]:
    value = nvml.nvmlDeviceGetFieldValues(handle, [field_id])[0]
    ok = value.nvmlReturn == nvml.NVML_SUCCESS
    return value.nvmlReturn, nvml_value(value.valueType, value.value) if ok else None


def compare(nvml: Any, index: int, seconds: float, interval: float) -> dict:
    """One GPU's fields against its getters, and the time of every call, over `seconds`."""
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    times: dict[str, list[float]] = {}
    rows: dict[str, list[tuple[float, float, float]]] = {name: [] for name in PAIRS}  # (time, field, getter)
    returns: dict[str, int] = {}
    batch = [nvml.NVML_FI_DEV_POWER_INSTANT, nvml.NVML_FI_DEV_POWER_AVERAGE]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for name, (field_const, getter) in PAIRS.items():
            code, value = _timed(times, f"field_{name}", lambda: _field(nvml, handle, getattr(nvml, field_const)))
            returns[name] = code
            try:
                got = _timed(times, f"getter_{name}", lambda: getattr(nvml, getter)(handle))
            except nvml.NVMLError:
                got = None
            if value is not None and got is not None:
                rows[name].append((time.time(), value, float(got)))
        _timed(times, "exporter_batch_instant_average", lambda: nvml.nvmlDeviceGetFieldValues(handle, batch))
        _timed(times, "field_instant_only", lambda: nvml.nvmlDeviceGetFieldValues(handle, batch[:1]))
        time.sleep(interval)
    pairs = {}
    for name, seen in rows.items():
        diffs = [f - g for _, f, g in seen]
        pairs[name] = {"field_return": returns.get(name), "reads": len(seen),
                       "field_minus_getter_median": statistics.median(diffs) if diffs else None,
                       "field_minus_getter_max_abs": max(map(abs, diffs)) if diffs else None,
                       "getter_median": statistics.median(g for _, _, g in seen) if seen else None}
    calls_ms = {name: {"median": 1000 * statistics.median(v), "p99": 1000 * (percentile(v, 99) or 0.0)}
                for name, v in sorted(times.items())}
    return {"gpu": index, "pairs": pairs, "calls_ms": calls_ms}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--interval", type=float, default=0.1)
    args = p.parse_args(argv)
    import pynvml

    pynvml.nvmlInit()
    try:
        result = {"driver": str(pynvml.nvmlSystemGetDriverVersion()),
                  "gpus": [compare(pynvml, i, args.seconds, args.interval)
                           for i in range(pynvml.nvmlDeviceGetCount())]}
    finally:
        pynvml.nvmlShutdown()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out_dir / "nvml-fields.json", json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
