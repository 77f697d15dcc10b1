#!/usr/bin/env bash
# Issue 16 on a real GPU (written for one H200): when the energy counter's value changes (counter timing), what the
# exporter costs and how close its energy is to the step-dated counter at the defaults and with the counter read
# every 30 s, idle and under a 2 s on / 2 s off matmul load; and 8 fake GPUs with H200 call costs on this host's CPU.
# (NVML's fields against the getters: benchmarks/nvml_fields_check.py, run once, in data/runs/exporter-bench-h200.)
#   benchmarks/gpu/exporter_h200.sh OUT_DIR        (~7 min; needs the repo on PYTHONPATH and nvidia-ml-py)
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
  python3 -c "import sys, threading
from benchmarks.exporter_gpu_check import square_load
stop = threading.Event(); threading.Timer(float(sys.argv[1]), stop.set).start(); square_load(0, 2.0, 2.0, stop)" "$1" &
}

# read-only: when the energy counter's value changes and what a read of it stands for (counter-timing.json)
python3 benchmarks/nvml_counter_timing.py --out-dir "$out/timing" > "$out/counter-timing.txt" 2>&1 \
  || echo "counter timing failed: see $out/counter-timing.txt"
# 8 fake GPUs with the H200's call costs, on this host's CPU (the issue's 8-GPU target without 8 GPUs)
for every in 10 30; do
  python3 benchmarks/exporter_bench.py --fake-devices 8 --fake-costs h200 --label "fake8-h200-energy-every-${every}s" \
    --energy-interval "$every" --duration 40 --scrapes 300 --json "$out/fake8-h200-energy-every-${every}s.json" \
    > "$out/fake8-h200-energy-every-${every}s.txt" 2>&1 || echo "fake8 $every failed"
done
# cost, jitter, scrape latency (and energy, idle) at the defaults and with the counter read every 30 s
bench new-defaults --duration 40 --scrapes 300
bench idle-energy-every-30s --energy-interval 30 --duration 40 --scrapes 100
# energy against the (step-dated) counter under a changing load, at each energy interval considered
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  for every in 10 30; do
    square_load 60; load=$!
    sleep 5  # CUDA up, first steps running
    bench "load-energy-every-${every}s" --energy-interval "$every" --duration 48 --scrapes 20 --energy-check-every 2
    wait "$load" || echo "square load failed"
  done
else
  echo "no torch with CUDA here: energy measured idle only" | tee "$out/no-load.txt"
fi
python3 benchmarks/exporter_bench.py --summarize "$out"
