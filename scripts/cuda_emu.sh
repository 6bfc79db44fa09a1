#!/usr/bin/env bash
# Runs the four framework-free CUDA kernel files (csrc/kernels/*_cuda.cu) on the CPU under
# HIP-CPU and checks them against their CPU twins and float64 references, under both thread
# schedules. Objects are cached in build/cuda-emu (CUDA_EMU_OUT), so a second run only rebuilds
# what changed. Skips with one line when HIP-CPU or libtbb is missing.
#   HIP_CPU_DIR   HIP-CPU checkout (default: ../shared/third_party/HIP-CPU beside the repository)
#   CUDA_EMU_ONLY space-separated subset of: snapshot mmd sensitivity select
#   CUDA_EMU_SEED fixed seed for the random inputs (default: fresh each run, printed on failure)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
hip=${HIP_CPU_DIR:-$root/../shared/third_party/HIP-CPU}
out=${CUDA_EMU_OUT:-build/cuda-emu}
checks=${CUDA_EMU_ONLY:-snapshot mmd sensitivity select}
cxx=${CXX:-g++}

if [ ! -f "$hip/include/hip/hip_runtime.h" ]; then
  echo "cuda-emu: HIP-CPU not found at $hip, skipped (git clone https://github.com/ROCm/HIP-CPU there, or set HIP_CPU_DIR)"
  exit 0
fi
if ! printf '#include <tbb/tbb.h>\nint main(){}\n' | "$cxx" -x c++ - -ltbb -o /dev/null >/dev/null 2>&1; then
  echo "cuda-emu: libtbb not found, skipped (apt-get install libtbb-dev)"
  exit 0
fi

start=$SECONDS
make --no-print-directory -s -f csrc/emu/emu.mk -j"${CUDA_EMU_JOBS:-$(nproc)}" \
  HIP_CPU_DIR="$hip" OUT="$out" CXX="$cxx" $(for c in $checks; do echo "$out/check_$c"; done)
built=$((SECONDS - start))

export OMP_NUM_THREADS=1  # the CPU twins need no threads; idle OpenMP workers would spin against the emulation
cases=0 passed=0 status=0
for schedule in ascending descending; do
  for c in $checks; do
    log="$out/check_$c.$schedule.log"
    rc=0
    CUDA_EMU_SCHEDULE=$schedule timeout "${CUDA_EMU_TIMEOUT:-600}" "$out/check_$c" >"$log" 2>&1 || rc=$?
    line=$(grep -E '^cuda-emu [a-z]+ [a-z]+: cases=' "$log" | tail -n 1 || true)
    if [ -z "$line" ]; then
      echo "cuda-emu: check_$c ($schedule) ended without a result (exit $rc; timeout: 124); last lines of $log:"
      tail -n 20 "$log"
      status=1
      continue
    fi
    n=$(sed -E 's/.*cases=([0-9]+).*/\1/' <<<"$line")
    p=$(sed -E 's/.*passed=([0-9]+).*/\1/' <<<"$line")
    cases=$((cases + n))
    passed=$((passed + p))
    if [ "$rc" -ne 0 ]; then
      grep -E '^FAIL|^\[cuda-emu\]|reproduce with' "$log" | head -n 20
      echo "$line"
      status=1
    fi
  done
done
echo "cuda-emu: $cases CUDA kernel cases ran on the CPU under HIP-CPU (both thread schedules), $passed passed" \
     "(build ${built}s, total $((SECONDS - start))s)"
exit $status
