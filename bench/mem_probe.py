"""Peak extra host memory of one call, measured in a fresh process (CPU tensors).

    python bench/mem_probe.py mmd ours --n 32768 --d 512
    python bench/mem_probe.py snapshot plain_five --S 10 --N 1000000 --C 10
    python bench/mem_probe.py sensitivity einsum --P 6000

Builds the inputs, runs one tiny call of the same implementation (loads libraries, starts the
thread pools), resets the peak resident set (/proc/self/clear_refs) and reads the resident set,
runs the measured call once, and reads the peak (VmHWM; ru_maxrss from resource.getrusage is
recorded too, but a child process inherits its parent's ru_maxrss, so it cannot be the measure
when run.py is the parent). The growth is the peak extra memory of the call (peak after minus
resident set before), outputs included (for rbf_mmd2 forward + backward that includes x.grad and y.grad).
Prints one JSON object on stdout. bench/run.py calls this for the "peak extra MB" column.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import baselines  # noqa: E402
import harness  # noqa: E402
from mpts_fast import ops  # noqa: E402


def maxrss_mb() -> float:
    """ru_maxrss in MB (KiB on Linux). Caveat: a child inherits its parent's peak through
    fork + exec, so when run.py (holding GBs of tensors) starts this probe, ru_maxrss starts
    high; VmHWM below is the peak of this process's own address space and is used instead."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_mb() -> float:
    v = _status_mb("VmRSS")
    return v if v is not None else maxrss_mb()


def peak_mb() -> float:
    v = _status_mb("VmHWM")
    return v if v is not None else maxrss_mb()


MMD = {"ours": ops.rbf_mmd2, "three_blocks": baselines.mmd2_three_blocks, "concat_cdist": baselines.mmd2_concat_cdist}
SNAP = {
    "ours": ops.snapshot_uncertainty,
    "plain_five": baselines.snapshot_scores_plain,
    "plain_entropy": baselines.snapshot_entropy_plain,
}
SENS = {
    "ours": lambda x, V, b_v, W, b_w, chunk: ops.sensitivity(x, V, b_v, W, b_w, norm="l1"),
    "einsum": lambda x, V, b_v, W, b_w, chunk: baselines.sensitivity_einsum_chunked(x, V, b_v, W, b_w, chunk),
}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("op", choices=["mmd", "snapshot", "sensitivity"])
    ap.add_argument("impl")
    ap.add_argument("--n", type=int, default=4096, help="mmd: n = m")
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--S", type=int, default=10)
    ap.add_argument("--N", type=int, default=1_000_000)
    ap.add_argument("--C", type=int, default=10)
    ap.add_argument("--P", type=int, default=60_000)
    ap.add_argument("--K", type=int, default=10)
    ap.add_argument("--J", type=int, default=512)
    ap.add_argument("--I", type=int, default=785)
    ap.add_argument("--chunk", type=int, default=2048)
    a = ap.parse_args(argv)

    if a.op == "mmd":
        fn = MMD[a.impl]
        tx, ty = harness.mmd_inputs(64, 64, a.d, seed=1)
        harness.mmd_fwd_bwd(fn, tx, ty)()
        x, y = harness.mmd_inputs(a.n, a.n, a.d)
        run = harness.mmd_fwd_bwd(fn, x, y)
        sizes = {"n": a.n, "m": a.n, "d": a.d}
        input_mb = 2 * a.n * a.d * 4 / 1e6
    elif a.op == "snapshot":
        fn = SNAP[a.impl]
        fn(harness.snapshot_inputs(a.S, 256, a.C, seed=1))
        logits = harness.snapshot_inputs(a.S, a.N, a.C)
        run = lambda: fn(logits)  # noqa: E731
        sizes = {"S": a.S, "N": a.N, "C": a.C}
        input_mb = logits.numel() * 4 / 1e6
    else:
        fn = SENS[a.impl]
        fn(*harness.sensitivity_inputs(64, a.K, a.J, a.I, seed=1), a.chunk)
        args = harness.sensitivity_inputs(a.P, a.K, a.J, a.I)
        run = lambda: fn(*args, a.chunk)  # noqa: E731
        sizes = {"P": a.P, "K": a.K, "J": a.J, "I": a.I}
        input_mb = sum(t.numel() for t in args) * 4 / 1e6

    was_reset = reset_peak()
    rss_before = rss_mb()
    before = peak_mb()
    ru_before = maxrss_mb()
    with harness.CpuMonitor() as mon:
        t0 = time.perf_counter()
        out = run()
        elapsed = time.perf_counter() - t0
    after = peak_mb()
    ru_after = maxrss_mb()
    del out
    print(
        json.dumps(
            {
                "op": a.op,
                "impl": a.impl,
                "sizes": sizes,
                "threads": torch.get_num_threads(),
                "input_mb": input_mb,
                "rss_before_mb": rss_before,
                "peak_reset": was_reset,
                "vmhwm_before_mb": before,
                "vmhwm_after_mb": after,
                "ru_maxrss_before_mb": ru_before,
                "ru_maxrss_after_mb": ru_after,
                # growth of the peak over the resident set just before the call; without a
                # peak reset, if the call never rose above the earlier peak this is an upper bound
                "peak_extra_mb": after - rss_before,
                "upper_bound_only": (not was_reset) and after <= before,
                "time_s": elapsed,
                "other_cpu_share": mon.result["other_cpu_share"] if mon.result else None,
            }
        )
    )


if __name__ == "__main__":
    main()
