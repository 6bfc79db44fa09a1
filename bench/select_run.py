"""Selection benchmarks: mpts_fast's kcenter_greedy and badge_select next to the dense
approaches of public AL code (bench/select_baselines.py), plus the million-row memory cases.

    python bench/select_run.py                          # both sections (several minutes)
    python bench/select_run.py --cases compare          # N = 20,000 side by side
    python bench/select_run.py --cases scale            # N = 1e6, one run each in a fresh process
    python bench/select_run.py --quick                  # small sizes, a smoke run
    python bench/select_run.py --device cuda            # GPU: ours at N = 1e6, floors at 3.0 TB/s

Writes bench/results/<date>-<machine>-select[-<cases>][-quick].json and prints a markdown table.
Times: best of k after a warm-up for ours; the slow baselines run once, and where a full run
would take minutes they run a prefix of the picks and are extrapolated (marked so, with the
model used). Ratios = baseline / ours. Floors: every pick reads the pool once (N d or N (C + D)
float32) at the read bandwidth measured in this run, plus (k-center with labeled rows) the 1-NN
GEMM over the labeled set at the measured GEMM rate.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import harness  # noqa: E402
import select_baselines as sb  # noqa: E402
from mpts_fast import ops  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def best_of(fn, warmup=1, reps=3) -> dict:
    return harness.time_calls(fn, "cpu", warmup, reps)


def case_kcenter(rates: dict, N: int, d: int, k: int, L: int, prefix: int) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, d, generator=g)
    mask = torch.zeros(N, dtype=torch.bool)
    mask[torch.randperm(N, generator=g)[:L]] = True
    label = f"kcenter_greedy N={N} d={d} k={k} labeled={L}"
    log(label)
    ours = best_of(lambda: ops.kcenter_greedy(x, k, labeled=mask))
    picks = ops.kcenter_greedy(x, k, labeled=mask).numpy()
    log(f"  ours {ours['best_s']:.3f} s; dense DeepAL-style baseline, first {prefix} picks")
    timings: dict = {}
    base_picks = sb.kcenter_dense_deepal(x.numpy(), mask.numpy(), k, max_picks=prefix, timings=timings)
    # per-pick cost of the baseline grows with its sub-matrix, (U - i) x (L + i): fit one
    # constant on the measured prefix and sum the model over all k picks.
    U = N - L
    size = np.array([(U - i) * (L + i) for i in range(k)], dtype=np.float64)
    alpha = sum(timings["pick_s"]) / size[:prefix].sum()
    extrap = timings["matrix_s"] + alpha * size.sum()
    measured = timings["matrix_s"] + sum(timings["pick_s"])
    dense = {
        "measured_s": measured,
        "measured_picks": prefix,
        "matrix_s": timings["matrix_s"],
        "extrapolated_s": extrap,
        "extrapolated": prefix < k,
        "model": "matrix time + per-pick time proportional to the (U - i) x (L + i) sub-matrix, fitted on the measured picks",
        "agree_with_ours_on_prefix": bool((base_picks == picks[:prefix]).all()),
        "ratio_vs_ours": extrap / ours["best_s"],
        "peak_matrix_mb": N * N * 4 / 1e6,
    }
    floor_bytes = float(k) * N * d * 4
    floor_s = floor_bytes / (rates["mem_read_gbs"] * 1e9) + 2.0 * U * L * d / (rates["gemm_gflops"] * 1e9)
    ours["fraction_of_floor"] = floor_s / ours["best_s"]
    ours["picks_ms"] = ours["best_s"] / k * 1e3
    return {
        "name": "kcenter_greedy",
        "label": label,
        "sizes": {"N": N, "d": d, "k": k, "labeled": L},
        "floor": {"seconds": floor_s, "what": "k N d float32 reads at the read bandwidth + 2 U L d FLOPs at the GEMM rate"},
        "ours": ours,
        "baselines": {"dense_deepal_numpy": dense},
    }


def case_badge(rates: dict, N: int, C: int, D: int, k: int, prefix_ref: int, prefix_torch: int) -> dict:
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(N, D, generator=g).relu_()
    probs = torch.randn(N, C, generator=g).mul_(2).softmax(1)
    label = f"badge_select N={N} C={C} D={D} k={k}"
    log(label)
    ours = best_of(lambda: ops.badge_select(probs, emb, k, generator=torch.Generator().manual_seed(1)))
    log(f"  ours {ours['best_s']:.3f} s; explicit-embedding torch baseline, first {prefix_torch} picks")
    t0 = time.perf_counter()
    G = torch.from_numpy(sb.badge_embeddings(probs.numpy(), emb.numpy(), np.float32))
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sb.badge_explicit_torch(G, prefix_torch, generator=torch.Generator().manual_seed(1))
    torch_s = time.perf_counter() - t0
    tor = {
        "measured_s": build_s + torch_s,
        "measured_picks": prefix_torch,
        "embedding_build_s": build_s,
        "extrapolated_s": build_s + torch_s * k / prefix_torch,
        "extrapolated": prefix_torch < k,
        "model": "embedding build + per-pick time constant (each pick reads the N x C D embeddings once)",
        "embeddings_mb": G.numel() * 4 / 1e6,
    }
    del G
    log(f"  BADGE reference (float64, sklearn, Python loop), first {prefix_ref} picks")
    t0 = time.perf_counter()
    G64 = sb.badge_embeddings(probs.double().numpy(), emb.double().numpy(), np.float64)
    build64 = time.perf_counter() - t0
    t0 = time.perf_counter()
    sb.badge_explicit_reference(G64, k, max_picks=prefix_ref)
    ref_s = time.perf_counter() - t0
    ref = {
        "measured_s": build64 + ref_s,
        "measured_picks": prefix_ref,
        "embedding_build_s": build64,
        "extrapolated_s": build64 + ref_s * (k - 1) / max(1, prefix_ref - 1),
        "extrapolated": prefix_ref < k,
        "model": "embedding build + per-pick time constant, fitted on the measured picks",
        "embeddings_mb": G64.nbytes / 1e6,
    }
    del G64
    for e in (tor, ref):
        e["ratio_vs_ours"] = e["extrapolated_s"] / ours["best_s"]
    floor_s = float(k) * N * (C + D) * 4 / (rates["mem_read_gbs"] * 1e9)
    ours["fraction_of_floor"] = floor_s / ours["best_s"]
    ours["picks_ms"] = ours["best_s"] / k * 1e3
    return {
        "name": "badge_select",
        "label": label,
        "sizes": {"N": N, "C": C, "D": D, "k": k},
        "floor": {"seconds": floor_s, "what": "k N (C + D) float32 reads at the read bandwidth"},
        "ours": ours,
        "baselines": {"badge_reference_numpy_float64": ref, "explicit_embeddings_torch": tor},
    }


def probe(*args: str) -> dict:
    cmd = [sys.executable, os.path.join(HERE, "select_mem_probe.py"), *args]
    log("  probe: " + " ".join(args))
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        return {"error": (res.stderr.strip().splitlines() or [f"rc {res.returncode}"])[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def case_scale(rates: dict, N: int, k: int) -> list[dict]:
    out = []
    kc = probe("kcenter", "--N", str(N), "--d", "512", "--k", str(k), "--labeled", "1000")
    out.append(
        {
            "name": "kcenter_greedy_scale",
            "label": f"kcenter_greedy N={N} d=512 k={k} labeled=1000 (one run, fresh process)",
            "floor": {"seconds": float(k) * N * 512 * 4 / (rates["mem_read_gbs"] * 1e9) + 2.0 * N * 1000 * 512 / (rates["gemm_gflops"] * 1e9)},
            "probe": kc,
        }
    )
    bd = probe("badge", "--N", str(N), "--C", "10", "--D", "512", "--k", str(k))
    out.append(
        {
            "name": "badge_select_scale",
            "label": f"badge_select N={N} C=10 D=512 k={k} (one run, fresh process)",
            "floor": {"seconds": float(k) * N * 522 * 4 / (rates["mem_read_gbs"] * 1e9)},
            "probe": bd,
        }
    )
    return out


def case_cuda(N: int, k: int) -> list[dict]:
    """Ours on the GPU at the DESIGN.md floors-table size: CUDA events, peak device memory,
    floor = bytes read per pick x k at the stated H100 bandwidth (and at the measured copy rate)."""
    rates = harness.measure_cuda_rates()
    g = torch.Generator(device="cuda").manual_seed(0)
    out = []
    x = torch.randn(N, 512, device="cuda", generator=g)
    lab = torch.randperm(N, device="cuda", generator=g)[:1000]
    emb = torch.randn(N, 512, device="cuda", generator=g).relu_()
    probs = torch.randn(N, 10, device="cuda", generator=g).softmax(1)
    runs = {
        "kcenter_greedy": (lambda: ops.kcenter_greedy(x, k), N * 512 * 4),
        "kcenter_greedy_labeled": (lambda: ops.kcenter_greedy(x, k, labeled=lab), N * 512 * 4),
        "badge_select": (lambda: ops.badge_select(probs, emb, k, generator=torch.Generator().manual_seed(1)), N * 522 * 4),
    }
    for name, (fn, per_pick) in runs.items():
        log(f"{name} N={N} k={k} cuda")
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        r = harness.time_calls(fn, "cuda", 1, 3)
        r["peak_extra_mb"] = (torch.cuda.max_memory_allocated() - base) / 1e6
        floor = float(k) * per_pick / (harness.H100_STATED["mem_tbs"] * 1e12)
        floor_measured = float(k) * per_pick / (rates["mem_copy_tbs"] * 1e12 / 2)  # copy moves 2 bytes per byte read
        r["fraction_of_floor"] = floor / r["best_s"]
        out.append({"name": name + "_cuda", "label": f"{name} N={N} d/D=512 k={k} (CUDA)", "floor": {"seconds": floor, "at_measured_copy_rate_s": floor_measured}, "ours": r, "baselines": {}})
    return out, rates


def fmt(t) -> str:
    return "-" if t is None else (f"{t * 1e3:.0f} ms" if t < 1 else f"{t:.2f} s")


def markdown(result: dict) -> str:
    r = result["rates"]
    lines = [
        f"Machine: {result['machine']} ({result['device_desc']}), torch {result['versions']['torch']}; "
        f"read {r['mem_read_gbs']:.1f} GB/s, GEMM {r['gemm_gflops']:.0f} GFLOP/s (measured in this run)",
        "",
        "| case | implementation | time | baseline / ours | floor | of floor | memory |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for c in result["cases"]:
        if "probe" in c:
            p = c["probe"]
            if "error" in p:
                lines.append(f"| {c['label']} | mpts_fast | failed: {p['error']} | | | | |")
                continue
            lines.append(
                f"| {c['label']} | mpts_fast | {fmt(p['time_s'])} | | {fmt(c['floor']['seconds'])} | "
                f"{c['floor']['seconds'] / p['time_s']:.2f} | peak RSS {p['peak_rss_mb']:.0f} MiB = "
                f"{p['peak_rss_over_inputs']:.2f}x inputs ({p['input_mb']:.0f} MB); +{p['peak_extra_mb']:.0f} MiB |"
            )
            continue
        o = c["ours"]
        lines.append(
            f"| {c['label']} | mpts_fast | {fmt(o['best_s'])} | 1 | {fmt(c['floor']['seconds'])} | {o['fraction_of_floor']:.2f} | O(N) |"
        )
        for name, e in c["baselines"].items():
            t = e["extrapolated_s"]
            mark = f" (extrap. from {e['measured_picks']} picks)" if e.get("extrapolated") else ""
            mem = f"{e.get('peak_matrix_mb', e.get('embeddings_mb', 0)):.0f} MB matrix" if "peak_matrix_mb" in e else f"{e.get('embeddings_mb', 0):.0f} MB embeddings"
            lines.append(f"| | {name} | {fmt(t)}{mark} | {e['ratio_vs_ours']:.1f} | | | {mem} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", choices=["all", "compare", "scale"], default="all")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda: ours only, floors-table sizes")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    a = ap.parse_args(argv)
    started = datetime.datetime.now()
    if a.device == "cuda":
        if not torch.cuda.is_available() or "cuda" not in harness.versions()["mpts_fast_native_devices"]:
            sys.exit("--device cuda: needs a GPU and mpts_fast built with CUDA kernels")
        cases, rates = case_cuda(100_000 if a.quick else 1_000_000, 100 if a.quick else 1000)
        machine = harness.machine_name("cuda")
        result = {"date": started.strftime("%Y-%m-%d"), "machine": machine, "device": "cuda", "device_desc": torch.cuda.get_device_name(),
                  "quick": a.quick, "versions": harness.versions(), "rates": rates, "stated_peaks_h100": harness.H100_STATED, "cases": cases}
        os.makedirs(a.out, exist_ok=True)
        path = os.path.join(a.out, f"{result['date']}-{machine}-select{'-quick' if a.quick else ''}.json")
        with open(path, "w") as f:
            json.dump(result, f, indent=2)
        log(f"wrote {path}")
        for c in cases:
            o = c["ours"]
            print(f"| {c['label']} | {fmt(o['best_s'])} | floor {fmt(c['floor']['seconds'])} | of floor {o['fraction_of_floor']:.2f} | +{o['peak_extra_mb']:.0f} MB |")
        return
    log("measuring CPU rates")
    rates = harness.measure_cpu_rates()
    cases = []
    if a.cases in ("all", "compare"):
        if a.quick:
            cases.append(case_kcenter(rates, 4000, 128, 200, 200, 50))
            cases.append(case_badge(rates, 4000, 10, 128, 200, 5, 50))
        else:
            cases.append(case_kcenter(rates, 20_000, 512, 1000, 1000, 100))
            cases.append(case_badge(rates, 20_000, 10, 512, 1000, 6, 1000))
    if a.cases in ("all", "scale"):
        cases += case_scale(rates, 100_000 if a.quick else 1_000_000, 100 if a.quick else 1000)
    machine = harness.machine_name("cpu")
    result = {
        "date": started.strftime("%Y-%m-%d"),
        "started": started.isoformat(timespec="seconds"),
        "machine": machine,
        "device": "cpu",
        "device_desc": f"{harness.cpu_model()}, {harness.cpu_count()} cores",
        "quick": a.quick,
        "versions": harness.versions(),
        "loadavg_end": os.getloadavg(),
        "rates": rates,
        "cases": cases,
    }
    os.makedirs(a.out, exist_ok=True)
    suffix = "" if a.cases == "all" else f"-{a.cases}"
    path = os.path.join(a.out, f"{result['date']}-{machine}-select{suffix}{'-quick' if a.quick else ''}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    log(f"wrote {path}")
    print(markdown(result))


if __name__ == "__main__":
    main()
