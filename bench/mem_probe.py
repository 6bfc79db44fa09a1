"""Peak extra host memory and time of one call of one case's implementation, in a fresh process
(CPU tensors). The case comes from the registry (bench/cases.py).

    python bench/mem_probe.py rbf_mmd2_memory_scale mpts_fast --tier full
    python bench/mem_probe.py snapshot_uncertainty plain_five_scores --tier full
    python bench/mem_probe.py sensitivity plain_einsum_chunked --tier full --set P=6000
    python bench/mem_probe.py kcenter_greedy_scale mpts_fast --tier quick

Builds the inputs, runs one call of the same implementation at the case's tiny warm-up sizes
(loads libraries, starts the thread pools), resets the peak resident set (/proc/self/clear_refs),
reads the resident set, runs the measured call once and reads the peak (VmHWM; ru_maxrss is
recorded too, but a child inherits its parent's ru_maxrss through fork + exec, so it cannot be the
measure when run.py is the parent). peak_extra_mb = peak after - resident set before: the call's
extra memory, outputs included (for rbf_mmd2 forward + backward, x.grad and y.grad). Prints one
JSON object on stdout; bench/run.py reads it for the "peak extra MB" column and the fresh-process
cases' time.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import cases  # noqa: E402
import harness  # noqa: E402


def maxrss_mb() -> float:
    """ru_maxrss in MiB (KiB on Linux); inherited from the parent through fork + exec (see above)."""
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


def tensor_bytes(obj) -> int:
    """Bytes of every tensor / array in a (nested) inputs structure."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (tuple, list)):
        return sum(tensor_bytes(v) for v in obj)
    return int(getattr(obj, "nbytes", 0))


def parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = int(value)
    return out


def probe(case_name: str, impl_name: str, tier: str, overrides: dict) -> dict:
    case = cases.by_name(case_name)
    impl = case.impl(impl_name)
    sz = case.sizes_for("cpu", tier)
    if sz is None:
        raise SystemExit(f"{case_name} has no {tier!r} sizes on cpu")
    sz = {**sz, **overrides}

    warm = {**sz, **case.warm_sizes}  # libraries, thread pools, faiss: outside the measurement
    impl.make(case.make_inputs(warm, "cpu"), warm)()
    gc.collect()

    inputs = case.make_inputs(sz, "cpu")
    run = impl.make(inputs, sz)
    input_mb = tensor_bytes(inputs) / 1e6
    was_reset = reset_peak()
    rss_before, before, ru_before = rss_mb(), peak_mb(), maxrss_mb()
    with harness.CpuMonitor() as mon:
        t0 = time.perf_counter()
        out = run()
        elapsed = time.perf_counter() - t0
    after, ru_after = peak_mb(), maxrss_mb()
    scale = impl.scale(sz, out) if impl.scale else 1.0
    del out
    return {
        "case": case_name,
        "impl": impl_name,
        "sizes": sz,
        "threads": torch.get_num_threads(),
        "input_mb": input_mb,
        "rss_before_mb": rss_before,
        "peak_reset": was_reset,
        "vmhwm_before_mb": before,
        "vmhwm_after_mb": after,
        "peak_rss_mb": after,
        "ru_maxrss_before_mb": ru_before,
        "ru_maxrss_after_mb": ru_after,
        # growth of the peak over the resident set just before the call; without a peak reset,
        # if the call never rose above the earlier peak this is an upper bound
        "peak_extra_mb": after - rss_before,
        "upper_bound_only": (not was_reset) and after <= before,
        # the process's whole peak (torch and libraries included) over the input tensors' bytes (MiB vs MB)
        "peak_rss_over_inputs": after * 2**20 / (input_mb * 1e6) if input_mb else None,
        "time_s": elapsed,
        "full_work_scale": scale,
        "other_cpu_share": mon.result["other_cpu_share"] if mon.result else None,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case", help="a case name in bench/cases.py")
    ap.add_argument("impl", help="an implementation of that case (mpts_fast, plain_...)")
    ap.add_argument("--tier", choices=cases.TIERS, default="full")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=INT", help="override one size, e.g. P=6000")
    a = ap.parse_args(argv)
    print(json.dumps(probe(a.case, a.impl, a.tier, parse_sets(a.set))))


if __name__ == "__main__":
    main()
