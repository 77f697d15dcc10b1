#!/usr/bin/env bash
# Issue 16 on a real GPU (written for one H200): what the exporter costs and how close its energy is to the
# hardware counter, at the new defaults and at the old read cadence (energy counter and sample buffer every 1 s;
# the one-thread-per-GPU sampler of before is gone, its real-GPU figures are in README's table), then the energy
# over 20 s / 30 s windows at several --energy-interval values, idle and under a square-wave matmul load; first,
# NVML's field values against the getters (read-only, benchmarks/nvml_fields_check.py).
#   benchmarks/gpu/exporter_h200.sh OUT_DIR        (~6 min; needs the repo on PYTHONPATH and nvidia-ml-py)
# Writes OUT_DIR/<run>.json (+ .txt) per run and OUT_DIR/summary.json. It only reads the GPUs: nothing here
# changes clocks, power limits, persistence or compute mode; the load is plain matmuls on GPU 0.
set -euo pipefail
out=${1:?usage: exporter_h200.sh OUT_DIR}
repo=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
cd "$repo"
nvidia-smi --query-gpu=index,name,uuid,driver_version,power.draw,power.limit,clocks.sm,pstate \
  --format=csv > "$out/gpus.csv" 2>&1 || true

bench() {  # bench RUN_NAME [exporter_bench flags...]
  local name=$1; shift
  python3 benchmarks/exporter_bench.py --backend nvml --label "$name" --json "$out/$name.json" "$@" \
    > "$out/$name.txt" 2>&1 || echo "$name failed: see $out/$name.txt"
}

square_load() {  # square_load SECONDS: matmuls on GPU 0, 2 s on / 2 s off
  python3 - "$1" <<'PY' &
import sys, threading, time
from benchmarks.exporter_gpu_check import torch_matmul_load
load, end = torch_matmul_load(0, 8192), time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    stop = threading.Event()
    worker = threading.Thread(target=load, args=(stop,))
    worker.start()
    time.sleep(2.0)
    stop.set()
    worker.join()
    time.sleep(2.0)
PY
}

# read-only: NVML's field values against the getters they replace, and each call's time (fields/nvml-fields.json)
python3 benchmarks/nvml_fields_check.py --out-dir "$out/fields" --seconds 5 > "$out/nvml-fields.txt" 2>&1 \
  || echo "field check failed: see $out/nvml-fields.txt"
# cost, jitter, scrape latency (and energy, idle) at the new defaults and at the old cadence
bench new-defaults --duration 60 --scrapes 500
bench old-cadence --energy-interval 1 --buffer-interval 1 --duration 60 --scrapes 500
# energy against the counter under a changing load, at each energy interval considered
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  for every in 1 5 10 30; do
    square_load 62; load=$!
    sleep 5  # CUDA up, first steps running
    bench "load-energy-every-${every}s" --energy-interval "$every" --duration 50 --scrapes 20 --energy-check-every 2
    wait "$load" || echo "square load failed"
  done
else
  echo "no torch with CUDA here: energy measured idle only" | tee "$out/no-load.txt"
fi
python3 benchmarks/exporter_bench.py --summarize "$out"
