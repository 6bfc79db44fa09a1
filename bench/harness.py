"""Shared pieces of every bench command: input makers, the timer (`time_calls`), machine facts, the
floors (the time the work would take at the machine's GEMM rate or memory bandwidth) and the
options every command takes (`--out`, `--quick`). The cases themselves (sizes, implementations,
targets) are in bench/cases.py; the commands are listed by `python -m bench`.
"""
from __future__ import annotations

import os
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

# torch.OutOfMemoryError is new in torch 2.5; torch.cuda.OutOfMemoryError is older.
OOM_ERRORS = tuple({getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), torch.cuda.OutOfMemoryError})

# ------------------------------------------------------------------------------ tiers


def quick_from_env() -> bool:
    return os.environ.get("MPTS_BENCH_QUICK", "0").strip().lower() not in ("", "0", "false", "no", "off")


# ------------------------------------------------------------------------------ options and output folders

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
# --quick runs check the pipeline; their files stay out of the committed results
QUICK_DIR = BENCH_DIR.parent / "build" / "bench"


def add_common_options(ap, kind: str, quick_help: str) -> None:
    """--out and --quick, worded the same in every bench command. `kind` names the results folder."""
    ap.add_argument("--out", type=Path, default=None,
                    help=f"folder for the result file (default: bench/results/{kind}/; "
                         f"with --quick: build/bench/{kind}/)")
    ap.add_argument("--quick", action="store_true", help=quick_help)


def out_dir(args, kind: str) -> Path:
    """The folder a command writes to: --out, else bench/results/<kind>/ (build/bench/<kind>/ with --quick)."""
    folder = Path(args.out) if args.out else (QUICK_DIR if args.quick else RESULTS_DIR) / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ------------------------------------------------------------------------------ inputs


def mmd_inputs(n: int, m: int, d: int, device="cpu", dtype=torch.float32, seed: int = 0):
    """Two shifted Gaussian clouds, as leaf tensors that require grad."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    y = torch.randn(m, d, generator=g, dtype=dtype).mul_(1.1).add_(0.1)  # in place: no transients
    return x.to(device).requires_grad_(), y.to(device).requires_grad_()


def snapshot_inputs(S: int, N: int, C: int, device="cpu", dtype=torch.float32, seed: int = 0):
    """(S, N, C) logits: a per-item class preference plus snapshot noise."""
    g = torch.Generator(device=device).manual_seed(seed)
    base = torch.randn(1, N, C, generator=g, device=device, dtype=dtype).mul_(2.0)
    logits = torch.randn(S, N, C, generator=g, device=device, dtype=dtype)
    return logits.add_(base)


def sensitivity_inputs(P: int, K: int, J: int, I: int, device="cpu", dtype=torch.float32, seed: int = 0):
    """MNIST-like inputs in [0, 1] (I = 784 pixels + 1 bias input) and a 1/sqrt(fan-in) network."""
    g = torch.Generator(device=device).manual_seed(seed)
    kw = dict(generator=g, device=device, dtype=dtype)
    x = torch.rand(P, I, **kw)
    V = torch.randn(J, I, **kw).div_(I**0.5)
    b_v = torch.randn(J, **kw).mul_(0.1)
    W = torch.randn(K, J, **kw).div_(J**0.5)
    b_w = torch.randn(K, **kw).mul_(0.1)
    return x, V, b_v, W, b_w


def mmd_fwd_bwd(fn: Callable, x: torch.Tensor, y: torch.Tensor) -> Callable[[], torch.Tensor]:
    """A closure running value = fn(x, y); value.backward() with fresh gradients each call."""

    def run() -> torch.Tensor:
        x.grad = None
        y.grad = None
        value = fn(x, y)
        value.backward()
        return value.detach()

    return run


# ------------------------------------------------------------------------------ floors


def mmd_flops(n: int, m: int, d: int) -> float:
    """Distance GEMMs over the upper triangle of the (n+m)^2 joint matrix, 2 d per pair over
    half the pairs = (n+m)^2 d, plus the gradient's two GEMMs per tile = 2 (n+m)^2 d."""
    N = n + m
    return float(N) * N * d + 2.0 * N * N * d


def snapshot_bytes(S: int, N: int, C: int, itemsize: int = 4) -> float:
    """The logits read once."""
    return float(S) * N * C * itemsize


def sensitivity_flops(P: int, K: int, J: int, I: int) -> float:
    """The (P K x J) @ (J x I) GEMM."""
    return 2.0 * P * K * J * I


def floor_seconds(work: dict[str, float], rates: dict, device: str) -> dict:
    """The floor of `work` ({"flops": ..., "bytes": ...}, either or both): FLOPs at the GEMM rate
    plus bytes at the memory bandwidth, both measured in this run. CPU: measure_cpu_rates (bytes
    at the read bandwidth of a tensor sum); CUDA: measure_cuda_rates (bytes at the bandwidth of a
    device copy, read + write bytes counted, which is what HBM moves in either direction), with the
    stated H100 peaks next to it ("seconds_at_stated_peaks")."""
    flops, nbytes = work.get("flops", 0.0), work.get("bytes", 0.0)
    if torch.device(device).type == "cuda":
        measured = flops / (rates["gemm_fp32_tflops"] * 1e12) + nbytes / (rates["mem_copy_tbs"] * 1e12)
        peak = flops / (H100_STATED["fp32_tflops"] * 1e12) + nbytes / (H100_STATED["mem_tbs"] * 1e12)
        src = "measured in this run: torch.mm FP32 rate and device-copy bandwidth"
        return {**work, "seconds": measured, "seconds_at_stated_peaks": peak, "rate_source": src}
    secs = flops / (rates["gemm_gflops"] * 1e9) + nbytes / (rates["mem_read_gbs"] * 1e9)
    parts = (["FLOPs at the measured torch.mm GEMM rate"] if flops else []) + (
        ["bytes at the measured read bandwidth (400 MB tensor sum)"] if nbytes else [])
    return {**work, "seconds": secs, "rate_source": " + ".join(parts)}


# ------------------------------------------------------------------------------ timing


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_calls(fn: Callable, device="cpu", warmup: int = 1, reps: int = 3) -> dict:
    """Run fn warmup times untimed, then reps times timed. CPU: time.perf_counter, and the share
    of the CPU other processes used during each rep (other_cpu_share_per_rep); CUDA:
    torch.cuda.Event pairs with a synchronize before and after each call. Seconds."""
    is_cuda = torch.device(device).type == "cuda"
    for _ in range(warmup):
        fn()
    sync(device)
    times, shares = [], []
    whole = CpuMonitor().__enter__() if not is_cuda else None
    for _ in range(reps):
        if is_cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            with CpuMonitor() as mon:
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            shares.append(mon.result["other_cpu_share"] if mon.result else None)
    if whole is not None:
        whole.__exit__(None, None, None)
    out = {
        "times_s": times,
        "best_s": min(times),
        "median_s": statistics.median(times),
        "warmup": warmup,
        "reps": reps,
    }
    if shares:
        out["other_cpu_share_per_rep"] = shares
        out["other_cpu_share_all_reps"] = whole.result["other_cpu_share"] if whole.result else None
        best = shares[times.index(min(times))]
        # short reps have no share of their own: fall back to the share over all reps
        out["other_cpu_share_of_best"] = best if best is not None else out["other_cpu_share_all_reps"]
    return out


def _time_once(fn: Callable, is_cuda: bool) -> tuple[float, float | None]:
    """One timed call: (seconds, share of the CPU other processes used during it or None)."""
    if is_cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1e3, None
    with CpuMonitor() as mon:
        t0 = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - t0
    return elapsed, (mon.result["other_cpu_share"] if mon.result else None)


def time_interleaved(fns: dict[str, Callable], device="cpu", warmup: dict[str, int] | int = 1,
                     reps: dict[str, int] | int = 3) -> dict[str, dict]:
    """Time several implementations round-robin: each round runs every fn that still has reps left
    once, so ours and the plain versions see the same load (a load that comes and goes between
    two back-to-back series would move their ratio). warmup / reps: one count for all or per name.
    Returns name -> the same fields as time_calls (times_s, best_s, median_s, warmup, reps and,
    on CPU, other_cpu_share_per_rep / _all_reps / _of_best)."""
    is_cuda = torch.device(device).type == "cuda"
    w = warmup if isinstance(warmup, dict) else {n: warmup for n in fns}
    r = reps if isinstance(reps, dict) else {n: reps for n in fns}
    for name, fn in fns.items():
        for _ in range(w[name]):
            fn()
    sync(device)
    times: dict[str, list] = {n: [] for n in fns}
    shares: dict[str, list] = {n: [] for n in fns}
    for i in range(max(r.values(), default=0)):
        for name, fn in fns.items():
            if i < r[name]:
                t, share = _time_once(fn, is_cuda)
                times[name].append(t)
                shares[name].append(share)
    out = {}
    for name in fns:
        ts = times[name]
        if not ts:
            continue
        e = {"times_s": ts, "best_s": min(ts), "median_s": statistics.median(ts), "warmup": w[name], "reps": r[name],
             "interleaved_with": [n for n in fns if n != name]}
        if not is_cuda:
            known = [x for x in shares[name] if x is not None]
            e["other_cpu_share_per_rep"] = shares[name]
            e["other_cpu_share_all_reps"] = sum(known) / len(known) if known else None
            best = shares[name][ts.index(min(ts))]
            e["other_cpu_share_of_best"] = best if best is not None else e["other_cpu_share_all_reps"]
        out[name] = e
    return out


# ------------------------------------------------------------------------------ contention
#
# Timings on a small shared machine are only as good as its quietness. CpuMonitor reports how
# much CPU *other* processes used while a measurement ran (from /proc/stat minus this
# process's own ticks), and wait_quiet() holds a measurement back until the machine is idle.


def _system_ticks() -> tuple[int, int, int] | None:
    try:
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    vals += [0] * (8 - len(vals))
    total = sum(vals[:8])  # user nice system idle iowait irq softirq steal (guest is in user)
    return total, vals[3] + vals[4], vals[7]


def _self_ticks() -> int | None:
    try:
        with open("/proc/self/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])  # utime + stime of all threads
    except (OSError, ValueError, IndexError):
        return None


class CpuMonitor:
    """with CpuMonitor() as mon: ...; mon.result -> {"other_cpu_share", "steal_share"}: the
    fraction of the machine's CPU capacity used by other processes (and stolen by the
    hypervisor) during the block. None where /proc is unavailable or the block was too short
    to measure."""

    min_ticks = 40  # summed over CPUs: ~0.2 s of wall time on 2 cores at 100 Hz

    def __enter__(self):
        self._sys, self._self = _system_ticks(), _self_ticks()
        self.result = None
        return self

    def __exit__(self, *exc):
        sys1, self1 = _system_ticks(), _self_ticks()
        if None in (self._sys, self._self, sys1, self1):
            return False
        total = sys1[0] - self._sys[0]
        if total < self.min_ticks:  # /proc/stat counts in ticks (10 ms): too short to say
            return False
        busy = total - (sys1[1] - self._sys[1])
        other = max(0, busy - (self1 - self._self))
        self.result = {
            "other_cpu_share": other / total,
            "steal_share": (sys1[2] - self._sys[2]) / total,
        }
        return False


def wait_quiet(max_wait_s: float = 60.0, threshold: float = 0.15, window_s: float = 0.5) -> dict:
    """Sleep in windows until other processes use less than `threshold` of the CPU capacity
    (or max_wait_s passed). Returns {"waited_s", "other_cpu_share"} of the last window."""
    t0 = time.perf_counter()
    share = None
    while True:
        with CpuMonitor() as mon:
            time.sleep(window_s)
        share = mon.result["other_cpu_share"] if mon.result else None
        if share is None or share < threshold or time.perf_counter() - t0 >= max_wait_s:
            return {"waited_s": time.perf_counter() - t0, "other_cpu_share": share}


# ------------------------------------------------------------------------------ machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def slug(text: str) -> str:
    text = re.sub(r"\((R|TM|tm|r)\)", "", text)
    text = re.sub(r"\b(CPU|Processor|\d+-Core)\b", "", text, flags=re.I)
    text = re.sub(r"@.*$", "", text)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def machine_name(device: str) -> str:
    if torch.device(device).type == "cuda":
        return slug(torch.cuda.get_device_name())
    return f"cpu-{slug(cpu_model())}-{cpu_count()}c"


def measure_cpu_rates(reps: int = 5) -> dict:
    """The machine's own rates, measured in this process: float32 GEMM GFLOP/s from torch.mm
    (4096 x 512) @ (512 x 4096), and memory bandwidth from a 400 MB tensor's sum (read) and copy
    (read + write). Best of reps."""
    a = torch.randn(4096, 512)
    b = torch.randn(512, 4096)
    c = torch.empty(4096, 4096)
    mm = time_calls(lambda: torch.mm(a, b, out=c), warmup=2, reps=2 * reps)
    big = torch.ones(100_000_000)  # 400 MB
    dst = torch.empty_like(big)
    rd = time_calls(lambda: big.sum(), warmup=1, reps=reps)
    cp = time_calls(lambda: dst.copy_(big), warmup=1, reps=reps)
    nbytes = big.numel() * 4
    return {
        "gemm_gflops": 2 * 4096 * 512 * 4096 / mm["best_s"] / 1e9,
        "gemm_shape": "(4096x512)@(512x4096) float32",
        "mem_read_gbs": nbytes / rd["best_s"] / 1e9,
        "mem_copy_gbs": 2 * nbytes / cp["best_s"] / 1e9,
        "mem_tensor_mb": nbytes / 1e6,
    }


# Stated H100 (SXM) peaks used for the CUDA floors, next to the measured rates.
H100_STATED = {"mem_tbs": 3.0, "fp32_tflops": 60.0}


def measure_cuda_rates(reps: int = 5) -> dict:
    """float32 GEMM rate from torch.mm 8192^3 (TF32 off), and device-memory bandwidth from a 4 GB
    tensor copy, measured with CUDA events."""
    a = torch.randn(8192, 8192, device="cuda")
    b = torch.randn(8192, 8192, device="cuda")
    c = torch.empty(8192, 8192, device="cuda")
    flops = 2 * 8192**3
    prev = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        fp32 = time_calls(lambda: torch.mm(a, b, out=c), "cuda", warmup=2, reps=reps)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
    del a, b, c
    big = torch.empty(1_000_000_000, device="cuda")  # 4 GB
    dst = torch.empty_like(big)
    cp = time_calls(lambda: dst.copy_(big), "cuda", warmup=1, reps=reps)
    nbytes = big.numel() * 4
    del big, dst
    torch.cuda.empty_cache()
    return {
        "gemm_fp32_tflops": flops / fp32["best_s"] / 1e12,
        "gemm_shape": "8192^3 float32",
        "mem_copy_tbs": 2 * nbytes / cp["best_s"] / 1e12,
    }


def versions() -> dict:
    import mpts_fast
    from mpts_fast import _native

    return {
        "torch": torch.__version__,
        "mpts_fast": getattr(mpts_fast, "__version__", "unknown"),
        "mpts_fast_native_devices": _native.native_devices(),
        "mpts_fast_backend": _native.backend_setting(),
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "cpu_model": cpu_model(),
        "cpu_count": cpu_count(),
    }
