#!/usr/bin/env bash
# Prints the CUDA toolkit directory. The nvcc on PATH may be a wrapper script
# (`exec /usr/local/cuda-X/bin/nvcc "$@"`), which makes torch guess CUDA_HOME wrong.
set -euo pipefail
if [ -n "${CUDA_HOME:-}" ] && [ -x "$CUDA_HOME/bin/nvcc" ]; then echo "$CUDA_HOME"; exit 0; fi
nvcc_path=$(command -v nvcc) || exit 1
target=$(sed -n 's/^exec \([^ ]*\/bin\/nvcc\).*/\1/p' "$nvcc_path" 2>/dev/null | head -n 1)
[ -n "$target" ] || target=$(readlink -f "$nvcc_path")
dirname "$(dirname "$target")"
