#!/usr/bin/env python3
"""gpu-check's build stage: build mpts_fast._C in place and prove the checkout imports the way
the other stages will import it (no install: scripts/gpu_check_site/sitecustomize.py maps
mpts_fast.cli to cli/).

    python3 scripts/gpu_check_build.py --device cuda     # what a GPU machine runs
    python3 scripts/gpu_check_build.py --device cpu --reuse   # the CPU rehearsal

The build is `setup.py build_ext --inplace` with ninja on every core (MAX_JOBS), for the
architectures in TORCH_CUDA_ARCH_LIST (gpu_check.py sets 9.0, Hopper) and with `-Xptxas -v`
(NVCC_APPEND_FLAGS), so the log holds each kernel's registers, shared memory and spills; a
summary of those lines is printed at the end. --reuse skips the compile when an extension built
for this Python is there (the rehearsal copies the CPU build instead of spending minutes on it);
the import is checked either way.

The last line printed is `GPU_CHECK_RESULT {json}`: what the stage's verdict is made of.
Exit status 0 when the package imports with the device's kernels, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One fresh process imports the package as every stage will; it prints one JSON line.
PROBE = r"""
import json, os, sys
import torch
import mpts_fast, mpts_fast.cli.main
from mpts_fast import _native
print(json.dumps({"mpts_fast": os.path.realpath(mpts_fast.__file__),
                  "cli": os.path.realpath(mpts_fast.cli.main.__file__),
                  "native_devices": list(_native.native_devices()),
                  "import_error": str(getattr(_native, "IMPORT_ERROR", None) or ""),
                  "torch": torch.__version__, "torch_cuda": torch.version.cuda,
                  "cuda_available": torch.cuda.is_available(),
                  "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))
"""

PTXAS_FUNCTION = re.compile(r"Compiling entry function '([^']+)' for '(sm_\d+a?)'")
PTXAS_USED = re.compile(r"Used (\d+) registers")
PTXAS_SPILL = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
PTXAS_STACK = re.compile(r"(\d+) bytes stack frame")


def ptxas_summary(text: str) -> list[dict]:
    """Per kernel (as ptxas -v reports it): registers, stack frame and spill bytes."""
    out: list[dict] = []
    current: dict | None = None
    for line in text.splitlines():
        m = PTXAS_FUNCTION.search(line)
        if m:
            current = {"kernel": m.group(1), "arch": m.group(2)}
            out.append(current)
            continue
        if current is None:
            continue
        if (m := PTXAS_STACK.search(line)) and "stack_bytes" not in current:
            current["stack_bytes"] = int(m.group(1))
        if (m := PTXAS_SPILL.search(line)) and "spill_store_bytes" not in current:
            current["spill_store_bytes"], current["spill_load_bytes"] = int(m.group(1)), int(m.group(2))
        if (m := PTXAS_USED.search(line)) and "registers" not in current:
            current["registers"] = int(m.group(1))
    return out


def probe(py: str) -> tuple[dict | None, str]:
    res = subprocess.run([py, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        return None, (res.stderr or res.stdout).strip()
    return json.loads(res.stdout.strip().splitlines()[-1]), ""


def built_extension(py: str) -> str | None:
    """The in-place extension built for interpreter `py`, if there is one."""
    res = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))"],
                         capture_output=True, text=True, timeout=60)
    path = os.path.join(ROOT, "mpts_fast", "_C" + res.stdout.strip())
    return path if res.returncode == 0 and os.path.exists(path) else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cuda", "cpu"], required=True, help="the kernels the build must hold")
    ap.add_argument("--reuse", action="store_true", help="never compile when an extension built for this Python "
                    "is there (the rehearsal copies the CPU build); the import is still checked")
    ap.add_argument("--python", default=sys.executable)
    a = ap.parse_args(argv)
    result: dict = {"device": a.device, "compiled": False}
    if a.reuse and built_extension(a.python):
        # the rehearsal: the import below is what is checked; a compile would take minutes
        print(f"[build] reusing the built extension {built_extension(a.python)}; no compile", flush=True)
    else:
        env = dict(os.environ)
        env.setdefault("MAX_JOBS", str(os.cpu_count() or 1))
        env["MPTS_FAST_CUDA"] = "1" if a.device == "cuda" else "0"
        if a.device == "cuda":
            env.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
            env["NVCC_APPEND_FLAGS"] = (env.get("NVCC_APPEND_FLAGS", "") + " -Xptxas -v").strip()
        cmd = [a.python, "setup.py", "build_ext", "--inplace"]
        print("[build] $ " + " ".join(cmd) + f"  (MAX_JOBS={env['MAX_JOBS']}, MPTS_FAST_CUDA={env['MPTS_FAST_CUDA']}, "
              f"TORCH_CUDA_ARCH_LIST={env.get('TORCH_CUDA_ARCH_LIST', '')}, NVCC_APPEND_FLAGS={env.get('NVCC_APPEND_FLAGS', '')})",
              flush=True)
        lines: list[str] = []
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:  # streamed: a build cut by its time limit still leaves its log
            sys.stdout.write(line)
            lines.append(line)
        rc = proc.wait()
        sys.stdout.flush()
        result["compiled"] = True
        result["build_exit_code"] = rc
        result["ptxas"] = ptxas_summary("".join(lines))
        result["kernels_with_spills"] = sorted({k["kernel"] for k in result["ptxas"] if k.get("spill_store_bytes")})
        if rc != 0:
            result["error"] = f"setup.py build_ext exited {rc}"
            print("GPU_CHECK_RESULT " + json.dumps(result), flush=True)
            return 1
    found, err = probe(a.python)
    result["import"] = found
    problems = []
    if found is None:
        problems.append(f"the package does not import as the stages import it: {err.splitlines()[-1] if err else '?'}")
    else:
        if not found["mpts_fast"].startswith(os.path.realpath(ROOT) + os.sep):
            problems.append(f"mpts_fast imports from {found['mpts_fast']}, not from this checkout {ROOT}")
        if not found["cli"].startswith(os.path.realpath(os.path.join(ROOT, "cli")) + os.sep):
            problems.append(f"mpts_fast.cli imports from {found['cli']}, not from this checkout's cli/")
        if a.device not in found["native_devices"]:
            problems.append(f"mpts_fast._C has no {a.device} kernels (native devices {found['native_devices']}; "
                            f"{found['import_error'] or 'no import error'})")
        if a.device == "cuda" and not found["cuda_available"]:
            problems.append("torch sees no CUDA device")
    if problems:
        result["error"] = "; ".join(problems)
    if result.get("ptxas"):
        regs = [k["registers"] for k in result["ptxas"] if "registers" in k]
        print(f"[build] ptxas: {len(result['ptxas'])} kernels, registers {min(regs, default=0)}-{max(regs, default=0)}, "
              f"spilling: {result['kernels_with_spills'] or 'none'}", flush=True)
    print("GPU_CHECK_RESULT " + json.dumps(result), flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
