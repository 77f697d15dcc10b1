#!/usr/bin/env bash
# Issue 18 on an 8-GPU host (nvidia-h200-x8): the exporter's cost and timing reading 8 real GPUs, idle and while
# matmuls load some of them, and whether the driver serializes NVML reads across GPUs.
#   bash benchmarks/gpu/exporter_8gpu.sh OUT_DIR      (~6 min; python3 with nvidia-ml-py, torch for the load)
# In order: the GPUs (gpus.csv, topo.txt); NVML's fields against their getters (nvml_fields_check.py); each NVML
# read with 1/2/4/8 devices at once (nvml_concurrency.py), idle; exporter_bench.py at the defaults and at README's
# configuration for the tightest long windows (--energy-interval 1), idle; then with matmuls on $LOAD_GPUS
# (default 0-3) while all GPUs are read: nvml_concurrency.py and both exporter_bench.py runs again.
# OUT_DIR gets 4 files: exporter-8gpu.tgz (every result: bench/<run>.json + .txt, concurrency-<idle|load>.json,
# fields/nvml-fields.json, gpus.csv, topo.txt, load.txt), summary.json (exporter_bench's rows), concurrency-summary.json
# and gpus.csv. It only reads the GPUs: nvidia-smi queries and NVML getters; nothing here changes clocks, power
# limits, persistence or compute mode. FAKE_GPUS=N runs it all on N FakeNvml GPUs, without the load (the tests).
set -euo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1  # NVLink multicast stays off
out=${1:?usage: exporter_8gpu.sh OUT_DIR}
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 CUDA_DEVICE_ORDER=PCI_BUS_ID
LOAD_GPUS=${LOAD_GPUS:-0,1,2,3}
DURATION=${DURATION:-50}          # seconds of sampling per exporter_bench run: 30 s windows need ≥ 35
SCRAPES=${SCRAPES:-300}
CHECK_EVERY=${CHECK_EVERY:-2.5}   # seconds between the benchmark's own counter reads
REPETITIONS=${REPETITIONS:-300}   # rounds per NVML call and device count
RECOMMENDED=(--energy-interval 1) # README: "for the tightest long windows, --energy-interval 1"
if [ -n "${FAKE_GPUS:-}" ]; then
  backend=(--fake-devices "$FAKE_GPUS" --fake-costs h200); nvml=(--fake-devices "$FAKE_GPUS")
else
  backend=(--backend nvml); nvml=()
fi
mkdir -p "$out"
work=$(mktemp -d)
mkdir -p "$work/bench"
cd "$repo"
load_pid=""

pack() {  # whatever has been measured goes out, also after a failure
  if [ -n "$load_pid" ]; then kill "$load_pid" 2>/dev/null || true; wait "$load_pid" 2>/dev/null || true; fi
  python3 benchmarks/exporter_bench.py --summarize "$work/bench" > "$work/summary.txt" 2>&1 || true
  python3 benchmarks/nvml_concurrency.py --summarize "$work" > /dev/null 2>&1 || true
  tar czf "$out/exporter-8gpu.tgz" -C "$work" .
  for f in bench/summary.json concurrency-summary.json gpus.csv; do
    if [ -f "$work/$f" ]; then cp "$work/$f" "$out/"; fi
  done
  rm -rf "$work"
}
trap pack EXIT
trap 'exit 143' TERM INT

bench() {  # bench RUN_NAME [exporter_bench flags...]
  local name=$1; shift
  timeout 120 python3 benchmarks/exporter_bench.py "${backend[@]}" --label "$name" --json "$work/bench/$name.json" \
    --duration "$DURATION" --scrapes "$SCRAPES" --energy-check-every "$CHECK_EVERY" "$@" \
    > "$work/bench/$name.txt" 2>&1 || echo "$name failed: see bench/$name.txt"
}

concurrency() {  # concurrency LABEL
  timeout 120 python3 benchmarks/nvml_concurrency.py "${nvml[@]}" --label "$1" --repetitions "$REPETITIONS" \
    --out "$work/concurrency-$1.json" > "$work/concurrency-$1.txt" 2>&1 || echo "concurrency $1 failed"
}

if [ -z "${FAKE_GPUS:-}" ]; then
  nvidia-smi --query-gpu=index,name,uuid,pci.bus_id,driver_version,power.draw,power.limit,clocks.sm,pstate \
    --format=csv > "$work/gpus.csv" 2>&1 || true
  nvidia-smi topo -m > "$work/topo.txt" 2>&1 || true
  timeout 90 python3 benchmarks/nvml_fields_check.py --out-dir "$work/fields" --seconds 2 \
    > "$work/nvml-fields.txt" 2>&1 || echo "field check failed: see nvml-fields.txt"
fi
echo "$(date -u +%T) idle"
concurrency idle
bench idle-defaults
bench idle-energy-every-1s "${RECOMMENDED[@]}"

if [ -z "${FAKE_GPUS:-}" ] && python3 -c "import torch; assert torch.cuda.device_count() > 1" 2>/dev/null; then
  echo "$(date -u +%T) load on GPUs $LOAD_GPUS"
  python3 - "$LOAD_GPUS" "$((2 * DURATION + 150))" "$work/load-ready" > "$work/load.txt" 2>&1 <<'PY' &
import sys, threading, time
from pathlib import Path
from benchmarks.exporter_gpu_check import torch_matmul_load
gpus, seconds, ready = [int(g) for g in sys.argv[1].split(",")], float(sys.argv[2]), Path(sys.argv[3])
loads = [torch_matmul_load(gpu, 8192) for gpu in gpus]  # CUDA up on every loaded GPU before the runs
stop = threading.Event()
workers = [threading.Thread(target=load, args=(stop,), daemon=True) for load in loads]
for worker in workers:
    worker.start()
ready.write_text(f"{time.time()}\n")
print(f"matmuls on GPUs {gpus} for at most {seconds:g} s", flush=True)
stop.wait(seconds)
stop.set()
for worker in workers:
    worker.join()
PY
  load_pid=$!
  for _ in $(seq 90); do  # CUDA up on 4 GPUs: seconds; a load that died gives up at once
    if [ -f "$work/load-ready" ] || ! kill -0 "$load_pid" 2>/dev/null; then break; fi
    sleep 1
  done
  if [ -f "$work/load-ready" ]; then
    sleep 3  # the first matmuls running on every loaded GPU
    concurrency load
    bench "load${LOAD_GPUS//,/}-defaults"
    bench "load${LOAD_GPUS//,/}-energy-every-1s" "${RECOMMENDED[@]}"
  else
    echo "the load never started: see load.txt"
  fi
else
  echo "no load: fake GPUs, or no torch with CUDA here" | tee "$work/load.txt"
fi
echo "$(date -u +%T) done"
