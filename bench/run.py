"""Run the benchmark cases directly and write bench/results/<date>-<machine>.json.

    python bench/run.py                      # CPU, full sizes (several minutes)
    python bench/run.py --quick              # CPU, small sizes (a smoke run)
    python bench/run.py --device cuda        # CUDA float32 (floors-table sizes)
    python bench/run.py --out bench/results --no-mem

Every case times mpts_fast's op next to the plain-PyTorch versions in bench/baselines.py in
this one process (time.perf_counter on CPU, CUDA events on GPU; warmup, then best and median of
k; ratios and floor fractions use the best time). Ratios are plain / ours (> 1: ours faster).
The floor of a case is the time its unavoidable work takes at the machine's rate: FLOPs over
the GEMM rate (rbf_mmd2, sensitivity) or bytes over the memory bandwidth (snapshot). On CPU the
rates are measured in the same run; on CUDA the stated H100 peaks are used, next to the
measured mm rate. "of floor" = floor time / measured time (1.0 = at the floor).

Peak extra memory: on CPU from a fresh subprocess per measurement (bench/mem_probe.py,
ru_maxrss growth); on CUDA from torch.cuda.max_memory_allocated in process.
A markdown table of the results is printed at the end.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import baselines  # noqa: E402
import harness  # noqa: E402
from mpts_fast import ops  # noqa: E402


CONTENDED = 0.10  # share of the CPU used by other processes above which a timing is flagged


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Runner:
    def __init__(self, device: str, quick: bool, mem: bool, big: bool, quiet_wait_s: float = 20.0):
        self.device = device
        self.is_cuda = device == "cuda"
        self.quick = quick
        self.mem = mem
        self.big = big
        self.quiet_wait_s = quiet_wait_s
        self.sz = harness.sizes_for(device, quick)
        # repetitions: (warmup, reps) for ours and for the (slow) plain versions
        self.fast = (1, 5) if quick or self.is_cuda else (1, 3)
        self.slow = (1, 3) if quick or self.is_cuda else (0, 2)

    # ---------------------------------------------------------------- helpers

    def timed(self, fn, reps) -> dict:
        warmup, k = reps
        if self.is_cuda:
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        quiet = harness.wait_quiet(self.quiet_wait_s) if self.quiet_wait_s > 0 and not self.is_cuda else None
        r = harness.time_calls(fn, self.device, warmup, k)
        if quiet is not None:
            r["waited_for_quiet_s"] = round(quiet["waited_s"], 2)
        # CPU: if other processes were busy during every rep, wait for quiet and add up to two reps
        extra = 0
        while (r.get("other_cpu_share_of_best") or 0) > CONTENDED and extra < 2 and not self.is_cuda:
            extra += 1
            log(f"  other processes used {r['other_cpu_share_of_best']:.0%} of the CPU during the best rep; one more rep")
            if self.quiet_wait_s > 0:
                harness.wait_quiet(self.quiet_wait_s)
            more = harness.time_calls(fn, self.device, 0, 1)
            r["times_s"] += more["times_s"]
            r["other_cpu_share_per_rep"] += more["other_cpu_share_per_rep"]
            r["reps"] += 1
            r["best_s"] = min(r["times_s"])
            r["median_s"] = statistics.median(r["times_s"])
            best = r["other_cpu_share_per_rep"][r["times_s"].index(r["best_s"])]
            r["other_cpu_share_of_best"] = best if best is not None else r["other_cpu_share_of_best"]
        if (r.get("other_cpu_share_of_best") or 0) > CONTENDED:
            log(f"  warning: other processes used {r['other_cpu_share_of_best']:.0%} of the CPU during the best rep")
        if self.is_cuda:
            r["peak_extra_mb"] = (torch.cuda.max_memory_allocated() - base) / 1e6
        return r

    def try_timed(self, fn, reps) -> dict:
        """timed(), recording an out-of-memory instead of failing the run."""
        try:
            return self.timed(fn, reps)
        except harness.OOM_ERRORS as exc:
            gc.collect()
            if self.is_cuda:
                torch.cuda.empty_cache()
            return {"error": "out of memory", "detail": str(exc).splitlines()[0]}

    def probe(self, *args: str) -> dict | None:
        """Peak extra host memory of one call in a fresh process (CPU only)."""
        if self.is_cuda or not self.mem:
            return None
        cmd = [sys.executable, os.path.join(HERE, "mem_probe.py"), *args]
        log("  mem probe: " + " ".join(args))
        if self.quiet_wait_s > 0:
            harness.wait_quiet(self.quiet_wait_s)
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            return {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"rc {res.returncode}"}
        return json.loads(res.stdout.strip().splitlines()[-1])

    @staticmethod
    def attach_mem(entry: dict, probe: dict | None) -> None:
        if probe is None:
            return
        if "error" in probe:
            entry["peak_extra_mb_error"] = probe["error"]
        else:
            entry["peak_extra_mb"] = probe["peak_extra_mb"]
            entry["mem_probe"] = probe

    def finish(self, case: dict) -> dict:
        """Ratios (plain / ours) and floor fractions from the best times."""
        floor_s = case["floor"]["seconds"]
        ours = case["ours"]
        work = case["floor"]["amount"]
        unit = case["floor"]["kind"]
        scale = 1e9
        for entry in [ours, *case["baselines"].values(), *case.get("references", {}).values()]:
            t = entry.get("extrapolated_s", entry.get("best_s"))
            if t is None:
                continue
            entry["fraction_of_floor"] = floor_s / t
            entry["gflops" if unit == "flops" else "gbs"] = work / t / scale
            if entry is not ours and ours.get("best_s"):
                entry["ratio_vs_ours"] = t / ours["best_s"]
            for key, secs in case["floor"].items():  # CUDA: floors at the measured rates too
                if key.startswith("seconds_at_"):
                    entry["fraction_of_floor_at_" + key[len("seconds_at_"):]] = secs / t
        return case

    def free(self) -> None:
        gc.collect()
        if self.is_cuda:
            torch.cuda.empty_cache()

    # ---------------------------------------------------------------- floors

    def flops_floor(self, flops: float, tf32: bool = False) -> dict:
        if self.is_cuda:
            peak = harness.H100_STATED["tf32_tflops" if tf32 else "fp32_tflops"] * 1e12
            measured = self.rates["gemm_tf32_tflops" if tf32 else "gemm_fp32_tflops"] * 1e12
            return {
                "kind": "flops",
                "amount": flops,
                "rate": peak,
                "rate_source": f"stated H100 {'TF32' if tf32 else 'FP32'} peak",
                "seconds": flops / peak,
                "seconds_at_measured_mm_rate": flops / measured,
            }
        rate = self.rates["gemm_gflops"] * 1e9
        return {"kind": "flops", "amount": flops, "rate": rate, "rate_source": "measured torch.mm GEMM rate", "seconds": flops / rate}

    def bytes_floor(self, nbytes: float) -> dict:
        if self.is_cuda:
            peak = harness.H100_STATED["mem_tbs"] * 1e12
            measured = self.rates["mem_copy_tbs"] * 1e12
            return {
                "kind": "bytes",
                "amount": nbytes,
                "rate": peak,
                "rate_source": "stated H100 HBM bandwidth",
                "seconds": nbytes / peak,
                "seconds_at_measured_copy_rate": nbytes / measured,
            }
        rate = self.rates["mem_read_gbs"] * 1e9
        return {"kind": "bytes", "amount": nbytes, "rate": rate, "rate_source": "measured 400 MB tensor sum (read)", "seconds": nbytes / rate}

    # ---------------------------------------------------------------- cases

    def case_mmd(self, n: int, tf32: bool = False, with_plain: bool = True) -> dict:
        d = self.sz.mmd_d
        label = f"rbf_mmd2 fwd+bwd n=m={n} d={d}" + (" TF32" if tf32 else "")
        log(label)
        prev = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            x, y = harness.mmd_inputs(n, n, d, self.device)
            run_ours = harness.mmd_fwd_bwd(ops.rbf_mmd2, x, y)
            ours = self.try_timed(run_ours, self.fast)
            ours["value"] = float(run_ours()) if "error" not in ours else None
            case = {
                "name": "rbf_mmd2" + ("_tf32" if tf32 else ""),
                "label": label,
                "sizes": {"n": n, "m": n, "d": d, "bandwidths": 5},
                "dtype": "float32",
                "allow_tf32": tf32,
                "floor": self.flops_floor(harness.mmd_flops(n, n, d), tf32),
                "ours": ours,
                "baselines": {},
            }
            self.attach_mem(ours, self.probe("mmd", "ours", "--n", str(n), "--d", str(d)))
            if with_plain:
                for name, fn in (("three_blocks", baselines.mmd2_three_blocks), ("concat_cdist", baselines.mmd2_concat_cdist)):
                    log(f"  plain {name}")
                    self.free()
                    run = harness.mmd_fwd_bwd(fn, x, y)
                    entry = self.try_timed(run, self.slow)
                    if "error" not in entry:
                        entry["value"] = float(run())
                    self.attach_mem(entry, self.probe("mmd", name, "--n", str(n), "--d", str(d)))
                    case["baselines"][name] = entry
            del x, y, run_ours
        finally:
            torch.backends.cuda.matmul.allow_tf32 = prev
        self.free()
        return self.finish(case)

    def case_mmd_big_cpu(self) -> dict:
        """Memory-scale case on CPU: one forward+backward of ours in a fresh process."""
        n, d = self.sz.mmd_big_n, self.sz.mmd_d
        label = f"rbf_mmd2 fwd+bwd n=m={n} d={d} (memory scale, ours only)"
        log(label + " -- one run in a subprocess")
        probe = self.probe("mmd", "ours", "--n", str(n), "--d", str(d))
        ours: dict = {"reps": 1, "warmup": 0}
        if probe is not None and "error" not in probe:
            ours.update(best_s=probe["time_s"], median_s=probe["time_s"], times_s=[probe["time_s"]])
            if probe.get("other_cpu_share") is not None:
                ours["other_cpu_share_of_best"] = probe["other_cpu_share"]
        self.attach_mem(ours, probe)
        N = 2 * n
        case = {
            "name": "rbf_mmd2_memory_scale",
            "label": label,
            "sizes": {"n": n, "m": n, "d": d, "bandwidths": 5},
            "dtype": "float32",
            "floor": self.flops_floor(harness.mmd_flops(n, n, d)),
            "ours": ours,
            "baselines": {},
            "notes": [
                f"plain versions not run: one dense (n+m)^2 float32 matrix is {N * N * 4 / 1e9:.1f} GB and they hold several",
                "time is a single cold run in a fresh process (the same run the memory is measured on)",
                f"inputs {2 * n * d * 4 / 1e6:.0f} MB; the growth includes x.grad and y.grad ({2 * n * d * 4 / 1e6:.0f} MB)",
            ],
        }
        if probe is None or "error" in probe:
            case["notes"].append("not measured" if probe is None else f"failed: {probe['error']}")
            return case
        return self.finish(case)

    def case_snapshot(self) -> dict:
        S, N, C = self.sz.snap_S, self.sz.snap_N, self.sz.snap_C
        label = f"snapshot_uncertainty S={S} N={N} C={C}"
        log(label)
        logits = harness.snapshot_inputs(S, N, C, self.device)
        ours = self.timed(lambda: ops.snapshot_uncertainty(logits), self.fast)
        self.attach_mem(ours, self.probe("snapshot", "ours", "--S", str(S), "--N", str(N), "--C", str(C)))
        case = {
            "name": "snapshot_uncertainty",
            "label": label,
            "sizes": {"S": S, "N": N, "C": C},
            "dtype": "float32",
            "floor": self.bytes_floor(harness.snapshot_bytes(S, N, C)),
            "ours": ours,
            "baselines": {},
            "notes": ["ours computes all five scores in every comparison, including the entropy-only one"],
        }
        for name, fn, impl in (
            ("plain_five_scores", baselines.snapshot_scores_plain, "plain_five"),
            ("plain_entropy_only", baselines.snapshot_entropy_plain, "plain_entropy"),
        ):
            log(f"  plain {name}")
            self.free()
            entry = self.try_timed(lambda: fn(logits), self.fast)
            self.attach_mem(entry, self.probe("snapshot", impl, "--S", str(S), "--N", str(N), "--C", str(C)))
            case["baselines"][name] = entry
        # agreement (not asserted here; the tests own correctness)
        mine = ops.snapshot_uncertainty(logits)
        plain = baselines.snapshot_scores_plain(logits)
        case["max_abs_diff_vs_plain"] = {
            f: float((a - b).abs().max()) for f, a, b in zip(mine._fields, mine, plain)
        }
        del logits, mine, plain
        self.free()
        return self.finish(case)

    def case_sensitivity(self) -> dict:
        sz = self.sz
        P, K, J, I, chunk = sz.sens_P, sz.sens_K, sz.sens_J, sz.sens_I, sz.sens_chunk
        label = f"sensitivity l1 P={P} K={K} J={J} I={I}"
        log(label)
        args = harness.sensitivity_inputs(P, K, J, I, self.device)
        small = harness.sensitivity_inputs(64, K, J, I, self.device, seed=1)
        ops.sensitivity(*small)  # thread pools / cuBLAS handles, outside the timing
        baselines.sensitivity_einsum_chunked(*small)
        slow = self.slow if not self.is_cuda else self.fast
        ours = self.timed(lambda: ops.sensitivity(*args, norm="l1"), slow)
        self.attach_mem(ours, self.probe("sensitivity", "ours", "--P", str(min(P, 6000))))
        case = {
            "name": "sensitivity",
            "label": label,
            "sizes": {"P": P, "K": K, "J": J, "I": I, "norm": "l1", "baseline_chunk": chunk},
            "dtype": "float32",
            "floor": self.flops_floor(harness.sensitivity_flops(P, K, J, I)),
            "ours": ours,
            "baselines": {},
            "references": {},
            "notes": [
                "gflops = 2 P K J I / time for every entry (the nominal GEMM work)",
                f"peak extra memory measured at P={min(P, 6000)} (chunked implementations: memory does not grow with P beyond the (P,) output)",
            ],
        }
        log("  plain einsum_chunked")
        entry = self.timed(lambda: baselines.sensitivity_einsum_chunked(*args, chunk=chunk), slow)
        self.attach_mem(entry, self.probe("sensitivity", "einsum", "--P", str(min(P, 6000)), "--chunk", str(chunk)))
        case["baselines"]["einsum_chunked"] = entry

        log("  torch.mm at the same GEMM shape")
        A = torch.randn(chunk * K, J, device=self.device)
        V = args[1]
        baselines.gemm_same_shape_chunked(A, V, chunk, K, chunk)
        ref = self.timed(lambda: baselines.gemm_same_shape_chunked(A, V, P, K, chunk), slow)
        ref["what"] = f"torch.mm (P*K x J) @ (J x I) in chunks of {chunk} patterns: the GEMM alone, no epilogue"
        case["references"]["torch_mm_same_gemm"] = ref
        del A, V

        jP = sz.sens_jac_P
        log(f"  plain autograd_jacobian on P={jP}")
        sub = tuple(t if i else t[:jP].contiguous() for i, t in enumerate(args))
        jac = self.timed(lambda: baselines.sensitivity_autograd_jacobian(*sub), (1, 2))
        jac["measured_P"] = jP
        jac["measured_best_s"] = jac["best_s"]
        jac["extrapolated_s"] = jac["best_s"] * P / jP
        jac["extrapolated"] = True
        jac["what"] = f"timed on {jP} patterns, extrapolated linearly to P={P} (per-pattern cost {jac['best_s'] / jP * 1e3:.3f} ms)"
        case["baselines"]["autograd_jacobian (extrapolated)"] = jac

        # agreement on a slice
        a = ops.sensitivity(*sub, norm="l1")
        b = baselines.sensitivity_einsum_chunked(*sub, chunk=chunk)
        c = baselines.sensitivity_autograd_jacobian(*sub)
        case["max_rel_diff_vs_plain"] = {
            "einsum": float(((a - b).abs() / b.abs()).max()),
            "autograd_jacobian": float(((a - c).abs() / c.abs()).max()),
        }
        del args, sub
        self.free()
        return self.finish(case)

    # ---------------------------------------------------------------- run

    def run(self) -> dict:
        log(f"measuring {self.device} rates")
        if self.quiet_wait_s > 0 and not self.is_cuda:
            harness.wait_quiet(self.quiet_wait_s)
        self.rates = harness.measure_cuda_rates() if self.is_cuda else harness.measure_cpu_rates()
        log("rates: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.rates.items()))
        cases = []
        if self.is_cuda:
            torch.backends.cuda.matmul.allow_tf32 = False  # FP32 unless a case asks for TF32
            # plain versions only fit at the comparison size; ours also at the floors-table size
            for tf32 in (False, True):
                cases.append(self.case_mmd(self.sz.mmd_n, tf32=tf32, with_plain=True))
            for tf32 in (False, True):
                cases.append(self.case_mmd(self.sz.mmd_big_n, tf32=tf32, with_plain=False))
        else:
            cases.append(self.case_mmd(self.sz.mmd_n))
        cases.append(self.case_snapshot())
        cases.append(self.case_sensitivity())
        if not self.is_cuda and self.big and self.mem:
            cases.append(self.case_mmd_big_cpu())
        return {"rates": self.rates, "cases": cases}


# -------------------------------------------------------------------------- output


def fmt_time(t) -> str:
    if t is None:
        return "-"
    return f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def rates_line(result: dict) -> str:
    r = result["rates"]
    if result["device"] == "cuda":
        p = result["stated_peaks_h100"]
        return (
            f"Floors from the stated H100 peaks: {p['mem_tbs']} TB/s, {p['fp32_tflops']} TFLOP/s FP32, "
            f"{p['tf32_tflops']} TFLOP/s TF32. Measured here: torch.mm {r['gemm_fp32_tflops']:.1f} TFLOP/s FP32, "
            f"{r['gemm_tf32_tflops']:.1f} TFLOP/s TF32, copy {r['mem_copy_tbs']:.2f} TB/s."
        )
    return (
        f"Floors from rates measured in this run: torch.mm {r['gemm_shape']} {r['gemm_gflops']:.0f} GFLOP/s; "
        f"memory read (sum of a {r['mem_tensor_mb']:.0f} MB tensor) {r['mem_read_gbs']:.1f} GB/s "
        f"(copy {r['mem_copy_gbs']:.1f} GB/s)."
    )


def markdown(result: dict) -> str:
    lines = [
        f"Machine: {result['machine']} ({result['device_desc']}), torch {result['versions']['torch']}, "
        f"mpts_fast {result['versions']['mpts_fast']}, {result['versions']['torch_threads']} threads"
        + (" — quick sizes" if result["quick"] else ""),
        "",
        rates_line(result),
        "",
        "| case | implementation | time | plain / ours | rate | floor | of floor | peak extra MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case in result["cases"]:
        floor = case["floor"]
        unit = "GFLOP/s" if floor["kind"] == "flops" else "GB/s"
        key = "gflops" if floor["kind"] == "flops" else "gbs"
        entries = [("mpts_fast", case["ours"])]
        entries += [(k, v) for k, v in case["baselines"].items()]
        entries += [(k, v) for k, v in case.get("references", {}).items()]
        for i, (name, e) in enumerate(entries):
            if "error" in e:
                lines.append(f"| {case['label'] if i == 0 else ''} | {name} | {e['error']} | | | | | |")
                continue
            t = e.get("extrapolated_s", e.get("best_s"))
            time_s = fmt_time(t) + (" (extrap.)" if e.get("extrapolated") else "")
            if (e.get("other_cpu_share_of_best") or 0) > CONTENDED:
                time_s += " †"
            ratio = "1.00" if e is case["ours"] else (f"{e['ratio_vs_ours']:.2f}" if "ratio_vs_ours" in e else "-")
            if name.startswith("torch_mm"):
                ratio = f"({e['ratio_vs_ours']:.2f})" if "ratio_vs_ours" in e else "-"
            rate = f"{e[key]:.1f} {unit}" if key in e else "-"
            of_floor = f"{e['fraction_of_floor']:.2f}" if "fraction_of_floor" in e else "-"
            mem = f"{e['peak_extra_mb']:.0f}" if "peak_extra_mb" in e else "-"
            lines.append(
                f"| {case['label'] if i == 0 else ''} | {name} | {time_s} | {ratio} | {rate} | "
                f"{fmt_time(floor['seconds']) if i == 0 else ''} | {of_floor} | {mem} |"
            )
    lines += [
        "",
        "time: best of k runs. plain / ours > 1 means mpts_fast is faster; (torch.mm) is the bare GEMM "
        "of the same shape, a yardstick rather than a plain version. floor: FLOPs at the GEMM rate or "
        "bytes at the memory bandwidth; of floor = floor / time. † other processes used over 10% of "
        "the CPU during the best run of that measurement.",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (also MPTS_BENCH_QUICK=1)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="folder for the JSON result")
    ap.add_argument("--no-mem", action="store_true", help="skip the subprocess memory probes (CPU)")
    ap.add_argument("--no-big", action="store_true", help="skip the CPU memory-scale rbf_mmd2 case (minutes)")
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="CPU: before each measurement wait up to this many seconds for other processes to leave the CPU idle (0: do not wait)",
    )
    a = ap.parse_args(argv)
    quick = a.quick or harness.quick_from_env()
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device available")
    if a.device == "cuda" and "cuda" not in harness.versions()["mpts_fast_native_devices"]:
        sys.exit("--device cuda: mpts_fast was built without CUDA kernels (it would time its reference)")

    started = datetime.datetime.now()
    t0 = time.perf_counter()
    runner = Runner(a.device, quick, mem=not a.no_mem, big=not a.no_big, quiet_wait_s=a.quiet_wait)
    body = runner.run()
    machine = harness.machine_name(a.device)
    result = {
        "date": started.strftime("%Y-%m-%d"),
        "started": started.isoformat(timespec="seconds"),
        "wall_s": time.perf_counter() - t0,
        "machine": machine,
        "device": a.device,
        "device_desc": torch.cuda.get_device_name() if a.device == "cuda" else f"{harness.cpu_model()}, {harness.cpu_count()} cores",
        "quick": quick,
        "versions": harness.versions(),
        "loadavg_end": os.getloadavg(),
        "timing": "best and median of k after warmup; ratios and floor fractions from the best",
        **({"stated_peaks_h100": harness.H100_STATED} if a.device == "cuda" else {}),
        **body,
    }
    if a.device == "cuda":
        result["versions"]["cuda"] = torch.version.cuda
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, f"{result['date']}-{machine}{'-quick' if quick else ''}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    log(f"wrote {path} ({result['wall_s']:.0f} s)")
    print(markdown(result))


if __name__ == "__main__":
    main()
