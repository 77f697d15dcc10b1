#!/usr/bin/env bash
# Runs every test, after installing what they need (see scripts/setup_env.sh).
#   ./run_tests.sh            everything, as CI does (real vLLM, Prometheus and Locust included; ~20-40 min)
#   ./run_tests.sh --fast     skip the tests that start vLLM
#   ./run_tests.sh -- ARGS    extra pytest arguments, e.g. -- -k exporter
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup_env.sh
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --fast) args+=(-m "not vllm") ;;
    --) shift; args+=("$@"); break ;;
    *) args+=("$1") ;;
  esac
  shift
done
exec python -m pytest "${args[@]}"
