"""Our kernels inside baal and scikit-activeml against the libraries' own code, on the same inputs:

- baal heuristics (BALD, Entropy, Margin, Variance) at N = 1,000,000 items, C classes, T MC-dropout iterations
  (softmax probabilities, float32, baal's [N, C, T] layout): baal's numpy heuristic vs
  mpts_fast.integrations.baal (ops.snapshot_uncertainty), get_uncertainties, scores compared;
- scikit-activeml CoreSet at N = 100,000 embeddings of dimension D with L labeled samples, batch B:
  skactiveml.pool.CoreSet vs mpts_fast.integrations.skactiveml.CoreSet (ops.kcenter_greedy), picks compared.

Wall-clock seconds, best of --repeats after one untimed call (harness.time_calls), on this machine's threads
(torch.get_num_threads()); results in bench/results/integrations/integrations-cpu-<threads>threads.json.

    python -m bench integrations            # ~1 min on 2 cores (this file: python bench/integrations.py)
    python -m bench integrations --quick    # 1/100 of the sizes: written under build/bench/integrations/
"""
from __future__ import annotations

import os

# GNU OpenMP threads spin while they wait by default: on a small machine shared with other processes that makes short
# parallel regions many times slower (as in tests/conftest.py). Changes timing only. Must precede `import torch`.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


def best_of(fn, repeats: int) -> tuple[float, object]:
    """(best seconds of `repeats` timed calls after one untimed call, the last call's result)."""
    out = []
    timing = harness.time_calls(lambda: out.append(fn()), warmup=1, reps=repeats)
    return timing["best_s"], out[-1]


def bench_baal(n: int, c: int, t: int, repeats: int, rng) -> list[dict]:
    from baal.active import heuristics as theirs

    from mpts_fast.integrations import baal as ours

    logits = rng.standard_normal((n, c, t), dtype=np.float32) * 2
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    del logits
    rows = []
    for name in ("BALD", "Entropy", "Margin", "Variance"):
        h_t, h_o = getattr(theirs, name)(), getattr(ours, name)()
        sec_t, s_t = best_of(lambda: h_t.get_uncertainties(probs), repeats)
        sec_o, s_o = best_of(lambda: h_o.get_uncertainties(probs), repeats)
        rows.append({"heuristic": name, "N": n, "C": c, "T": t, "baal_s": sec_t, "ours_s": sec_o,
                     "speedup": sec_t / sec_o, "max_abs_diff": float(np.abs(s_t - s_o).max())})
        print(f"baal {name:9s} N={n:,} C={c} T={t}: baal {sec_t:.3f} s, ours {sec_o:.3f} s "
              f"({sec_t / sec_o:.1f}x), max |diff| {rows[-1]['max_abs_diff']:.2e}", flush=True)
    return rows


def bench_coreset(n: int, d: int, labeled: int, batch: int, repeats: int, rng) -> list[dict]:
    from skactiveml.pool import CoreSet as Theirs

    from mpts_fast.integrations.skactiveml import CoreSet as Ours

    X = rng.standard_normal((n, d)).astype(np.float32)
    y = np.full(n, np.nan)
    y[rng.choice(n, labeled, replace=False)] = rng.integers(0, 10, labeled)
    sec_t, q_t = best_of(lambda: Theirs(random_state=0).query(X, y, batch_size=batch), repeats)
    sec_o, q_o = best_of(lambda: Ours().query(X, y, batch_size=batch), repeats)
    same = bool(np.array_equal(q_t, q_o))
    print(f"skactiveml CoreSet N={n:,} D={d} L={labeled} B={batch}: skactiveml {sec_t:.3f} s, ours {sec_o:.3f} s "
          f"({sec_t / sec_o:.1f}x), same picks: {same}", flush=True)
    return [{"strategy": "CoreSet", "N": n, "D": d, "labeled": labeled, "batch": batch, "skactiveml_s": sec_t,
             "ours_s": sec_o, "speedup": sec_t / sec_o, "same_picks": same}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_common_options(parser, "integrations", "1/100 of the sizes: checks the pipeline, not a result")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import importlib.util

    missing = [pkg for mod, pkg in (("baal", "baal"), ("skactiveml", "scikit-activeml"))
               if importlib.util.find_spec(mod) is None]
    if missing:
        sys.exit(f"integrations: needs {' and '.join(missing)} (pip install {' '.join(missing)}; docs/integrations.md)")
    rng = np.random.default_rng(0)
    scale = 100 if args.quick else 1
    result = {
        "machine": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "numpy": np.__version__,
        "baal": bench_baal(1_000_000 // scale, 10, 10, args.repeats, rng),
        "skactiveml": bench_coreset(100_000 // scale, 64, 100, 100, args.repeats, rng),
    }
    from importlib.metadata import version

    result["versions"] = {"baal": version("baal"), "scikit-activeml": version("scikit-activeml")}
    path = harness.out_dir(args, "integrations") / f"integrations-cpu-{torch.get_num_threads()}threads.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
