# Sourced on a lent GPU machine (no package index there) after the vLLM stage's install.sh:
# installs the carried Locust/Quart wheels (.whl, see README.md here) and puts the repo on PYTHONPATH.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [ ! -d /tmp/site2/locust ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site2 "$repo"/.whl/*.whl \
    || return 1
fi
export PYTHONPATH="$repo:/tmp/site:/tmp/site2" PATH="/tmp/site2/bin:/tmp/site/bin:$PATH" PYTHONUNBUFFERED=1
# NVLink multicast stays off in every process on the shared multi-GPU hosts.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
llm-dvfs() { python3 -m llm_dvfs.cli "$@"; }
