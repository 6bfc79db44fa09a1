#!/usr/bin/env bash
# Compiles every .cu file to an object with nvcc against the installed torch's headers, so CUDA
# code cannot rot on machines without a GPU or a CUDA torch. A CPU torch lacks the generated
# c10/cuda/impl/cuda_cmake_macros.h; a one-line shim stands in for it.
# Usage: scripts/cuda_check.sh PYTHON
set -euo pipefail
PY=${1:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
cuda_home=$("$root/scripts/cuda_home.sh") || { echo "cuda-check: no nvcc found, skipped"; exit 0; }
nvcc="$cuda_home/bin/nvcc"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/shim/c10/cuda/impl"
echo '#define C10_CUDA_BUILD_SHARED_LIBS' > "$out/shim/c10/cuda/impl/cuda_cmake_macros.h"
torch_inc=$("$PY" -c 'from torch.utils.cpp_extension import include_paths; print(" ".join("-I" + p for p in include_paths()))')
arch=${MPTS_FAST_CUDA_ARCH:-"-gencode arch=compute_90,code=sm_90"}
status=0
for cu in "$root"/csrc/kernels/*.cu "$root"/csrc/torch/*.cu; do
  name=$(basename "$cu" .cu)
  # shellcheck disable=SC2086
  if "$nvcc" -std=c++20 -O2 -c $arch --expt-relaxed-constexpr -DMPTS_FAST_WITH_CUDA=1 \
      -I"$root/csrc/kernels" -I"$root/csrc/torch" $torch_inc -isystem "$out/shim" \
      "$cu" -o "$out/$name.o"; then
    echo "cuda-check: $name.cu ok"
  else
    echo "cuda-check: $name.cu FAILED"; status=1
  fi
done
exit $status
