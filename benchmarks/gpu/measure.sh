#!/usr/bin/env bash
# A whole real-GPU measurement in two device calls (a vLLM start takes 2-4 min, a call at most 10):
#   measure.sh start  single|disagg STAGE OUT   exporter checks on the idle GPU(s), then vLLM (and proxy) started
#                                                in their own session so they outlive the call; waits until healthy
#   measure.sh sweep  single|disagg STAGE OUT   the sweep at concurrency 1,16,64 (512 in, 256 out), a continuous
#                                                exporter trace, vLLM's own metrics before/after, all packed in OUT
# SKIP_CHECKS=1 skips the idle-GPU exporter checks (when they already ran on this machine). A start first stops
# any server an earlier start left running, so single and disagg can follow each other on one machine.
# STAGE is the staged vLLM folder (.gpu for 0.24.0, .gpu23 for 0.23.0; see ../../shared/gpu/README.md).
# Measures the GPUs as found: nothing here changes clocks, power limits or modes.
set -euo pipefail
phase=$1 mode=$2 stage=$3 out=$4
gpu_dir=$(cd "$(dirname "$0")" && pwd)
. "$stage/final/install.sh"   # (it sets its own variables, e.g. `here`)
. "$gpu_dir/env.sh"
cd "$repo"
work=/tmp/llm-dvfs-gpu/$mode
mkdir -p "$work" "$out"
model="$repo/$stage/final/models/llama-8b-shape"
vllm_args=(--served-model-name llama-8b-shape --load-format dummy --skip-tokenizer-init --max-model-len 2048 --max-num-seqs 128)
gpus=0; [ "$mode" = disagg ] && gpus=0,1
pack() { tar czf "$out/$mode-$phase.tgz" -C "$work" . ; ls -la "$out"; }
trap pack EXIT

healthy() { curl -sf -o /dev/null "http://127.0.0.1:8000/health"; }

case $phase in
start)
  pkill -TERM -f "llm_dvfs.cli serve" && sleep 15 || true
  nvidia-smi --query-gpu=index,name,uuid,driver_version,power.limit,clocks.max.sm,clocks.sm,pstate,persistence_mode \
    --format=csv > "$work/gpus-before.csv"
  if [ "${SKIP_CHECKS:-0}" != 1 ]; then
    for g in ${gpus//,/ }; do
      python3 benchmarks/exporter_gpu_check.py --gpu-id "$g" --out-dir "$work/gpu-check-$g" || echo "gpu check $g failed"
    done
  fi
  if [ "$mode" = single ]; then
    setsid nohup python3 -m llm_dvfs.cli serve single --model "$model" --port 8000 --gpu 0 --log-dir "$work/logs" \
      -- "${vllm_args[@]}" > "$work/serve.out" 2>&1 < /dev/null &
  else
    setsid nohup python3 -m llm_dvfs.cli serve disagg --connector p2p-nccl --model "$model" --log-dir "$work/logs" \
      -- "${vllm_args[@]}" > "$work/serve.out" 2>&1 < /dev/null &
  fi
  if [ "${SKIP_CHECKS:-0}" != 1 ]; then
    python3 benchmarks/exporter_bench.py --backend nvml --duration 30 --scrapes 500 \
      --json "$work/exporter-bench.json" || echo "exporter bench failed"
  fi
  for _ in $(seq 400); do healthy && break; sleep 1; done
  healthy && echo "SERVING" || { echo "NOT HEALTHY"; tail -30 "$work/serve.out"; }
  ;;
sweep)
  healthy || { echo "no server on :8000 (machine restarted?)"; exit 3; }
  snapshot() { for p in 8000 8100 8200; do curl -sf "http://127.0.0.1:$p/metrics" > "$work/metrics-$p-$1.txt" || true; done; }
  snapshot before
  python -m llm_dvfs.exporter --backend nvml --gpu-ids "$gpus" --interval 0.1 --no-http --output "$work/trace.csv" \
    --json "$work/trace.json" > "$work/trace.log" 2>&1 &
  trace=$!
  python3 -m llm_dvfs.cli sweep --host http://127.0.0.1:8000 --concurrency 1,16,64 --input-len 512 \
    --output-len 256 --token-ids --warmup 10 --steady 20 --backend nvml --gpu-ids "$gpus" \
    --mode "$([ "$mode" = single ] && echo single || echo disaggregated)" --run-dir "$work/run" 2>&1 \
    | tr '\r' '\n' | grep -v '^\s*$' | tail -40
  kill -INT $trace; wait $trace || true
  snapshot after
  nvidia-smi --query-gpu=index,clocks.sm,clocks.mem,power.draw,temperature.gpu,pstate --format=csv \
    > "$work/gpus-after.csv"
  cat "$work/run/sweep.json" | head -c 3000
  ;;
*) echo "usage: measure.sh start|sweep single|disagg STAGE OUT" >&2; exit 2 ;;
esac
