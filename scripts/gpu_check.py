#!/usr/bin/env python3
"""The `make gpu-check` driver: everything a GPU machine can verify that CI cannot, as stages
that each record their outcome, so one failing stage never hides the others.

    python3 scripts/gpu_check.py                 # all stages (what `make gpu-check` runs)
    python3 scripts/gpu_check.py --dry-run       # print the plan, run nothing
    python3 scripts/gpu_check.py --only tests,memcheck
    python3 scripts/gpu_check.py --bundle "$OUT/gpu-check.tar.gz"   # + one archive of it all

Stages, in order:
  build      in-place CUDA build of mpts_fast._C (setup.py build_ext, MPTS_FAST_CUDA=1)
  tests      the CUDA tests: every test id containing "cuda" (each op's cuda cases, the CUDA-only
             tests); the CPU suite is `make test`'s job (GPU_CHECK_TESTS_K="" runs every test)
  memcheck   tests/test_cuda_bindings.py's CUDA cases (one call of every kernel at sizes across
  racecheck  its block / tile boundaries) under compute-sanitizer with that tool; only the
  synccheck  project's kernels are instrumented (--kernel-name kns=mpts), each tensor is its own
             cudaMalloc (PYTORCH_NO_CUDA_MEMORY_CACHING=1) so memcheck sees every bound
  bench      bench/run.py --device cuda, the rbf_mmd2 / snapshot / sensitivity cases (its own
             results JSON in bench/results/)
  select     bench/run.py --device cuda --tag select, the kcenter_greedy / badge_select cases (likewise)

Each stage has a time limit, and the whole run a budget (GPU_CHECK_BUDGET_S, default 480 s):
a stage that would start past the budget is recorded as skipped. The results file,
bench/results/<date>-gpu-check-<gpu>.json, is written after every stage (so a run killed
midway still leaves one) and holds, per stage: status (pass / fail / timeout / not-run),
exit code, seconds, and for the sanitizer stages the error count and the tool's summary lines;
failing stages keep the tail of their log. Full logs: build/gpu-check/<stage>.log.

Exit status: 0 when every stage passed, 1 when any failed or timed out, 2 when none failed
but some could not run (no compute-sanitizer, a device it does not support, the budget).

Environment: PYTHON (default: this interpreter), TORCH_CUDA_ARCH_LIST (default 9.0),
COMPUTE_SANITIZER (the binary; default: PATH, then the CUDA toolkit's bin),
GPU_CHECK_SANITIZER_FILTER (default kns=mpts; empty instruments every kernel, cuBLAS too),
GPU_CHECK_BUDGET_S, GPU_CHECK_<STAGE>_TIMEOUT_S (e.g. GPU_CHECK_MEMCHECK_TIMEOUT_S).
"""
from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOG_DIR = os.path.join(ROOT, "build", "gpu-check")
RESULTS_DIR = os.path.join(ROOT, "bench", "results")
SANITIZER_TESTS = ["tests/test_cuda_bindings.py", "-k", "cuda"]
SANITIZER_TOOLS = ("memcheck", "racecheck", "synccheck")
NEEDS_CUDA = ("tests", *SANITIZER_TOOLS)  # stages that check nothing without CUDA kernels
# compute-sanitizer lines that mean "this machine cannot run the tool", not "the code is wrong"
UNSUPPORTED = re.compile(r"Device not supported|not supported on this (platform|device)|Error 999|"
                         r"Target application terminated before first instrumented API call")


@dataclass
class Stage:
    name: str
    command: list[str]
    timeout_s: float
    env: dict[str, str] = field(default_factory=dict)
    sanitizer_log: str | None = None  # compute-sanitizer's own report (--log-file)
    fallback: list[str] | None = None  # the command once more without the kernel filter
    why_not_run: str | None = None  # set when the stage cannot run at all here


@dataclass
class Outcome:
    name: str
    status: str  # pass | fail | timeout | not-run
    command: str
    seconds: float = 0.0
    exit_code: int | None = None
    detail: str = ""
    tests: dict[str, int] = field(default_factory=dict)
    errors: int | None = None  # sanitizer stages: the tool's ERROR SUMMARY count
    summary: list[str] = field(default_factory=list)
    log: str = ""
    log_tail: list[str] = field(default_factory=list)


def find_sanitizer() -> str | None:
    explicit = os.environ.get("COMPUTE_SANITIZER")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    found = shutil.which("compute-sanitizer")
    if found:
        return found
    homes = [os.environ.get("CUDA_HOME", ""), os.environ.get("CUDA_PATH", ""), "/usr/local/cuda"]
    homes += sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    for home in filter(None, homes):
        for rel in ("bin/compute-sanitizer", "compute-sanitizer/compute-sanitizer"):
            path = os.path.join(home, rel)
            if os.access(path, os.X_OK):
                return path
    return None


def timeout_for(name: str, default: float) -> float:
    return float(os.environ.get(f"GPU_CHECK_{name.upper()}_TIMEOUT_S", default))


def plan(py: str) -> list[Stage]:
    arch = os.environ.get("TORCH_CUDA_ARCH_LIST", "9.0")
    tests_k = os.environ.get("GPU_CHECK_TESTS_K", "cuda")
    stages = [
        Stage("build", [py, "setup.py", "-q", "build_ext", "--inplace"], timeout_for("build", 300),
              env={"MPTS_FAST_CUDA": "1", "TORCH_CUDA_ARCH_LIST": arch}),
        Stage("tests", [py, "-m", "pytest", "-q", "-rfE", "tests"] + (["-k", tests_k] if tests_k else []),
              timeout_for("tests", 240)),
    ]
    sanitizer = find_sanitizer()
    kernel_filter = os.environ.get("GPU_CHECK_SANITIZER_FILTER", "kns=mpts")
    for tool in SANITIZER_TOOLS:
        report = os.path.join(LOG_DIR, f"{tool}.sanitizer.log")
        head = [sanitizer or "compute-sanitizer", "--tool", tool, "--error-exitcode", "99", "--print-limit", "50",
                "--log-file", report]
        if tool == "racecheck":
            head += ["--racecheck-report", "all"]
        tail = [py, "-m", "pytest", "-q", "-rfE", *SANITIZER_TESTS]
        cmd = head + (["--kernel-name", kernel_filter] if kernel_filter else []) + tail
        stages.append(Stage(tool, cmd, timeout_for(tool, 150),
                            env={"PYTORCH_NO_CUDA_MEMORY_CACHING": "1"}, sanitizer_log=report,
                            fallback=head + tail if kernel_filter else None,
                            why_not_run=None if sanitizer else "compute-sanitizer not found (PATH, CUDA_HOME, /usr/local/cuda*)"))
    stages += [
        Stage("bench", [py, "bench/run.py", "--device", "cuda", "--out", "bench/results", "--tag", "ops",
                        "--cases", "rbf_mmd2,snapshot_uncertainty,sensitivity"], timeout_for("bench", 300)),
        Stage("select", [py, "bench/run.py", "--device", "cuda", "--out", "bench/results", "--tag", "select",
                         "--cases", "kcenter_greedy,badge_select"], timeout_for("select", 200)),
    ]
    return stages


def pytest_counts(text: str) -> dict[str, int]:
    """Counts from pytest's last summary line ("3 passed, 2 skipped in 1.0s")."""
    lines = [ln for ln in text.splitlines() if re.search(r"\d+ (passed|failed|skipped|error|deselected)", ln)]
    if not lines:
        return {}
    return {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)", lines[-1])}


def sanitizer_report(path: str | None) -> tuple[int | None, list[str], bool]:
    """(error count, summary lines, whether the tool refused this machine) from its log file."""
    if not path or not os.path.exists(path):
        return None, [], False
    with open(path, errors="replace") as f:
        text = f.read()
    summary = [ln.strip("= \n") for ln in text.splitlines() if "SUMMARY" in ln]
    counts = [int(n) for n in re.findall(r"ERROR SUMMARY: (\d+) error", text)]
    return (sum(counts) if counts else None), summary, bool(UNSUPPORTED.search(text))


CUDA_PROBE = ("import torch; from mpts_fast import _native; "
              "assert torch.cuda.is_available(), 'torch sees no CUDA device'; "
              "assert 'cuda' in _native.native_devices(), f'mpts_fast._C has no CUDA kernels ({_native.IMPORT_ERROR})'")


def cuda_ready(py: str) -> str | None:
    """None when a CUDA device and mpts_fast's CUDA kernels are there; else why not (the CUDA
    tests would all skip, and a run of skips proves nothing)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    try:
        res = subprocess.run([py, "-c", CUDA_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"the CUDA probe did not run: {exc}"
    if res.returncode == 0:
        return None
    lines = (res.stderr or res.stdout).strip().splitlines()
    return lines[-1] if lines else f"the CUDA probe exited {res.returncode}"


def api_errors(path: str | None) -> int:
    """memcheck also counts CUDA API calls that returned an error (any caller's, torch's too)."""
    if not path or not os.path.exists(path):
        return 0
    with open(path, errors="replace") as f:
        return sum(1 for ln in f if "Program hit " in ln)


def run_stage(stage: Stage, budget_left: float) -> Outcome:
    shown = " ".join(stage.command)
    log_path = os.path.join(LOG_DIR, f"{stage.name}.log")
    out = Outcome(stage.name, "not-run", shown, log=os.path.relpath(log_path, ROOT))
    if stage.why_not_run:
        out.detail = stage.why_not_run
        return out
    limit = min(stage.timeout_s, budget_left)
    if limit < 5:
        out.detail = "the gpu-check time budget (GPU_CHECK_BUDGET_S) was used up before this stage"
        return out
    if stage.sanitizer_log and os.path.exists(stage.sanitizer_log):
        os.remove(stage.sanitizer_log)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
               PYTHONUNBUFFERED="1", **stage.env)
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        log.write(f"$ {shown}\n")
        log.flush()
        try:
            proc = subprocess.Popen(stage.command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        except OSError as exc:
            out.status, out.detail = "fail", f"could not start: {exc}"
            return out
        try:
            out.exit_code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the stage's own process group only
            proc.wait()
            out.status, out.detail = "timeout", f"killed after {limit:.0f} s"
    out.seconds = round(time.monotonic() - t0, 1)
    with open(log_path, errors="replace") as f:
        text = f.read()
    if stage.name not in ("build", "bench", "select"):
        out.tests = pytest_counts(text)
    if stage.sanitizer_log:
        out.errors, out.summary, refused = sanitizer_report(stage.sanitizer_log)
        api = api_errors(stage.sanitizer_log)
        if api:
            out.summary.append(f"{api} of the errors are failed CUDA API calls (\"Program hit ...\"), not kernel accesses")
        if refused and not out.tests.get("passed"):
            out.status, out.detail = "not-run", "compute-sanitizer does not support this device or platform"
    if out.status == "not-run" and out.exit_code is not None and not out.detail:
        out.status = "pass" if out.exit_code == 0 else "fail"
        if out.exit_code == 99:
            out.detail = "compute-sanitizer reported errors"
        if out.status == "pass" and out.tests and not out.tests.get("passed"):
            out.status, out.detail = "fail", "no test ran (all skipped or deselected): nothing was checked"
        if out.status == "pass" and stage.sanitizer_log and out.errors is None:
            out.status, out.detail = "fail", "no ERROR SUMMARY in the sanitizer's report"
    if out.status != "pass":
        out.log_tail = text.splitlines()[-40:]
    return out


def machine() -> dict:
    info: dict = {"host": socket.gethostname(), "python": sys.version.split()[0]}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception as exc:  # the results file must still be written
        info["torch_error"] = str(exc)
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                        timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def overall(outcomes: list[Outcome]) -> tuple[str, int]:
    if any(o.status in ("fail", "timeout") for o in outcomes):
        return "fail", 1
    if any(o.status == "not-run" for o in outcomes):
        return "incomplete", 2
    return "pass", 0


def write_results(path: str, info: dict, outcomes: list[Outcome], started: str, planned: list[str]) -> None:
    status, _ = overall(outcomes)
    doc = {"kind": "gpu-check", "started": started, "status": status, "machine": info, "stages_planned": planned,
           "stages": [asdict(o) for o in outcomes]}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
    os.replace(tmp, path)


def write_bundle(bundle: str, results: str, since: float) -> None:
    import tarfile

    others = sorted(glob.glob(os.path.join(LOG_DIR, "*.log")) + glob.glob(os.path.join(RESULTS_DIR, "*.json")))
    files = [results] + [f for f in others if os.path.getmtime(f) >= since and f != results]  # this run's files
    with tarfile.open(bundle, "w:gz") as tar:
        for f in files:
            tar.add(f, arcname=os.path.relpath(f, ROOT) if f.startswith(ROOT + os.sep) else os.path.basename(f))
    print(f"[gpu-check] bundle: {bundle} ({len(files)} files)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", default=os.environ.get("PYTHON") or sys.executable)
    ap.add_argument("--only", help="comma-separated stage names (default: all)")
    ap.add_argument("--dry-run", action="store_true", help="print the stages and exit")
    ap.add_argument("--out", default=RESULTS_DIR, help="folder for the results JSON")
    ap.add_argument("--bundle", help="also write this .tar.gz: the results JSON, every stage's log and the "
                    "benchmark JSONs this run wrote (one file to carry back from a GPU machine)")
    a = ap.parse_args(argv)
    stages = plan(a.python)
    if a.only:
        wanted = a.only.split(",")
        unknown = set(wanted) - {s.name for s in stages}
        if unknown:
            ap.error(f"unknown stage(s) {sorted(unknown)}; stages: {[s.name for s in stages]}")
        stages = [s for s in stages if s.name in wanted]
    if a.dry_run:
        for s in stages:
            extra = " ".join(f"{k}={v}" for k, v in s.env.items())
            note = f"   [not runnable here: {s.why_not_run}]" if s.why_not_run else ""
            print(f"{s.name:9s} (limit {s.timeout_s:.0f} s) {extra} {' '.join(s.command)}{note}")
        return 0
    os.makedirs(LOG_DIR, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    info = machine()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    gpu = re.sub(r"[^a-z0-9]+", "-", info.get("gpu", "no-gpu").lower()).strip("-")
    path = os.path.join(a.out, f"{started[:10]}-gpu-check-{gpu}.json")
    budget_end = time.monotonic() + float(os.environ.get("GPU_CHECK_BUDGET_S", 480))
    started_at = time.time()
    outcomes: list[Outcome] = []
    not_ready: str | None = ""  # "" = not probed yet
    for s in stages:
        print(f"[gpu-check] {s.name} ...", flush=True)
        if s.name in NEEDS_CUDA and not_ready == "":
            not_ready = cuda_ready(a.python)
        if s.name in NEEDS_CUDA and not_ready:
            o = Outcome(s.name, "fail", " ".join(s.command), detail=f"not run: {not_ready}")
        else:
            o = run_stage(s, budget_end - time.monotonic())
            if s.fallback and o.errors is None and not o.tests and o.status == "fail":
                # the tool never ran the tests: most likely it refused the --kernel-name filter
                print(f"[gpu-check] {s.name}: no report; once more without the kernel filter", flush=True)
                first = o
                s.command, s.fallback = s.fallback, None
                o = run_stage(s, budget_end - time.monotonic())
                o.detail = (o.detail + "; " if o.detail else "") + "ran without --kernel-name (it failed with it)"
                o.seconds = round(o.seconds + first.seconds, 1)
        outcomes.append(o)
        extra = f", {o.errors} sanitizer errors" if o.errors is not None else ""
        counts = f", tests {o.tests}" if o.tests else ""
        print(f"[gpu-check] {s.name}: {o.status.upper()} ({o.seconds} s{extra}{counts}){' - ' + o.detail if o.detail else ''}",
              flush=True)
        write_results(path, info, outcomes, started, [st.name for st in stages])
    status, code = overall(outcomes)
    if a.bundle:
        write_bundle(a.bundle, path, started_at)
    print(f"[gpu-check] {status.upper()}: " + ", ".join(f"{o.name} {o.status}" for o in outcomes))
    print(f"[gpu-check] results: {os.path.relpath(path, ROOT)}; logs: {os.path.relpath(LOG_DIR, ROOT)}/")
    return code


if __name__ == "__main__":
    sys.exit(main())
