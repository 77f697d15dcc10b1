#!/usr/bin/env bash
# Disaggregated vLLM with NixlConnector against one vLLM on GPU 0 of the same 2-GPU host (issue 17), in four
# device calls (a vLLM start takes 2-4 min, a call at most 10):
#   disagg_nixl.sh start single|disagg STAGE OUT   stops what an earlier start left running, installs NIXL (disagg),
#                                                   starts `llm-dvfs serve single` on GPU 0 or `serve disagg
#                                                   --connector nixl` (prefill GPU 0 :8100, decode GPU 1 :8200,
#                                                   proxy :8000) in its own session; waits until healthy
#   disagg_nixl.sh sweep single|disagg STAGE OUT   the sweep: 512/256 and 2048/128 at concurrency 1,16,64, token-id
#                                                   prompts; every instance's /metrics saved before, halfway through
#                                                   and after each level (level-*/metrics/); a whole-run trace; the
#                                                   NIXL/UCX transport in use (transport.txt); packed in OUT
# STAGE is the vLLM 0.24.0 stage (.gpu; ../../shared/gpu/README.md); NIXL's wheels come from `stage_nixl.sh`, their
# parts copied into /tmp/stage like the stage's own (README.md here, "NixlConnector").
# Measures the GPUs as found: nothing here changes clocks, power limits or modes; NVLink multicast stays off.
set -euo pipefail
phase=$1 mode=$2 stage=$3 out=$4
case $mode in single|disagg) ;; *) echo "usage: disagg_nixl.sh start|sweep single|disagg STAGE OUT" >&2; exit 2 ;; esac
gpu_dir=$(cd "$(dirname "$0")" && pwd)
. "$stage/final/install.sh"
. "$gpu_dir/env.sh"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
cd "$repo"
work=/tmp/llm-dvfs-gpu/nixl-$mode
mkdir -p "$work" "$out"
model="$repo/$stage/final/models/llama-8b-shape"
vllm_args=(--served-model-name llama-8b-shape --load-format dummy --skip-tokenizer-init --max-model-len 4096
           --max-num-seqs 128)
gpus=0; [ "$mode" = disagg ] && gpus=0,1
pack() { tar czf "$out/nixl-$mode-$phase.tgz" -C "$work" . ; ls -la "$out"; }
trap pack EXIT
healthy() { curl -sf -o /dev/null "http://127.0.0.1:8000/health"; }

# NIXL (nixl + nixl-cu13, the latter split in two parts by stage_nixl.sh) into /tmp/site3 once per machine.
install_nixl() {
  if [ ! -d /tmp/site3/nixl_cu13 ]; then
    local wheel; wheel=$(cat /tmp/stage/nixl_cu13.WHEEL_NAME) || { echo "no NIXL parts in /tmp/stage"; return 1; }
    cat /tmp/stage/nixl_cu13.part.* > "/tmp/$wheel"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site3 \
      "/tmp/$wheel" /tmp/stage/nixl-[0-9]*.whl
  fi
  export PYTHONPATH="$PYTHONPATH:/tmp/site3"
  # what UCX picks is printed per endpoint (UCX_PROTO_INFO) and NIXL says which backend it loads
  export UCX_PROTO_INFO=y UCX_LOG_LEVEL=info NIXL_LOG_LEVEL=INFO
  python3 -c "import nixl, nixl._api, nixl._bindings; print('nixl from', nixl._api.__file__)"
}

case $phase in
start)
  pkill -TERM -f "llm_dvfs.cli serve" && sleep 15 || true
  nvidia-smi --query-gpu=index,name,uuid,driver_version,power.limit,clocks.max.sm,clocks.sm,pstate,persistence_mode \
    --format=csv > "$work/gpus-before.csv"
  nvidia-smi topo -m > "$work/topology.txt" 2>&1 || true
  if [ "$mode" = single ]; then
    setsid nohup python3 -m llm_dvfs.cli serve single --model "$model" --port 8000 --gpu 0 --log-dir "$work/logs" \
      -- "${vllm_args[@]}" > "$work/serve.out" 2>&1 < /dev/null &
  else
    install_nixl > "$work/nixl-install.txt" 2>&1 || { cat "$work/nixl-install.txt"; exit 4; }
    env | grep -E '^(UCX_|NIXL_|NCCL_|VLLM_NIXL|TORCH_SYMM|NVSHMEM_|PYTHONPATH)' | sort > "$work/server-env.txt"
    python3 -m llm_dvfs.cli serve disagg --connector nixl --model "$model" --dry-run -- "${vllm_args[@]}" \
      > "$work/serve-plan.txt"
    setsid nohup python3 -m llm_dvfs.cli serve disagg --connector nixl --model "$model" --log-dir "$work/logs" \
      -- "${vllm_args[@]}" > "$work/serve.out" 2>&1 < /dev/null &
  fi
  for _ in $(seq 420); do healthy && break; sleep 1; done
  healthy && echo "SERVING" || { echo "NOT HEALTHY"; tail -30 "$work/serve.out"; tail -30 "$work"/logs/*.log; }
  ;;
sweep)
  healthy || { echo "no server on :8000 (machine restarted?)"; exit 3; }
  ports=8000; instances=()
  if [ "$mode" = disagg ]; then
    ports="8000 8100 8200"
    instances=(--instance-metrics prefill=http://127.0.0.1:8100 --instance-metrics decode=http://127.0.0.1:8200)
  fi
  snapshot() { for p in $ports; do curl -sf "http://127.0.0.1:$p/metrics" > "$work/metrics-$p-$1.txt" || true; done; }
  snapshot before
  python3 -m llm_dvfs.exporter --backend nvml --gpu-ids "$gpus" --interval 0.1 --no-http --output "$work/trace.csv" \
    > "$work/trace.log" 2>&1 &
  trace=$!
  # the two shapes as two sweeps (one sweep's --input-len/--output-len lists would cross into four shapes)
  for shape in 512/256 2048/128; do
    python3 -m llm_dvfs.cli sweep --host http://127.0.0.1:8000 --model llama-8b-shape --concurrency 1,16,64 \
      --input-len "${shape%/*}" --output-len "${shape#*/}" --token-ids --warmup 10 --steady 20 --backend nvml \
      --gpu-ids "$gpus" --mode "$([ "$mode" = single ] && echo single || echo disaggregated)" "${instances[@]}" \
      --run-dir "$work/run-${shape%/*}-${shape#*/}" 2>&1 | tr '\r' '\n' | grep -v '^\s*$' | tail -20 \
      || echo "sweep $shape failed"
  done
  kill -INT $trace; wait $trace || true
  snapshot after
  nvidia-smi --query-gpu=index,clocks.sm,clocks.mem,power.draw,temperature.gpu,pstate --format=csv \
    > "$work/gpus-after.csv"
  {
    echo "# environment the servers were started with (serve-plan.txt has what the recipe adds to it)"
    cat "$work/server-env.txt" 2>/dev/null || echo "(single: no NIXL)"
    echo "# NIXL / UCX lines of the server logs"
    grep -h -i -E 'nixl|ucx|ucp|transport|cuda_ipc|cuda_copy|rc_mlx5|tcp|sysv|posix|\] +[|+]' "$work"/logs/*.log 2>/dev/null \
      | grep -v -i -E 'GET /metrics|POST /v1' | head -400 || true
  } > "$work/transport.txt"
  for run in "$work"/run-*/; do
    run=${run%/}
    python3 -m llm_dvfs.cli report "$run" > "$run.report.out" 2>&1 || echo "report $run failed: $(tail -1 "$run.report.out")"
    sed -n '/## Where the prefill hop time goes/,/prefill_hop.json/p' "$run/report.md" 2>/dev/null || true
    head -c 1200 "$run/sweep.json"; echo
  done
  ;;
*) echo "usage: disagg_nixl.sh start|sweep single|disagg STAGE OUT" >&2; exit 2 ;;
esac
