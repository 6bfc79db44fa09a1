#!/usr/bin/env python3
"""Mutation check of the emulated CUDA kernel suite (scripts/cuda_emu.sh): plants one bug at a time
in a temporary copy of csrc/kernels/*_cuda.cu or the helpers they share (cuda_common.cuh) and
expects the suite to fail.

Each mutation replaces one exact piece of source (which must occur exactly once, so a kernel edit
that moves it makes the script fail loudly instead of silently testing nothing). The copy keeps
the build folder's objects, so only the mutated kernel file (or, for a shared helper, the kernel
files of the checks the mutation names) is recompiled. Rows marked
expect="pass" are planted bugs the suite is known not to see (fences and most barriers are beyond
emulation; two float32 accumulations change results by less than the float32 tolerances); they
are listed to show the limits, not claimed. Not part of `make test` (about 10 minutes on 2 cores).

    scripts/cuda_emu_mutations.py [--only NAME ...] [--markdown]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECK_OF = {
    "snapshot_uncertainty_cuda.cu": "snapshot",
    "rbf_mmd_cuda.cu": "mmd",
    "sensitivity_cuda.cu": "sensitivity",
    "select_cuda.cu": "select",
}


@dataclass
class Mutation:
    name: str
    kind: str
    file: str
    old: str
    new: str
    expect: str = "fail"  # "pass": a bug the suite is known not to see, listed with `why`
    why: str = ""
    checks: str = ""  # the checks to run; default: the one of `file` (required for cuda_common.cuh)

    def check_names(self) -> str:
        return self.checks or CHECK_OF[self.file]


MUTATIONS = [
    # off-by-one indices
    Mutation("row-norm loop reads one past the row", "off-by-one index", "sensitivity_cuda.cu",
             "for (int64_t i = lane; i < I; i += 32) {", "for (int64_t i = lane; i <= I; i += 32) {"),
    Mutation("scores written for the item past N", "off-by-one index", "snapshot_uncertainty_cuda.cu",
             "    const bool valid = item < N;\n    float mean[R], m2[R];\n#pragma unroll\n    for (int r = 0; r < R; ++r) mean[r] = m2[r] = 0.f;",
             "    const bool valid = item <= N;\n    float mean[R], m2[R];\n#pragma unroll\n    for (int r = 0; r < R; ++r) mean[r] = m2[r] = 0.f;"),
    Mutation("block row range one short", "off-by-one index", "select_cuda.cu",
             "const int64_t lo = static_cast<int64_t>(blockIdx.x) * R, hi = min(N, lo + R);",
             "const int64_t lo = static_cast<int64_t>(blockIdx.x) * R, hi = min(N, lo + R - 1);"),
    Mutation("epilogue takes one column past the tile", "off-by-one index", "rbf_mmd_cuda.cu",
             "for (int64_t jj = threadIdx.x; jj < bj; jj += blockDim.x) {",
             "for (int64_t jj = threadIdx.x; jj <= bj; jj += blockDim.x) {"),
    # wrong shuffle width / range
    Mutation("team sum shuffles over half a team", "wrong shuffle width", "cuda_common.cuh",
             "for (int o = TEAM / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o, TEAM);",
             "for (int o = TEAM / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o, TEAM / 2);",
             checks="snapshot"),
    Mutation("warp sum over 16 lanes", "wrong shuffle width", "cuda_common.cuh",
             "  return team_sum<32>(v);", "  return team_sum<16>(v);", checks="mmd"),
    Mutation("draw prefix sum in 16-lane segments", "wrong shuffle width", "select_cuda.cu",
             "const double up = __shfl_up_sync(0xffffffffu, w, o);",
             "const double up = __shfl_up_sync(0xffffffffu, w, o, 16);"),
    Mutation("max over classes shuffles with width 64", "wrong shuffle width", "sensitivity_cuda.cu",
             "m = nan_max(m, __shfl_xor_sync(0xffffffffu, m, o));",
             "m = nan_max(m, __shfl_xor_sync(0xffffffffu, m, o, 64));"),
    # the last-block ticket
    Mutation("last block does not reset the ticket", "missing reset of the last-block counter", "select_cuda.cu",
             "    *ws.ticket = 0u;  // ready for the next launch (stream order)\n", ""),
    # accumulation types
    Mutation("softmax and entropy class sums in float32", "wrong accumulation type", "snapshot_uncertainty_cuda.cu",
             "double sum = 0.0, sed = 0.0;", "float sum = 0.f, sed = 0.f;"),
    Mutation("score class sums in float32", "wrong accumulation type", "snapshot_uncertainty_cuda.cu",
             "double ent = 0.0, var = 0.0;", "float ent = 0.f, var = 0.f;"),
    Mutation("kernel-row sums weighted in float32", "wrong accumulation type", "rbf_mmd_cuda.cu",
             "const double sx = block_sum<double>(double(kx), shd);\n    const double sy = block_sum<double>(double(ky), shd);",
             "const double sx = block_sum<float>(kx, shf);\n    const double sy = block_sum<float>(ky, shf);",
             expect="pass", why="its error stays below the value tolerance"),
    Mutation("k-means++ block weight sums in float32", "wrong accumulation type", "select_cuda.cu",
             "  double sum = 0;\n  long long count = 0;\n  for (int64_t i = lo + warp;",
             "  float sum = 0;\n  long long count = 0;\n  for (int64_t i = lo + warp;",
             expect="pass", why="exact inputs sum exactly in float32; on Gaussian ones it moves a draw by ~1e-7"),
    # other classes
    Mutation("shuffle under divergent control flow", "divergent warp-synchronous call", "rbf_mmd_cuda.cu",
             "    acc = warp_sum(acc);\n    if (lane == 0) rn[a] = acc;",
             "    if (lane < 16) acc = warp_sum(acc);\n    if (lane == 0) rn[a] = acc;"),
    Mutation("missing barrier in the column-sum tile", "missing barrier", "rbf_mmd_cuda.cu",
             "    sh[threadIdx.y][threadIdx.x] = s;\n    __syncthreads();", "    sh[threadIdx.y][threadIdx.x] = s;"),
    Mutation("epilogue without the near-duplicate recompute", "numerics (finding 1)", "rbf_mmd_cuda.cu",
             "      if (!diag && D < kNearRel * (rni + rnj)) D = direct_sqdist(z + i * d, z + j * d, d);\n", ""),
    Mutation("inf-norm max that drops NaN", "NaN propagation", "sensitivity_cuda.cu",
             "__device__ __forceinline__ float nan_max(float a, float b) { return (a != a || a > b) ? a : b; }",
             "__device__ __forceinline__ float nan_max(float a, float b) { return fmaxf(a, b); }"),
    Mutation("finaliser ignores non-finite state", "NaN propagation", "snapshot_uncertainty_cuda.cu",
             "const bool nan_out = bad || !is_finite(ent_sum);", "const bool nan_out = false;"),
    # beyond emulation (listed, not claimed)
    Mutation("no fence before taking the ticket", "memory fence", "select_cuda.cu",
             "    __threadfence();  // results visible to the block that takes the last ticket\n", "", expect="pass",
             why="beyond emulation: threads never run concurrently, x86 is strongly ordered"),
    Mutation("no barrier after the warp partials of a block sum", "missing barrier", "cuda_common.cuh",
             "  if (wid == 0) v = warp_sum(v);\n  __syncthreads();\n  return v;",
             "  if (wid == 0) v = warp_sum(v);\n  return v;", expect="pass",
             why="beyond emulation: the race needs threads running concurrently", checks="mmd"),
]


def copy_tree(src: Path, dst: Path) -> None:
    """The parts of the repository the suite needs, with the build folder's timestamps kept."""
    for sub in ("csrc/kernels", "csrc/emu", "scripts"):
        shutil.copytree(src / sub, dst / sub, copy_function=shutil.copy2)
    build = src / "build" / "cuda-emu"
    if build.is_dir():
        shutil.copytree(build, dst / "build" / "cuda-emu", copy_function=shutil.copy2,
                        ignore=shutil.ignore_patterns("*.log"))


def run_suite(tree: Path, checks: str, timeout: int) -> tuple[bool, str, float]:
    env = dict(os.environ, CUDA_EMU_ONLY=checks,
               HIP_CPU_DIR=os.environ.get("HIP_CPU_DIR", str(ROOT.parent / "shared" / "third_party" / "HIP-CPU")))
    start = time.time()
    try:
        res = subprocess.run([str(tree / "scripts" / "cuda_emu.sh")], cwd=tree, env=env, capture_output=True,
                             text=True, timeout=timeout)
        ok, out = res.returncode == 0, res.stdout + res.stderr
    except subprocess.TimeoutExpired as e:
        ok, out = False, f"timed out after {timeout} s (hang) " + (e.stdout or b"").decode(errors="replace")[-500:]
    return ok, out, time.time() - start


def first_evidence(out: str) -> str:
    for line in out.splitlines():
        if line.startswith(("FAIL", "[cuda-emu] fault", "timed out")) or "error:" in line:
            return line.replace("|", "/")[:150]
    return out.strip().splitlines()[-1][:150] if out.strip() else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="names (substrings) of the mutations to run")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per mutation (a hang counts as caught)")
    ap.add_argument("--markdown", action="store_true", help="print the result as a markdown table")
    args = ap.parse_args()
    muts = [m for m in MUTATIONS if not args.only or any(o in m.name for o in args.only)]

    with tempfile.TemporaryDirectory(prefix="cuda-emu-mut-") as tmp:
        pristine = Path(tmp) / "pristine"
        copy_tree(ROOT, pristine)
        for m in muts:  # every mutation must apply to today's sources
            text = (pristine / "csrc/kernels" / m.file).read_text()
            if text.count(m.old) != 1:
                print(f"mutation '{m.name}': its source text occurs {text.count(m.old)} times in {m.file}", file=sys.stderr)
                return 2
        checks = " ".join(sorted({c for m in muts for c in m.check_names().split()}))
        ok, out, secs = run_suite(pristine, checks, args.timeout * 4)
        print(f"unmutated suite ({checks}): {'passes' if ok else 'FAILS'} ({secs:.0f} s)", flush=True)
        if not ok:
            print(out[-3000:])
            return 2
        rows, wrong = [], 0
        for i, m in enumerate(muts):
            tree = Path(tmp) / f"m{i}"
            copy_tree(pristine, tree)
            path = tree / "csrc/kernels" / m.file
            path.write_text(path.read_text().replace(m.old, m.new))
            ok, out, secs = run_suite(tree, m.check_names(), args.timeout)
            caught = not ok
            as_expected = caught == (m.expect == "fail")
            wrong += not as_expected
            evidence = first_evidence(out) if caught else "suite passed"
            rows.append((m, caught, as_expected, secs, evidence))
            print(f"{'caught' if caught else 'MISSED':7} {'' if as_expected else '(unexpected) '}{m.kind}: {m.name} "
                  f"[{m.file}] {secs:.0f} s: {evidence}", flush=True)
            shutil.rmtree(tree, ignore_errors=True)
    if args.markdown:
        print("\n| planted bug | class | file | emulated suite |\n|---|---|---|---|")
        for m, caught, as_expected, secs, evidence in rows:
            verdict = "fails (caught)" if caught else "passes (not caught)"
            if m.why:
                verdict += f": {m.why}"
            print(f"| {m.name} | {m.kind} | `{m.file}` | {verdict} |")
    claimed = [r for r in rows if r[0].expect == "fail"]
    print(f"\n{sum(r[1] for r in claimed)} of {len(claimed)} claimed mutations caught; "
          f"{sum(not r[1] for r in rows if r[0].expect == 'pass')} of {len(rows) - len(claimed)} "
          f"known blind spots pass as expected; {wrong} unexpected")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
