#!/usr/bin/env bash
# Stage NIXL for the offline GPU machine (vLLM 0.24's NixlConnector imports `nixl._api`): the `nixl` wheel (the
# import name, a shim choosing by CUDA major) and `nixl-cu13` (the library, UCX bundled), both 1.5.1, the newest
# nixl-cu13 with a cp312 manylinux_2_28 wheel. nixl-cu13 is 56 MiB, over what one device call carries beside the
# repository, so it is split in two parts like the stage's vLLM wheel:
#   DEST/nixl-p1: nixl_cu13.part.0 (40 MiB)    DEST/nixl-p2: nixl_cu13.part.1, nixl_cu13.WHEEL_NAME, nixl-1.5.1 wheel
# Copy both parts' files into /tmp/stage on the GPU machine; disagg_nixl.sh joins and installs them.
#   usage: bash benchmarks/gpu/stage_nixl.sh [DEST]      default .gpu (the vLLM stage's folder, git-ignored)
set -euo pipefail
D=${1:-.gpu}
V=1.5.1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 -d "$tmp" "nixl==$V" "nixl-cu13==$V"
wheel=$(basename "$(ls "$tmp"/nixl_cu13-*.whl)")
rm -rf "$D/nixl-p1" "$D/nixl-p2" && mkdir -p "$D/nixl-p1" "$D/nixl-p2"
(cd "$tmp" && split -b 40m -d -a 1 "$wheel" nixl_cu13.part.)
mv "$tmp/nixl_cu13.part.0" "$D/nixl-p1/"
mv "$tmp/nixl_cu13.part.1" "$tmp"/nixl-"$V"-*.whl "$D/nixl-p2/"
echo "$wheel" > "$D/nixl-p2/nixl_cu13.WHEEL_NAME"
ls -l "$D/nixl-p1" "$D/nixl-p2"
