#!/usr/bin/env bash
# Runs the four framework-free CUDA kernel files (csrc/kernels/*_cuda.cu) on the CPU under
# HIP-CPU and checks them against their CPU twins and float64 references, under both thread
# schedules. Objects are cached in build/cuda-emu (CUDA_EMU_OUT), so a second run only rebuilds
# what changed. Skips with one line when HIP-CPU or libtbb is missing, and writes that line (or
# the result) to $out/status, which `make test` repeats at the end of its summary.
# libtbb (headers and library; libstdc++'s parallel algorithms under HIP-CPU run on it) is looked
# for under each prefix in TBB_PREFIX, then in the compiler's default paths, then in the environment
# of CUDA_EMU_PIP, the repository's .venv, $VIRTUAL_ENV and $CONDA_PREFIX (PyPI's tbb-devel puts
# include/ and lib/ there).
#   HIP_CPU_DIR   HIP-CPU checkout (default: ../shared/third_party/HIP-CPU beside the repository)
#   CUDA_EMU_ONLY space-separated subset of: snapshot mmd sensitivity select
#   CUDA_EMU_SEED fixed seed for the random inputs (default: fresh each run, printed on failure)
#   TBB_PREFIX    colon-separated prefixes holding include/tbb/tbb.h and lib/libtbb.so
#   CUDA_EMU_INSTALL=1  install libtbb when it is missing (make test and make cuda-emu set it):
#                 PyPI's tbb-devel with CUDA_EMU_PIP into that pip's environment (no root needed),
#                 then, as root, apt-get install libtbb-dev
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
hip=${HIP_CPU_DIR:-$root/../shared/third_party/HIP-CPU}
out=${CUDA_EMU_OUT:-build/cuda-emu}
checks=${CUDA_EMU_ONLY:-snapshot mmd sensitivity select}
cxx=${CXX:-g++}
mkdir -p "$out"
rm -f "$out/status"
pip_prefix=""
[ -n "${CUDA_EMU_PIP:-}" ] && pip_prefix=$("$(dirname "$CUDA_EMU_PIP")/python" -c 'import sys; print(sys.prefix)')

skip() {  # the one line, on stdout and in $out/status
  echo "cuda-emu: $1"
  echo "NOT RUN: $1" >"$out/status"
  exit 0
}

# tbb_links [PREFIX]: can a program using TBB compile, link and load (with PREFIX's include/ and lib/)?
tbb_links() {
  local flags=() bin
  [ -n "${1:-}" ] && flags=(-I"$1/include" -L"$1/lib" -Wl,-rpath,"$1/lib")
  bin=$(mktemp)
  printf '#include <tbb/tbb.h>\nint main(){ tbb::task_arena a(1); return a.max_concurrency() == 1 ? 0 : 1; }\n' |
    "$cxx" -std=c++20 -x c++ - "${flags[@]}" -ltbb -o "$bin" >/dev/null 2>&1 && "$bin" >/dev/null 2>&1
  local rc=$?
  rm -f "$bin"
  return $rc
}

# find_tbb: sets tbb_prefix ("" for the compiler's default paths); fails when libtbb is nowhere
find_tbb() {
  local tried_default=0
  local p explicit envs
  IFS=: read -r -a explicit <<<"${TBB_PREFIX:-}"
  IFS=: read -r -a envs <<<"$pip_prefix:$root/.venv:${VIRTUAL_ENV:-}:${CONDA_PREFIX:-}"
  for p in "${explicit[@]}" "" "${envs[@]}"; do
    tbb_prefix=$p
    if [ -z "$p" ]; then
      [ "$tried_default" = 1 ] && continue  # the compiler's default paths, tried once
      tried_default=1
      tbb_links && return 0
    elif [ -f "$p/include/tbb/tbb.h" ] && tbb_links "$p"; then
      return 0
    fi
  done
  return 1
}

if [ ! -f "$hip/include/hip/hip_runtime.h" ]; then
  skip "HIP-CPU not found at $hip, skipped (git clone https://github.com/ROCm/HIP-CPU there, or set HIP_CPU_DIR)"
fi
install=${CUDA_EMU_INSTALL:-0}
if ! find_tbb && [ "$install" = 1 ] && [ -n "${CUDA_EMU_PIP:-}" ]; then
  echo "cuda-emu: libtbb not found; installing PyPI's tbb-devel with $CUDA_EMU_PIP"
  "$CUDA_EMU_PIP" install -q tbb-devel || echo "cuda-emu: pip install tbb-devel failed"
fi
if ! find_tbb && [ "$install" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "cuda-emu: libtbb still not found; apt-get install libtbb-dev"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libtbb-dev; } >/dev/null ||
    echo "cuda-emu: apt-get install libtbb-dev failed"
fi
if ! find_tbb; then
  skip "libtbb not found, skipped (pip install tbb-devel into .venv, or apt-get install libtbb-dev; or set TBB_PREFIX)"
fi
if [ -n "$tbb_prefix" ]; then
  echo "cuda-emu: libtbb from $tbb_prefix"
  # g++ reads CPATH and LIBRARY_PATH as extra -I and -L; the loader needs LD_LIBRARY_PATH at run time
  export CPATH="$tbb_prefix/include${CPATH:+:$CPATH}"
  export LIBRARY_PATH="$tbb_prefix/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LD_LIBRARY_PATH="$tbb_prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
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
result="$cases CUDA kernel cases ran on the CPU under HIP-CPU (both thread schedules), $passed passed"
echo "cuda-emu: $result (build ${built}s, total $((SECONDS - start))s)"
if [ "$status" -eq 0 ]; then echo "ran: $result" >"$out/status"; else echo "FAILED: $result" >"$out/status"; fi
exit $status
