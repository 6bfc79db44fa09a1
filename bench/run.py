"""Time the benchmark cases of bench/cases.py and write bench/results/{cpu,gpu}/<date>-<machine>.json
(`python -m bench ops` runs this file; the examples below work either way).

    python bench/run.py                          # CPU, full sizes (~10 min on 2 cores)
    python bench/run.py --quick                  # CPU, small sizes (~2 min), written under build/bench/cpu/
    python bench/run.py --device cuda            # CUDA float32 (floors-table sizes)
    python bench/run.py --cases sensitivity,sensitivity_study_iris --no-mem
    python bench/run.py --cases kcenter_greedy,badge_select --tag select   # case or op names
    python bench/run.py --list                   # the registry: cases, tiers, implementations
    python bench/run.py --device cuda --gpu-check --json OUT/bench.json   # gpu-check's stage (verdicts)
    python bench/run.py --smoke --cases rbf_mmd2 # every named case at tiny sizes, one rep (a smoke run)

Every case times mpts_fast's op next to the plain versions it replaces in this one process
(time.perf_counter on CPU, CUDA events on GPU; warm-up, then best and median of k; ratios and
floor fractions use the best time). On CPU the implementations of a case run round-robin, one
call each per round, so a load that comes and goes affects ours and plain alike. Ratios are plain / ours (> 1: ours faster). Slow baselines
that run only part of the work (a prefix of the picks, a few patterns) are scaled to the whole
(marked "extrap.", the model in the case's notes). The floor of a case is the time its
unavoidable work takes at the machine's rate: FLOPs at the GEMM rate plus bytes at the memory
bandwidth, both measured in the same run (CPU: a tensor sum's read bandwidth; CUDA: a device copy's
bandwidth, the stated H100 peaks beside it). "of floor" = floor time / measured time (1.0 = at the floor).

--gpu-check judges every case (its "verdict"): pass when plain / ours >= the case's target ratio
(against its first plain version), ours within FLOOR_FACTOR x its floor, and every plain version
that is checked agrees with ours. The JSON is rewritten after every case, so a run cut short
keeps the cases that finished.

Peak extra memory: on CPU from a fresh subprocess per measured implementation (bench/mem_probe.py);
on CUDA from torch.cuda.max_memory_allocated in process. Memory-scale cases (ours only) run on CPU
as one call in a fresh process (--no-big skips them). A markdown table is printed at the end.
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

import cases as registry  # noqa: E402
import harness  # noqa: E402

CONTENDED = 0.10  # share of the CPU used by other processes above which a timing is flagged
FLOOR_FACTOR = 2.0  # --gpu-check: ours must run within this multiple of its floor


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Runner:
    def __init__(self, device: str, tier: str, mem: bool, big: bool, quiet_wait_s: float = 20.0,
                 names: list[str] | None = None, smoke: bool = False, on_case=None):
        self.smoke = smoke
        self.on_case = on_case  # called with the list of finished cases after each one
        self.device = device
        self.is_cuda = device == "cuda"
        self.tier = tier
        self.mem = mem and not self.is_cuda
        self.big = big
        self.quiet_wait_s = quiet_wait_s if not self.is_cuda else 0.0
        self.names = names

    # ---------------------------------------------------------------- timing

    def timed(self, fn, reps: tuple[int, int]) -> dict:
        warmup, k = reps
        if self.is_cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        quiet = harness.wait_quiet(self.quiet_wait_s) if self.quiet_wait_s > 0 else None
        r = harness.time_calls(fn, self.device, warmup, k)
        if quiet is not None:
            r["waited_for_quiet_s"] = round(quiet["waited_s"], 2)
        # CPU: if other processes were busy during the best rep, wait for quiet and add up to two reps
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
            self.free()
            return {"error": "out of memory", "detail": str(exc).splitlines()[0]}

    def probe(self, case: registry.Case, impl: str) -> dict | None:
        """Peak extra host memory (and time) of one call in a fresh process (CPU only)."""
        if not self.mem:
            return None
        sets = [f"{k}={v}" for k, v in case.mem_sizes.items()]
        cmd = [sys.executable, os.path.join(HERE, "mem_probe.py"), case.name, impl, "--tier", self.tier]
        for s in sets:
            cmd += ["--set", s]
        log(f"  mem probe: {case.name} {impl} {' '.join(sets)}")
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

    def free(self) -> None:
        gc.collect()
        if self.is_cuda:
            torch.cuda.empty_cache()

    # ---------------------------------------------------------------- cases

    def header(self, case: registry.Case, sz: dict) -> dict:
        return {
            "name": case.name,
            "op": case.op,
            "label": case.label(sz),
            "sizes": sz,
            "dtype": "float32",
            "target_ratio": case.target_ratio,
            "floor": harness.floor_seconds(case.floor(sz), self.rates, self.device),
            "baselines": {},
            "references": {},
            "notes": list(case.notes),
        }

    def timed_interleaved(self, calls: dict, reps: dict[str, tuple[int, int]]) -> dict[str, dict]:
        """CPU: ours and the plain versions round-robin (harness.time_interleaved), so a load that
        comes and goes hits them alike; up to two more rounds when the best rep of any was disturbed."""
        if self.quiet_wait_s > 0:
            harness.wait_quiet(self.quiet_wait_s)
        res = harness.time_interleaved(calls, "cpu", {n: r[0] for n, r in reps.items()}, {n: r[1] for n, r in reps.items()})
        for extra in range(0 if self.smoke else 2):
            busy = {n: e["other_cpu_share_of_best"] for n, e in res.items() if (e.get("other_cpu_share_of_best") or 0) > CONTENDED}
            if not busy:
                break
            log(f"  other processes used {max(busy.values()):.0%} of the CPU during a best rep; one more round")
            if self.quiet_wait_s > 0:
                harness.wait_quiet(self.quiet_wait_s)
            more = harness.time_interleaved(calls, "cpu", 0, 1)
            for n, e in res.items():
                m = more[n]
                e["times_s"] += m["times_s"]
                e["other_cpu_share_per_rep"] += m["other_cpu_share_per_rep"]
                e["reps"] += 1
                e["best_s"] = min(e["times_s"])
                e["median_s"] = statistics.median(e["times_s"])
                best = e["other_cpu_share_per_rep"][e["times_s"].index(e["best_s"])]
                e["other_cpu_share_of_best"] = best if best is not None else e["other_cpu_share_of_best"]
        for n, e in res.items():
            if (e.get("other_cpu_share_of_best") or 0) > CONTENDED:
                log(f"  warning: other processes used {e['other_cpu_share_of_best']:.0%} of the CPU during {n}'s best rep")
            if len(e["times_s"]) > 20:  # the tiny cases' hundreds of reps
                e.pop("times_s")
                e.pop("other_cpu_share_per_rep")
        return res

    def run_case(self, case: registry.Case, sz: dict) -> dict:
        out = self.header(case, sz)
        log(out["label"])
        inputs = case.make_inputs(sz, self.device)
        impls = case.impls()
        last: dict[str, list] = {impl.name: [None] for _, impl in impls}
        calls = {}
        for _, impl in impls:
            def call(closure=impl.make(inputs, sz), holder=last[impl.name]):
                holder[0] = closure()
                return holder[0]

            calls[impl.name] = call
        reps = {impl.name: (0, 1) if self.smoke else case.reps["slow" if impl.slow else "fast"] for _, impl in impls}
        if self.is_cuda:  # one at a time: each its own peak device memory (and an OOM of its own)
            entries = {}
            for name, call in calls.items():
                log(f"  {name}")
                self.free()
                entries[name] = self.try_timed(call, reps[name])
        else:
            log("  interleaved: " + ", ".join(calls))
            entries = self.timed_interleaved(calls, reps)
        ours_result = last[case.ours.name][0]
        for role, impl in impls:
            entry = entries[impl.name]
            entry["what"] = impl.what
            result = last[impl.name][0]
            if "error" not in entry:
                if impl.scale is not None:
                    scale = impl.scale(sz, result)
                    if scale != 1.0:
                        entry["measured_best_s"] = entry["best_s"]
                        entry["extrapolated_s"] = entry["best_s"] * scale
                        entry["extrapolated"] = True
                if role != "ours" and impl.check is not None and ours_result is not None:
                    try:
                        impl.check(inputs, sz, result, ours_result)
                        entry["agrees_with_ours"] = True
                    except AssertionError as exc:
                        entry["agrees_with_ours"] = False
                        entry["disagreement"] = str(exc).splitlines()[0]
                        log(f"  warning: {impl.name} disagrees with ours: {entry['disagreement']}")
            if role == "ours":
                out["ours"] = entry
            else:
                out["baselines" if role == "plain" else "references"][impl.name] = entry
        del calls, last, inputs, ours_result
        self.free()
        for role, impl in impls:  # fresh processes, after this one's inputs are freed
            if impl.name in case.mem_probe:
                entry = out["ours"] if role == "ours" else out["baselines" if role == "plain" else "references"][impl.name]
                self.attach_mem(entry, self.probe(case, impl.name))
        return self.finish(out)

    def run_fresh(self, case: registry.Case, sz: dict) -> dict:
        """Memory-scale case on CPU: one call of ours in a fresh process."""
        out = self.header(case, sz)
        log(out["label"] + " -- one run in a subprocess")
        mem, self.mem = self.mem, True
        probe = self.probe(case, case.ours.name)
        self.mem = mem
        ours: dict = {"reps": 1, "warmup": 0, "what": case.ours.what}
        if "error" not in probe:
            ours.update(best_s=probe["time_s"], median_s=probe["time_s"], times_s=[probe["time_s"]])
            if probe.get("other_cpu_share") is not None:
                ours["other_cpu_share_of_best"] = probe["other_cpu_share"]
        self.attach_mem(ours, probe)
        out["ours"] = ours
        out["notes"].append(f"inputs {probe.get('input_mb', 0):.0f} MB; time: one cold call in a fresh process")
        if "error" in probe:
            out["notes"].append(f"failed: {probe['error']}")
            return out
        return self.finish(out)

    def finish(self, case: dict) -> dict:
        """Ratios (plain / ours), rates and floor fractions from the best (or extrapolated) times."""
        floor = case["floor"]
        ours = case["ours"]
        ours_t = ours.get("best_s")
        only = "gflops" if "bytes" not in floor else ("gbs" if "flops" not in floor else None)
        for entry in [ours, *case["baselines"].values(), *case["references"].values()]:
            t = entry.get("extrapolated_s", entry.get("best_s"))
            if t is None:
                continue
            entry["fraction_of_floor"] = floor["seconds"] / t
            if "seconds_at_stated_peaks" in floor:
                entry["fraction_of_floor_at_stated_peaks"] = floor["seconds_at_stated_peaks"] / t
            if only:
                entry[only] = floor["flops" if only == "gflops" else "bytes"] / t / 1e9
            if entry is not ours and ours_t:
                entry["ratio_vs_ours"] = t / ours_t
        return case

    def run(self) -> dict:
        log(f"measuring {self.device} rates")
        if self.quiet_wait_s > 0:
            harness.wait_quiet(self.quiet_wait_s)
        if self.smoke and not self.is_cuda:  # the times of a smoke run mean nothing; its floors need some rate
            self.rates = {"gemm_gflops": 10.0, "gemm_shape": "nominal (smoke run, not measured)", "mem_read_gbs": 10.0,
                          "mem_copy_gbs": 10.0, "mem_tensor_mb": 0.0}
        else:
            reps = 1 if self.smoke else 5
            self.rates = harness.measure_cuda_rates(reps) if self.is_cuda else harness.measure_cpu_rates(reps)
        log("rates: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.rates.items()))
        if self.is_cuda:
            torch.backends.cuda.matmul.allow_tf32 = False  # FP32: our ops never use TF32, nor do their plain versions here
        results: list[dict] = []
        if self.smoke:
            # a name that is a case's own picks that case alone here (an op name picks all its cases)
            names = set(self.names or ())
            exact = names & {c.name for c in registry.CASES}
            todo = [(c, c.smoke_sizes()) for c in registry.CASES
                    if not names or c.name in names or (c.op in names and c.op not in exact)]
        else:
            todo = registry.cases_for(self.device, self.tier, self.names)
        for case, sz in todo:
            if case.fresh_process and not self.is_cuda:
                if self.big and not self.smoke:
                    results.append(self.run_fresh(case, sz))
                continue
            results.append(self.run_case(case, sz))
            if self.on_case is not None:
                self.on_case(results)
        return {"rates": self.rates, "cases": results}


def judge_case(case: dict) -> dict:
    """gpu-check's verdict on one finished case: plain / ours against the target ratio (first plain
    version), ours against FLOOR_FACTOR x its floor, and agreement of the checked plain versions."""
    ours = case.get("ours", {})
    t = ours.get("best_s")
    problems, v = [], {}
    if t is None:
        return {"status": "fail", "problems": [f"ours did not run: {ours.get('error', 'no time')}"]}
    target = case.get("target_ratio")
    plain = next(iter(case["baselines"].items()), None)
    if target is not None and plain is not None:
        name, entry = plain
        ratio = entry.get("ratio_vs_ours")
        v["ratio"] = ratio
        v["ratio_target"] = target
        v["ratio_against"] = name
        if ratio is None:
            problems.append(f"{name} has no time ({entry.get('error', 'not run')})")
        elif ratio < target:
            problems.append(f"plain / ours {ratio:.2f} < {target} ({name})")
    floor_s = case["floor"]["seconds"]
    v["times_floor"] = t / floor_s if floor_s > 0 else None
    if floor_s > 0 and t > FLOOR_FACTOR * floor_s:
        problems.append(f"{t / floor_s:.2f}x its floor > {FLOOR_FACTOR}x")
    for name, entry in case["baselines"].items():
        if entry.get("agrees_with_ours") is False:
            problems.append(f"{name} disagrees with ours: {entry.get('disagreement')}")
    return {"status": "fail" if problems else "pass", "problems": problems, **v}


# -------------------------------------------------------------------------- output


def fmt_time(t) -> str:
    if t is None:
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.0f} µs"
    return f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def rates_line(result: dict) -> str:
    r = result["rates"]
    if result["device"] == "cuda":
        p = result["stated_peaks_h100"]
        return (f"Floors from rates measured in this run: torch.mm {r['gemm_fp32_tflops']:.1f} TFLOP/s FP32, device copy "
                f"{r['mem_copy_tbs']:.2f} TB/s (read + write). Stated H100 peaks: {p['mem_tbs']} TB/s, {p['fp32_tflops']} TFLOP/s FP32.")
    return (f"Floors from rates measured in this run: torch.mm {r['gemm_shape']} {r['gemm_gflops']:.0f} GFLOP/s; "
            f"memory read (sum of a {r['mem_tensor_mb']:.0f} MB tensor) {r['mem_read_gbs']:.1f} GB/s "
            f"(copy {r['mem_copy_gbs']:.1f} GB/s).")


def markdown(result: dict) -> str:
    lines = [
        f"Machine: {result['machine']} ({result['device_desc']}), torch {result['versions']['torch']}, "
        f"mpts_fast {result['versions']['mpts_fast']}, {result['versions']['torch_threads']} threads, {result['tier']} sizes",
        "",
        rates_line(result),
        "",
        "| case | implementation | time | plain / ours | rate | floor | of floor | peak extra MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case in result["cases"]:
        floor = case["floor"]
        entries = [("mpts_fast", case["ours"])] + list(case["baselines"].items()) + list(case["references"].items())
        for i, (name, e) in enumerate(entries):
            first = case["label"] if i == 0 else ""
            if "error" in e:
                lines.append(f"| {first} | {name} | {e['error']} | | | | | |")
                continue
            t = e.get("extrapolated_s", e.get("best_s"))
            time_s = fmt_time(t) + (" (extrap.)" if e.get("extrapolated") else "")
            if (e.get("other_cpu_share_of_best") or 0) > CONTENDED:
                time_s += " †"
            if e is case["ours"]:
                ratio = "1.00"
            elif "ratio_vs_ours" in e:
                ratio = f"({e['ratio_vs_ours']:.2f})" if name in case["references"] else f"{e['ratio_vs_ours']:.2f}"
            else:
                ratio = "-"
            rate = f"{e['gflops']:.1f} GFLOP/s" if "gflops" in e else (f"{e['gbs']:.1f} GB/s" if "gbs" in e else "-")
            of_floor = f"{e['fraction_of_floor']:.2f}" if "fraction_of_floor" in e else "-"
            mem = f"{e['peak_extra_mb']:.0f}" if "peak_extra_mb" in e else "-"
            lines.append(f"| {first} | {name} | {time_s} | {ratio} | {rate} | "
                         f"{fmt_time(floor['seconds']) if i == 0 else ''} | {of_floor} | {mem} |")
    lines += [
        "",
        "time: best of k runs (extrap.: a part of the work timed and scaled to the whole, see the case's notes). "
        "plain / ours > 1 means mpts_fast is faster; (in parentheses) a yardstick such as the bare GEMM of the same "
        "shape rather than a plain version. floor: FLOPs at the GEMM rate plus bytes at the memory bandwidth; "
        "of floor = floor / time. † other processes used over 10% of the CPU during the best run of that measurement.",
    ]
    return "\n".join(lines)


def list_cases() -> str:
    rows = []
    for c in registry.CASES:
        tiers = [t for t in registry.TIERS if t in c.sizes]
        cuda = [t for t in ("quick", "full") if c.cuda_sizes and t in c.cuda_sizes]
        impls = ", ".join(i.name for _, i in c.impls())
        rows.append(f"{c.name:28s} op={c.op:22s} cpu tiers={','.join(tiers):24s} cuda={','.join(cuda) or '-':11s} "
                    f"target={c.target_ratio}  [{impls}]")
    return "\n".join(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (also MPTS_BENCH_QUICK=1)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--cases", help="comma-separated case or op names (default: every case with sizes for this device)")
    ap.add_argument("--tag", help="appended to the result file's name (default: none, or 'partial' with --cases)")
    ap.add_argument("--out", default=None, help="folder for the JSON result (default: bench/results/cpu/ or "
                    "bench/results/gpu/ by --device; with --quick or --smoke: build/bench/cpu/ or build/bench/gpu/)")
    ap.add_argument("--no-mem", action="store_true", help="skip the subprocess memory probes (CPU)")
    ap.add_argument("--no-big", action="store_true", help="skip the CPU memory-scale cases (one fresh process each; minutes)")
    ap.add_argument("--list", action="store_true", help="print the registry and exit")
    ap.add_argument("--json", help="write the result JSON to this path (default: a dated file in --out)")
    ap.add_argument("--gpu-check", action="store_true", help="judge every case against its targets (a \"verdict\" "
                    "per case: ratio to plain >= target, within %sx its floor, plain versions agree)" % FLOOR_FACTOR)
    ap.add_argument("--smoke", action="store_true", help="every selected case at tiny sizes, one rep, for either "
                    "device (checks that the cases run; the times mean nothing)")
    ap.add_argument("--quiet-wait", type=float, default=20.0,
                    help="CPU: before each measurement wait up to this many seconds for other processes to leave the CPU idle (0: do not wait)")
    a = ap.parse_args(argv)
    if a.list:
        print(list_cases())
        return
    tier = registry.tier_from_env(a.quick or harness.quick_from_env())
    names = [n.strip() for n in a.cases.split(",") if n.strip()] if a.cases else None
    if names:
        known = {c.name for c in registry.CASES} | {c.op for c in registry.CASES}
        unknown = sorted(set(names) - known)
        if unknown:
            sys.exit(f"--cases: unknown {unknown}; known: {sorted(known)}")
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device available")
    if a.device == "cuda" and "cuda" not in harness.versions()["mpts_fast_native_devices"]:
        sys.exit("--device cuda: mpts_fast was built without CUDA kernels (it would time its reference)")

    started = datetime.datetime.now()
    t0 = time.perf_counter()
    machine = harness.machine_name(a.device)
    if a.smoke:
        tier = "smoke"
    result = {
        "date": started.strftime("%Y-%m-%d"),
        "started": started.isoformat(timespec="seconds"),
        "machine": machine,
        "device": a.device,
        "device_desc": torch.cuda.get_device_name() if a.device == "cuda" else f"{harness.cpu_model()}, {harness.cpu_count()} cores",
        "tier": tier,
        "quick": tier == "quick",
        "versions": harness.versions(),
        "timing": "best and median of k after warmup; ratios and floor fractions from the best",
        **({"stated_peaks_h100": harness.H100_STATED} if a.device == "cuda" else {}),
    }
    if a.device == "cuda":
        result["versions"]["cuda"] = torch.version.cuda
    if a.json:
        path = os.path.abspath(a.json)
    else:
        tag = a.tag or ("partial" if names else "")
        folder = harness.out_dir(argparse.Namespace(out=a.out, quick=tier != "full"), "gpu" if a.device == "cuda" else "cpu")
        path = os.path.join(folder, f"{result['date']}-{machine}{'-' + tag if tag else ''}{'-' + tier if tier != 'full' else ''}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)

    def write(cases: list[dict], final: bool) -> None:
        if a.gpu_check:
            for c in cases:
                c["verdict"] = judge_case(c)
        doc = {**result, "wall_s": time.perf_counter() - t0, "complete": final, **body_so_far, "cases": cases}
        if final:
            doc["loadavg_end"] = os.getloadavg()
        with open(path + ".tmp", "w") as f:
            json.dump(doc, f, indent=2)
        os.replace(path + ".tmp", path)

    body_so_far: dict = {}
    runner = Runner(a.device, tier, mem=not (a.no_mem or a.smoke), big=not a.no_big, names=names, smoke=a.smoke,
                    quiet_wait_s=0.0 if a.smoke else a.quiet_wait,
                    on_case=lambda cases: (body_so_far.update(rates=runner.rates), write(cases, False)))
    body = runner.run()
    body_so_far["rates"] = body["rates"]
    write(body["cases"], True)
    with open(path) as f:
        result = json.load(f)
    log(f"wrote {path} ({result['wall_s']:.0f} s)")
    print(markdown(result))
    if a.gpu_check:
        for c in result["cases"]:
            v = c["verdict"]
            print(f"{v['status'].upper():4s} {c['label']}" + (": " + "; ".join(v["problems"]) if v["problems"] else ""))


if __name__ == "__main__":
    main()
