"""Peak memory and time of one selection call in a fresh process (CPU tensors).

    python bench/select_mem_probe.py kcenter --N 1000000 --d 512 --k 1000 --labeled 1000
    python bench/select_mem_probe.py badge --N 1000000 --C 10 --D 512 --k 1000

Builds the inputs in place (no transient copies), runs a tiny call of the same op (libraries,
thread pools, faiss), resets the peak resident set (bench/mem_probe.py's VmHWM method), runs
the measured call once and prints one JSON object: the input bytes, the resident set before,
the peak, the peak over the inputs ("peak_rss_over_inputs": the process's whole peak resident
set, torch and libraries included, divided by the input tensors' bytes) and the time.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import harness  # noqa: E402
from mem_probe import peak_mb, reset_peak, rss_mb  # noqa: E402
from mpts_fast import ops  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("op", choices=["kcenter", "kmeanspp", "badge"])
    ap.add_argument("--N", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--C", type=int, default=10)
    ap.add_argument("--D", type=int, default=512)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--labeled", type=int, default=1000, help="kcenter/kmeanspp: random labeled rows")
    a = ap.parse_args(argv)
    g = torch.Generator().manual_seed(0)

    if a.op in ("kcenter", "kmeanspp"):
        x = torch.randn(a.N, a.d, generator=g)
        lab = torch.randperm(a.N, generator=g)[: a.labeled] if a.labeled else None
        if a.op == "kcenter":
            ops.kcenter_greedy(x[:2000], 5, labeled=torch.arange(10))
            run = lambda: ops.kcenter_greedy(x, a.k, labeled=lab)  # noqa: E731
        else:
            ops.kmeanspp(x[:2000], 5, labeled=torch.arange(10))
            run = lambda: ops.kmeanspp(x, a.k, labeled=lab, generator=torch.Generator().manual_seed(1))  # noqa: E731
        inputs = [x] + ([lab] if lab is not None else [])
        sizes = {"N": a.N, "d": a.d, "k": a.k, "labeled": a.labeled}
    else:
        emb = torch.randn(a.N, a.D, generator=g).relu_()
        probs = torch.randn(a.N, a.C, generator=g).mul_(2).softmax(1)
        ops.badge_select(probs[:2000], emb[:2000], 5)
        run = lambda: ops.badge_select(probs, emb, a.k, generator=torch.Generator().manual_seed(1))  # noqa: E731
        inputs = [probs, emb]
        sizes = {"N": a.N, "C": a.C, "D": a.D, "k": a.k}
    input_mb = sum(t.numel() * t.element_size() for t in inputs) / 1e6

    was_reset = reset_peak()
    before = rss_mb()
    with harness.CpuMonitor() as mon:
        t0 = time.perf_counter()
        picks = run()
        elapsed = time.perf_counter() - t0
    peak = peak_mb()
    print(
        json.dumps(
            {
                "op": a.op,
                "sizes": sizes,
                "threads": torch.get_num_threads(),
                "input_mb": input_mb,
                "rss_before_mb": before,
                "peak_reset": was_reset,
                "peak_rss_mb": peak,
                "peak_extra_mb": peak - before,
                # mem_probe's figures are MiB (kB / 1024); the inputs are counted in MB (1e6 B)
                "peak_rss_over_inputs": peak * 2**20 / (input_mb * 1e6),
                "peak_extra_over_inputs": (peak - before) * 2**20 / (input_mb * 1e6),
                "time_s": elapsed,
                "picks_unique": int(torch.unique(picks).numel()),
                "other_cpu_share": mon.result["other_cpu_share"] if mon.result else None,
            }
        )
    )


if __name__ == "__main__":
    main()
