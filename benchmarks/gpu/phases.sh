#!/usr/bin/env bash
# Prefill vs decode energy on one GPU, and whether the exporter slows serving, in three device calls
# (a vLLM start takes 2-4 min, a call at most 10):
#   phases.sh start   STAGE OUT   vLLM single on GPU 0 in its own session; meanwhile the exporter benchmark on the
#                                 GPU (benchmarks/gpu/exporter_h200.sh when present, else exporter_bench.py at
#                                 its defaults); waits until healthy
#   phases.sh prefill STAGE OUT   an idle trace, prefill-only sweeps (512 and 2048 prompt tokens, 1 output token)
#                                 and a decode sweep (16 prompt tokens, 512 output), each at concurrency 16 and 64
#   phases.sh mixed   STAGE OUT   the differential point 512/64 at 64, mixed 512/256 at 1/16/64, then decode-heavy
#                                 load (16 -> 512, 64 users) with the exporter off / on / off / on
# Each sweep's level directories are ordinary runs (samples.csv, requests.jsonl, results.json, steady.json), so
# `llm-dvfs report` computes the phase attribution and the differential fit from them afterwards. vLLM's /metrics is
# saved before and after each sweep (prefix-cache hits, token counters). Everything is packed into OUT/STEP.tgz.
# Measures the GPU as found: nothing here changes clocks, power limits or modes.
set -euo pipefail
step=$1 stage=$2 out=$3
gpu_dir=$(cd "$(dirname "$0")" && pwd)
. "$stage/final/install.sh"
. "$gpu_dir/env.sh"
cd "$repo"
work=/tmp/llm-dvfs-gpu/phases
mkdir -p "$work/$step" "$out"
w=$work/$step
model="$stage/final/models/llama-8b-shape"
host=http://127.0.0.1:8000
pack() { tar czf "$out/$step.tgz" -C "$work" "$step"; ls -la "$out"; }
trap pack EXIT
healthy() { curl -sf -o /dev/null "$host/health"; }
snapshot() { curl -sf "$host/metrics" > "$w/vllm-metrics-$1.txt" || true; }
sweep() {
  local name=$1; shift
  snapshot "$name-before"
  python3 -m llm_dvfs.cli sweep --host "$host" --model llama-8b-shape --mode single --token-ids \
    --warmup 10 --steady 20 --backend nvml --gpu-ids 0 --run-dir "$w/$name" "$@" 2>&1 \
    | tr '\r' '\n' | grep -v '^\s*$' | tail -6 || echo "sweep $name failed"
  snapshot "$name-after"
}

case $step in
start)
  nvidia-smi --query-gpu=index,name,uuid,driver_version,power.limit,clocks.max.sm,clocks.sm,pstate,persistence_mode \
    --format=csv > "$w/gpus-before.csv"
  setsid nohup python3 -m llm_dvfs.cli serve single --model "$model" --port 8000 --gpu 0 --log-dir "$w/logs" \
    -- --served-model-name llama-8b-shape --load-format dummy --skip-tokenizer-init --max-model-len 4096 \
    --max-num-seqs 128 > "$w/serve.out" 2>&1 < /dev/null &
  if [ -f benchmarks/gpu/exporter_h200.sh ]; then
    bash benchmarks/gpu/exporter_h200.sh "$w/exporter-bench" 2>&1 | tail -30 || echo "exporter bench failed"
  else
    python3 benchmarks/exporter_bench.py --backend nvml --duration 30 --scrapes 500 \
      --json "$w/exporter-bench.json" 2>&1 | tail -15 || echo "exporter bench failed"
  fi
  for _ in $(seq 420); do healthy && break; sleep 1; done
  healthy && echo "SERVING" || { echo "NOT HEALTHY"; tail -30 "$w/serve.out"; }
  ;;
prefill)
  healthy || { echo "no server on :8000 (machine restarted?)"; exit 3; }
  python3 -m llm_dvfs.exporter --backend nvml --gpu-ids 0 --interval 0.1 --no-http --duration 15 \
    --output "$w/idle.csv" > "$w/idle.log" 2>&1 || echo "idle trace failed"
  sweep prefill-512 --input-len 512 --output-len 1 --concurrency 16,64
  sweep prefill-2048 --input-len 2048 --output-len 1 --concurrency 16,64
  sweep decode-16-512 --input-len 16 --output-len 512 --concurrency 16,64
  ;;
mixed)
  healthy || { echo "no server on :8000 (machine restarted?)"; exit 3; }
  sweep diff-512-64 --input-len 512 --output-len 64 --concurrency 64
  sweep mixed-512-256 --input-len 512 --output-len 256 --concurrency 1,16,64
  # Does the exporter at its defaults slow serving? Decode-heavy load with it off / on / off / on.
  for k in 1-off 2-on 3-off 4-on; do
    exp=""
    if [ "${k#*-}" = on ]; then
      python3 -m llm_dvfs.exporter --backend nvml --listen-address 127.0.0.1 --port 9945 \
        > "$w/onoff-$k-exporter.log" 2>&1 &
      exp=$!
      sleep 3
      # a scraper, as Prometheus would be
      ( while kill -0 $exp 2>/dev/null; do curl -sf -o /dev/null http://127.0.0.1:9945/metrics; sleep 1; done ) &
    fi
    python3 -m locust -f loadgen/single.py --headless --only-summary -u 64 -r 64 -t 30s --stop-timeout 30 \
      --host "$host" --model llama-8b-shape --input-len 16 --output-len 512 --token-ids --metrics-port 0 \
      --results-dir "$w/onoff-$k" > "$w/onoff-$k.log" 2>&1 || echo "locust $k failed"
    [ -n "$exp" ] && { kill -INT $exp; wait $exp || true; }
    python3 - "$w/onoff-$k/results.json" <<'EOF' || true
import json, sys
r = json.load(open(sys.argv[1]))
print(sys.argv[1].split("/")[-2], {k: r.get(k) for k in ("output_throughput", "median_itl_ms", "completed")})
EOF
  done
  nvidia-smi --query-gpu=index,clocks.sm,clocks.mem,power.draw,temperature.gpu,pstate --format=csv \
    > "$w/gpus-after.csv"
  ;;
*) echo "usage: phases.sh start|prefill|mixed STAGE OUT" >&2; exit 2 ;;
esac
