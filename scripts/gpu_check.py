#!/usr/bin/env python3
"""gpu-check: everything a GPU machine can verify that CI cannot, in one command that fits one
call of such a machine (it starts bare, has no network, installs nothing, and only one folder
comes back), each stage with a verdict.

    python3 scripts/gpu_check.py --out "$OUT"        # on the GPU machine (give the call 600 s)
    python3 scripts/gpu_check.py --dry-run           # the plan: stages, limits, commands
    python3 scripts/gpu_check.py --rehearse          # the same stages on the CPU (make test runs it)
    python3 scripts/gpu_check.py --out DIR --only build,correctness

Stages, most valuable first, inside a 540 s budget (GPU_CHECK_BUDGET_S); a stage that would
start past it is recorded as skipped:
  build        mpts_fast._C in place with ninja on every core, TORCH_CUDA_ARCH_LIST=9.0, the
               `-Xptxas -v` report in build.log; then the package (mpts_fast.cli too) must import
               from the checkout without an install (scripts/gpu_check_build.py)
  correctness  every CUDA test of the suite (`pytest tests -k cuda`): each op's CUDA cases, its
               CPU-vs-CUDA agreement, pick-for-pick k-center / k-means++ / BADGE on exact inputs
  e2e          `mpts-fast run` for 2 rounds on digits, MPTS and BADGE, on CUDA and on the CPU,
               compared (scripts/gpu_check_e2e.py)
  bench        bench/run.py --gpu-check: sizes that fill the chip, plain PyTorch on the same GPU,
               floors from the bandwidth and GEMM rate measured in the same run; a case passes at
               plain / ours >= its target (1.5) and within 2x its floor
  memcheck     the small CUDA workload tests under compute-sanitizer with that tool, only the
  racecheck    project's kernels instrumented; errors from CUDA API calls are split into ours
  synccheck    and torch's by their host backtrace (only ours fail the stage)

--out DIR receives, each as its stage ends: gpu-check.json (the results; its last key,
"verdicts", holds one line per stage), build.log, correctness.log, e2e.log, bench.log,
bench.json and sanitizer.log: 7 files, within what comes back from a GPU machine's $OUT
(8 files, 2 folders deep). Scratch goes to --work (default build/gpu-check). The command prints
a verdict table last.

--rehearse copies the tree (git's tracked and untracked-not-ignored files, plus the built
extension) to a temporary folder and runs every stage's command there with the device set to
CPU, under a Python that cannot import the packages a GPU machine lacks (faiss, openml,
expecttest, scikit_posthocs, mnist1d), without network, and checks that nothing outside --out and the
scratch folder was written. CUDA-only verdicts read "skipped: no GPU"; it fails when the package
does not import the way the GPU machine imports it, when a test module cannot be collected, or
when a stage's command fails.

Exit status: 0 when every stage passed (rehearsal: none failed), 1 when one failed or timed out,
2 when none failed but some could not run. Environment: PYTHON (default: this interpreter),
TORCH_CUDA_ARCH_LIST (default 9.0), COMPUTE_SANITIZER (default: PATH, then the CUDA toolkit),
GPU_CHECK_SANITIZER_FILTER (default kns=mpts; empty instruments every kernel),
GPU_CHECK_BUDGET_S, GPU_CHECK_<STAGE>_TIMEOUT_S.
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
import tempfile
import time
from dataclasses import asdict, dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUDGET_S = 540.0
# Absent from the GPU machine's image: the rehearsal's Python cannot import them either.
MISSING_ON_DEVICE = ("faiss", "openml", "expecttest", "scikit_posthocs", "mnist1d")
SANITIZER_TOOLS = ("memcheck", "racecheck", "synccheck")
SANITIZER_TESTS = ["tests/test_cuda_bindings.py", "-k", "workload"]
BENCH_CASES = "rbf_mmd2,snapshot_uncertainty,sensitivity,kcenter_greedy_gpu,badge_select_gpu"
RESULT_MARK = "GPU_CHECK_RESULT "
RESULTS_FILE = "gpu-check.json"
# what comes back from a GPU machine's $OUT (the device tool's limits)
OUT_MAX_FILES, OUT_NAME = 8, re.compile(r"^[A-Za-z0-9._-]+$")
# compute-sanitizer lines that mean "this machine cannot run the tool", not "the code is wrong"
UNSUPPORTED = re.compile(r"Device not supported|not supported on this (platform|device)|Error 999|"
                         r"Target application terminated before first instrumented API call")


@dataclass
class Stage:
    name: str
    what: str
    limit_s: float
    command: list[str]
    log: str  # file name under --out
    env: dict[str, str] = field(default_factory=dict)
    wrapper: list[str] = field(default_factory=list)  # compute-sanitizer in front of the command
    report: str | None = None  # compute-sanitizer's own log (--log-file)
    needs_gpu: bool = True  # on the CPU its verdict is "skipped: no GPU" (its command still runs)
    rehearse_as: str | None = None  # rehearsal: this stage's command is the named stage's; not run twice


@dataclass
class Outcome:
    name: str
    status: str  # pass | fail | timeout | skipped
    verdict: str
    command: str
    limit_s: float
    seconds: float = 0.0
    exit_code: int | None = None
    log: str = ""
    tests: dict[str, int] = field(default_factory=dict)
    data: dict = field(default_factory=dict)  # the stage helper's GPU_CHECK_RESULT, the sanitizer counts
    log_tail: list[str] = field(default_factory=list)


@dataclass
class Context:
    root: str
    py: str
    out: str
    work: str
    device: str  # "cuda" on a GPU machine, "cpu" in the rehearsal
    rehearse: bool


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


def limit(name: str, default: float) -> float:
    return float(os.environ.get(f"GPU_CHECK_{name.upper()}_TIMEOUT_S", default))


def plan(ctx: Context) -> list[Stage]:
    py, dev = ctx.py, ctx.device
    pytest = [py, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider"]
    build_env = {"TORCH_CUDA_ARCH_LIST": os.environ.get("TORCH_CUDA_ARCH_LIST", "9.0"),
                 "MAX_JOBS": os.environ.get("MAX_JOBS", str(os.cpu_count() or 1))}
    stages = [
        Stage("build", "in-place build (ninja, all cores, sm_90, ptxas -v); imports without an install",
              limit("build", 160), [py, "scripts/gpu_check_build.py", "--device", dev] + (["--reuse"] if ctx.rehearse else []),
              "build.log", env=build_env, needs_gpu=False),
        Stage("correctness", "every CUDA test: ops, CPU-vs-CUDA agreement, exact-input picks",
              limit("correctness", 110), pytest + ["tests", "-k", "cuda"], "correctness.log"),
        Stage("e2e", "mpts-fast run, 2 rounds on digits, mpts and badge, CUDA against CPU",
              limit("e2e", 60), [py, "scripts/gpu_check_e2e.py", "--device", dev, "--work", os.path.join(ctx.work, "e2e")]
              + (["--epochs", "2"] if ctx.rehearse else []), "e2e.log"),
        Stage("bench", "ratios to plain PyTorch on the same GPU and fractions of the measured floors",
              limit("bench", 100), [py, "bench/run.py", "--device", dev, "--gpu-check", "--cases", BENCH_CASES,
                                    "--json", os.path.join(ctx.out, "bench.json")] + (["--smoke"] if ctx.rehearse else []),
              "bench.log"),
    ]
    sanitizer = find_sanitizer() or "compute-sanitizer"
    kernel_filter = os.environ.get("GPU_CHECK_SANITIZER_FILTER", "kns=mpts")
    for tool, seconds in zip(SANITIZER_TOOLS, (45, 40, 25)):
        report = os.path.join(ctx.work, f"{tool}.sanitizer.txt")
        wrapper = [sanitizer, "--tool", tool, "--error-exitcode", "99", "--print-limit", "100", "--log-file", report]
        if kernel_filter:
            wrapper += ["--kernel-name", kernel_filter]
        stages.append(Stage(tool, f"compute-sanitizer {tool} on the small CUDA workload tests", limit(tool, seconds),
                            pytest + SANITIZER_TESTS, "sanitizer.log", env={"PYTORCH_NO_CUDA_MEMORY_CACHING": "1"},
                            wrapper=wrapper, report=report, rehearse_as=None if tool == "memcheck" else "memcheck"))
    return stages


def stage_env(ctx: Context, stage: Stage) -> dict[str, str]:
    """Every stage imports the checkout through scripts/gpu_check_site (no install needed)."""
    site = os.path.join(ctx.root, "scripts", "gpu_check_site")
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [site, ctx.root, os.environ.get("PYTHONPATH")])),
        MPTS_GPU_CHECK_ROOT=ctx.root,
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
        MPLBACKEND="Agg",
        MPLCONFIGDIR=os.path.join(ctx.work, "matplotlib"),
        TMPDIR=os.path.join(ctx.work, "tmp"),
    )
    if ctx.rehearse:
        env.update(
            MPTS_GPU_CHECK_BLOCK=",".join(MISSING_ON_DEVICE),
            CUDA_VISIBLE_DEVICES="",
            # no network: every HTTP(S) client that honours the proxy variables (urllib does) fails at once
            http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
            HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", no_proxy="", NO_PROXY="",
        )
    env.update(stage.env)
    return env


def pytest_counts(text: str) -> dict[str, int]:
    """Counts from pytest's last summary line ("3 passed, 2 skipped in 1.0s")."""
    lines = [ln for ln in text.splitlines() if re.search(r"\d+ (passed|failed|skipped|errors?|deselected)", ln)]
    if not lines:
        return {}
    pairs = re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)", lines[-1])
    return {("error" if k.startswith("error") else k): int(n) for n, k in pairs}


def helper_result(text: str) -> dict:
    for line in reversed(text.splitlines()):
        if line.startswith(RESULT_MARK):
            try:
                return json.loads(line[len(RESULT_MARK):])
            except json.JSONDecodeError:
                return {}
    return {}


def sanitizer_report(path: str | None) -> dict:
    """Counts from compute-sanitizer's report: kernel errors, ours when the report names a kernel
    of namespace mpts, and failed CUDA API calls, ours when our extension is on the host backtrace
    (else torch's own calls, e.g. a probe that expects an error)."""
    if not path or not os.path.exists(path):
        return {"found": False}
    with open(path, errors="replace") as f:
        text = f.read()
    blocks, current = [], []
    for line in text.splitlines():
        body = line.removeprefix("=========").rstrip()
        if body.startswith(" ") and not body.startswith("    ") and current:  # a new top-level message
            blocks.append(current)
            current = []
        current.append(body)
    if current:
        blocks.append(current)
    ours_api, torch_api, kernel, torch_kernel, first = 0, 0, 0, 0, []
    for block in blocks:
        head = block[0].strip()
        if head.startswith("Program hit"):
            if any("mpts_fast" in ln or "_C.cpython" in ln for ln in block):
                ours_api += 1
                first.append(head)
            else:
                torch_api += 1
        elif re.match(r"(Invalid|Race|Barrier|Uninitialized|Misaligned|Out-of-range|Warp|Malloc|Free|Leaked|"
                      r"Error|Cuda|Address|Hazard|Potential|Shared)", head) and "SUMMARY" not in head:
            if any("mpts" in ln for ln in block):  # our kernels live in namespace mpts::cuda
                kernel += 1
                first.append(head)
            else:  # only when every kernel is instrumented (no --kernel-name filter)
                torch_kernel += 1
    counts = [int(n) for n in re.findall(r"ERROR SUMMARY: (\d+) error", text)]
    return {"found": True, "error_summary": sum(counts) if counts else None, "ours_kernel": kernel,
            "ours_api": ours_api, "torch_api": torch_api, "torch_kernel": torch_kernel, "first_errors": first[:10],
            "refused": bool(UNSUPPORTED.search(text)),
            "summary_lines": [ln.strip("= ") for ln in text.splitlines() if "SUMMARY" in ln]}


# ------------------------------------------------------------------------------ verdicts


def judge(ctx: Context, stage: Stage, out: Outcome, text: str) -> None:
    """Sets out.status and out.verdict from the stage's exit code, log and helper result."""
    ok = out.exit_code == 0
    if stage.name == "build":
        d = out.data
        if ok:
            imp = d.get("import") or {}
            spills = d.get("kernels_with_spills") or []
            what = "compiled" if d.get("compiled") else "reused the built extension"
            out.status, out.verdict = "pass", (f"{what}; imports from the checkout with {imp.get('native_devices')} kernels"
                                               + (f"; spilling kernels: {len(spills)}" if spills else ""))
        else:
            out.status, out.verdict = "fail", d.get("error") or f"exit {out.exit_code}"
        return
    if stage.name == "correctness" or stage.report:
        out.tests = pytest_counts(text)
    if stage.name == "correctness":
        t = out.tests
        if not ok:
            errors = t.get("error")
            reason = (f"{errors} error(s) during collection or setup" if errors else
                      f"{t.get('failed', 0)} failed" if t.get("failed") else f"pytest exit {out.exit_code}")
            out.status, out.verdict = "fail", reason
        elif ctx.device == "cpu":
            out.status, out.verdict = "skipped", f"skipped: no GPU (every test module collected; {t.get('skipped', 0)} CUDA tests skipped)"
        elif not t.get("passed"):
            out.status, out.verdict = "fail", "no CUDA test ran (all skipped or deselected): nothing was checked"
        else:
            out.status, out.verdict = "pass", f"{t['passed']} passed, {t.get('skipped', 0)} skipped"
        return
    if stage.name == "e2e":
        d = out.data
        if not d:
            out.status, out.verdict = "fail", f"no result (exit {out.exit_code})"
        elif not ok:
            bad = {s: e["problems"] for s, e in d.get("strategies", {}).items() if e.get("problems")}
            out.status, out.verdict = "fail", "; ".join(f"{s}: {' / '.join(p)}" for s, p in bad.items()) or f"exit {out.exit_code}"
        elif ctx.device == "cpu":
            out.status, out.verdict = "skipped", "skipped: no GPU (both CLI runs finished on the CPU)"
        else:
            accs = ", ".join(f"{s} {e['accuracy_device'][-1]:.3f} vs {e['accuracy_cpu'][-1]:.3f}"
                             for s, e in d["strategies"].items())
            out.status, out.verdict = "pass", f"cuda agrees with cpu (final accuracy {accs})"
        return
    if stage.name == "bench":
        path = os.path.join(ctx.out, "bench.json")
        cases = []
        if os.path.exists(path):
            with open(path) as f:
                cases = json.load(f).get("cases", [])
        verdicts = [c.get("verdict", {}) for c in cases]
        out.data = {"cases": [{"label": c["label"], **c.get("verdict", {})} for c in cases]}
        failed = [c["label"] for c, v in zip(cases, verdicts) if v.get("status") == "fail"]
        if not ok:
            out.status, out.verdict = "fail", f"bench/run.py exit {out.exit_code} after {len(cases)} case(s)"
        elif ctx.device == "cpu":
            out.status, out.verdict = "skipped", f"skipped: no GPU ({len(cases)} cases ran at smoke sizes on the CPU)"
        elif not cases:
            out.status, out.verdict = "fail", "no case ran"
        elif failed:
            out.status, out.verdict = "fail", f"{len(failed)} of {len(cases)} cases miss a target: " + "; ".join(failed)
        else:
            out.status, out.verdict = "pass", f"all {len(cases)} cases meet their targets"
        return
    # sanitizer stages
    rep = sanitizer_report(stage.report) if ctx.device == "cuda" else {}
    out.data = rep
    t = out.tests
    if ctx.device == "cpu":
        if ok:
            out.status, out.verdict = "skipped", "skipped: no GPU (the command under the tool ran on the CPU)"
        else:
            out.status, out.verdict = "fail", f"the command under the tool failed on the CPU (exit {out.exit_code})"
        return
    if rep.get("refused") and not t.get("passed"):
        out.status, out.verdict = "skipped", "compute-sanitizer does not support this device or platform"
        return
    ours = rep.get("ours_kernel", 0) + rep.get("ours_api", 0)
    torch_note = "".join([
        f"; {rep['torch_api']} failed CUDA API calls from torch's own code, not ours" if rep.get("torch_api") else "",
        f"; {rep['torch_kernel']} errors in kernels that are not ours" if rep.get("torch_kernel") else ""])
    if not rep.get("found") or rep.get("error_summary") is None:
        out.status, out.verdict = "fail", f"no ERROR SUMMARY in the tool's report (exit {out.exit_code})"
    elif ours:
        out.status, out.verdict = "fail", f"{ours} error(s) in our code: " + " | ".join(rep["first_errors"][:3]) + torch_note
    elif out.exit_code not in (0, 99) or t.get("failed") or t.get("error"):
        out.status, out.verdict = "fail", f"the tests failed under the tool (exit {out.exit_code}, {t})"
    elif not t.get("passed"):
        out.status, out.verdict = "fail", "no test ran under the tool"
    else:
        out.status, out.verdict = "pass", f"0 errors in our kernels ({t['passed']} tests){torch_note}"


# ------------------------------------------------------------------------------ running


def run_stage(ctx: Context, stage: Stage, budget_left: float) -> Outcome:
    command = ([] if ctx.rehearse else stage.wrapper) + stage.command
    log_path = os.path.join(ctx.out, stage.log)
    out = Outcome(stage.name, "skipped", "", " ".join(command), stage.limit_s, log=stage.log)
    seconds = min(stage.limit_s, budget_left)
    if seconds < 5:
        out.verdict = "skipped: the time budget (GPU_CHECK_BUDGET_S) was used up before this stage"
        return out
    if stage.wrapper and not ctx.rehearse and not os.access(stage.wrapper[0], os.X_OK):
        out.verdict = "skipped: compute-sanitizer not found (PATH, CUDA_HOME, /usr/local/cuda*)"
        return out
    if stage.report and os.path.exists(stage.report):
        os.remove(stage.report)
    t0 = time.monotonic()
    with open(log_path, "a") as log:  # sanitizer stages share one log
        log.write(f"=== {stage.name}: $ {' '.join(command)}\n")
        log.flush()
        try:
            proc = subprocess.Popen(command, cwd=ctx.root, env=stage_env(ctx, stage), stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            out.status, out.verdict = "fail", f"could not start: {exc}"
            return out
        try:
            out.exit_code = proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the stage's own process group only
            proc.wait()
    out.seconds = round(time.monotonic() - t0, 1)
    with open(log_path, errors="replace") as f:
        text = f.read().rsplit(f"=== {stage.name}: $ ", 1)[-1]
    if stage.report and os.path.exists(stage.report):
        with open(stage.report, errors="replace") as f, open(log_path, "a") as log:
            log.write(f"=== {stage.name}: compute-sanitizer's report\n{f.read()}\n")
    out.data = helper_result(text)
    if out.exit_code is None:
        out.status, out.verdict = "timeout", f"killed after {seconds:.0f} s (its limit)"
        out.tests = pytest_counts(text)
    else:
        judge(ctx, stage, out, text)
    if out.status in ("fail", "timeout"):
        out.log_tail = text.splitlines()[-30:]
    return out


def machine(ctx: Context) -> dict:
    info: dict = {"host": socket.gethostname(), "python": sys.version.split()[0], "cpus": os.cpu_count()}
    try:
        res = subprocess.run([ctx.py, "-c", "import torch, json; print(json.dumps({'torch': torch.__version__, "
                              "'torch_cuda': torch.version.cuda, 'gpu': torch.cuda.get_device_name(0) "
                              "if torch.cuda.is_available() else None}))"],
                             capture_output=True, text=True, timeout=120, env=dict(os.environ, CUDA_VISIBLE_DEVICES="")
                             if ctx.rehearse else None)
        info.update(json.loads(res.stdout.strip().splitlines()[-1]))
    except Exception as exc:  # the results file must still be written
        info["torch_error"] = str(exc)
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                        timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def overall(outcomes: list[Outcome], rehearse: bool) -> tuple[str, int]:
    if any(o.status in ("fail", "timeout") for o in outcomes):
        return "fail", 1
    if not rehearse and any(o.status != "pass" for o in outcomes):
        return "incomplete", 2
    return "pass", 0


def verdict_line(o: Outcome) -> str:
    return f"{o.name}: {o.status.upper()} - {o.verdict}"


def write_results(ctx: Context, info: dict, outcomes: list[Outcome], started: str, planned: list[str]) -> None:
    status, _ = overall(outcomes, ctx.rehearse)
    doc = {"kind": "gpu-check", "mode": "rehearsal on the CPU" if ctx.rehearse else "gpu", "started": started,
           "budget_s": float(os.environ.get("GPU_CHECK_BUDGET_S", BUDGET_S)), "machine": info,
           "stages_planned": planned, "stages": [asdict(o) for o in outcomes], "status": status,
           "verdicts": [verdict_line(o) for o in outcomes]}  # last: the file's tail reads as the summary
    path = os.path.join(ctx.out, RESULTS_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f, indent=2)
    os.replace(path + ".tmp", path)


def table(outcomes: list[Outcome]) -> str:
    rows = [f"{'stage':12s} {'status':8s} {'s':>6s}  verdict"]
    for o in outcomes:
        rows.append(f"{o.name:12s} {o.status.upper():8s} {o.seconds:6.1f}  {o.verdict}")
    return "\n".join(rows)


def run_all(ctx: Context, stages: list[Stage]) -> tuple[list[Outcome], int]:
    os.makedirs(ctx.out, exist_ok=True)
    for sub in ("", "tmp", "matplotlib"):
        os.makedirs(os.path.join(ctx.work, sub), exist_ok=True)
    for s in stages:  # a rerun into the same folder starts each log afresh
        if os.path.exists(os.path.join(ctx.out, s.log)):
            os.remove(os.path.join(ctx.out, s.log))
    info = machine(ctx)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    budget_end = time.monotonic() + float(os.environ.get("GPU_CHECK_BUDGET_S", BUDGET_S))
    outcomes: list[Outcome] = []
    by_name: dict[str, Outcome] = {}
    for s in stages:
        print(f"[gpu-check] {s.name} (limit {s.limit_s:.0f} s) ...", flush=True)
        if ctx.rehearse and s.rehearse_as in by_name:
            first = by_name[s.rehearse_as]
            o = Outcome(s.name, "skipped" if first.status == "skipped" else first.status,
                        f"skipped: no GPU (its command is {s.rehearse_as}'s, rehearsed there)", " ".join(s.command), s.limit_s,
                        log=s.log)
        elif outcomes and outcomes[0].name == "build" and outcomes[0].status != "pass":
            o = Outcome(s.name, "skipped", "skipped: the build failed", " ".join(s.command), s.limit_s, log=s.log)
        else:
            o = run_stage(ctx, s, budget_end - time.monotonic())
            if (s.report and not ctx.rehearse and "--kernel-name" in s.wrapper and o.status == "fail"
                    and not o.tests and not o.data.get("found")):
                # the tool never ran the tests: most likely it refused the kernel filter; once more without it
                print(f"[gpu-check] {s.name}: no report; once more without --kernel-name", flush=True)
                i = s.wrapper.index("--kernel-name")
                s.wrapper = s.wrapper[:i] + s.wrapper[i + 2:]
                first = o
                o = run_stage(ctx, s, budget_end - time.monotonic())
                o.verdict += " (ran without --kernel-name, which failed: every kernel instrumented, torch's too)"
                o.seconds = round(o.seconds + first.seconds, 1)
        outcomes.append(o)
        by_name[s.name] = o
        print(f"[gpu-check] {verdict_line(o)} ({o.seconds} s)", flush=True)
        write_results(ctx, info, outcomes, started, [st.name for st in stages])
    _, code = overall(outcomes, ctx.rehearse)
    return outcomes, code


# ------------------------------------------------------------------------------ rehearsal


def tree_files(root: str) -> list[str]:
    """git's tracked and untracked-not-ignored files (what travels to a GPU machine), plus the built
    extension; outside a git checkout (a copy), every file but build outputs and caches."""
    try:
        res = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                             capture_output=True, text=True, check=True)
        listed = res.stdout.split("\0")
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "build", "__pycache__", ".pytest_cache", "runs"}
        listed = []
        for d, dirs, names in os.walk(root):
            dirs[:] = [x for x in dirs if x not in skip and not x.endswith(".egg-info")]
            listed += [os.path.relpath(os.path.join(d, n), root) for n in names]
    files = [f for f in listed if f and os.path.isfile(os.path.join(root, f))]
    files += [os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "mpts_fast", "_C*.so"))]
    return sorted(set(files))


def copy_tree(root: str, dest: str) -> int:
    files = tree_files(root)
    for rel in files:
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(os.path.join(root, rel), target)
    return len(files)


def snapshot(root: str) -> dict[str, tuple[int, int]]:
    state = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            st = os.lstat(p)
            state[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return state


def out_problems(out: str) -> list[str]:
    """What would not come back from a GPU machine's $OUT."""
    problems, files = [], []
    for d, _, names in os.walk(out):
        for n in names:
            rel = os.path.relpath(os.path.join(d, n), out)
            files.append(rel)
            if rel.count(os.sep) > 2 or not all(OUT_NAME.match(part) for part in rel.split(os.sep)):
                problems.append(f"--out file {rel!r} would not come back (name or depth)")
    if len(files) > OUT_MAX_FILES:
        problems.append(f"--out holds {len(files)} files; only {OUT_MAX_FILES} come back: {sorted(files)}")
    return problems


def rehearse(args, stage_names: list[str] | None) -> int:
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="gpu-check-rehearsal-")
    try:
        tree = os.path.join(tmp, "tree")
        n = copy_tree(ROOT, tree)
        out = os.path.abspath(args.out) if args.out else os.path.join(tmp, "out")
        ctx = Context(root=tree, py=args.python, out=out, work=os.path.join(tmp, "work"), device="cpu", rehearse=True)
        stages = select(plan(ctx), stage_names)
        before = snapshot(tree)
        print(f"[gpu-check] rehearsal on the CPU: {n} files copied to {tree}", flush=True)
        outcomes, code = run_all(ctx, stages)
        after = snapshot(tree)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        problems = out_problems(out)
        if changed:
            problems.append(f"the stages wrote into the tree, outside --out: {changed[:10]}")
        for p in problems:
            print(f"[gpu-check] rehearsal FAIL: {p}", flush=True)
        print(table(outcomes), flush=True)
        print(f"[gpu-check] rehearsal {'FAILED' if code or problems else 'passed'} in {time.monotonic() - t0:.0f} s "
              f"(the GPU machine's command: python3 scripts/gpu_check.py --out \"$OUT\")", flush=True)
        return 1 if problems else code
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"[gpu-check] kept {tmp}")


def select(stages: list[Stage], names: list[str] | None) -> list[Stage]:
    if not names:
        return stages
    unknown = set(names) - {s.name for s in stages}
    if unknown:
        raise SystemExit(f"--only: unknown stage(s) {sorted(unknown)}; stages: {[s.name for s in stages]}")
    return [s for s in stages if s.name in names]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", default=os.environ.get("PYTHON") or sys.executable)
    ap.add_argument("--out", help="folder for the results, logs and bench JSON (on a GPU machine: $OUT); "
                    "default build/gpu-check/out")
    ap.add_argument("--work", help="scratch folder (default build/gpu-check/work)")
    ap.add_argument("--only", help="comma-separated stage names (default: all)")
    ap.add_argument("--dry-run", action="store_true", help="print the stages, their limits and commands; run nothing")
    ap.add_argument("--rehearse", action="store_true", help="run every stage's command on the CPU in a copy of the tree")
    ap.add_argument("--keep", action="store_true", help="--rehearse: keep the temporary folder")
    a = ap.parse_args(argv)
    names = [n.strip() for n in a.only.split(",") if n.strip()] if a.only else None
    if a.rehearse:
        return rehearse(a, names)
    out = os.path.abspath(a.out or os.path.join(ROOT, "build", "gpu-check", "out"))
    work = os.path.abspath(a.work or os.path.join(ROOT, "build", "gpu-check", "work"))
    ctx = Context(root=ROOT, py=a.python, out=out, work=work, device="cuda", rehearse=False)
    stages = select(plan(ctx), names)
    if a.dry_run:
        total = sum(s.limit_s for s in stages)
        budget = float(os.environ.get("GPU_CHECK_BUDGET_S", BUDGET_S))
        for i, s in enumerate(stages, 1):
            extra = " ".join(f"{k}={v}" for k, v in s.env.items())
            print(f"{i}. {s.name:12s} limit {s.limit_s:4.0f} s  {s.what}\n     {extra} {' '.join(s.wrapper + s.command)}".rstrip())
        print(f"limits add up to {total:.0f} s; budget {budget:.0f} s; results in {out}")
        return 0 if total <= budget else 1
    outcomes, code = run_all(ctx, stages)
    print(f"[gpu-check] results: {os.path.join(out, RESULTS_FILE)}; logs and bench.json beside it")
    print(table(outcomes))
    return code


if __name__ == "__main__":
    sys.exit(main())
