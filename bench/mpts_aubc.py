"""AUBC of MPTS against the uncertainty baselines, and the MPTS ablation, on the offline classification sets.

    python -m bench mpts-aubc [--datasets digits,wine,iris,breast-cancer] [--seeds 3] [--runs runs/mpts-aubc]
    python -m bench synthetic-pool runs/synth50.npz && python -m bench mpts-aubc --datasets runs/synth50.npz --seeds 5
    python -m bench mpts-aubc --quick          # 1 seed, 3 rounds, 10 epochs: runs/mpts-aubc-quick, build/bench/
    python -m bench mpts-aubc --table          # the docs/mpts.md table of bench/results/mpts-aubc/mpts-aubc.json

(this file: python bench/mpts_aubc.py). Writes bench/results/mpts-aubc/mpts-aubc.json.

Every (data set, strategy) is one `mpts-fast run` with the data set's defaults and seeds 0..seeds−1, resumable (kill
it and start it again: finished runs and rounds are kept in --runs). Strategies: mpts (MMD + snapshots, the default
λ = 1 and schedule), entropy, random, bald, ensemble_variance, and the ablation: `mpts λ=0` (snapshots only, no MMD
term) and `mmd_entropy` (MMD only: the MMD-trained final model's entropy, no cyclic phase, defined here). Written after
every finished run: AUBC mean ± sample std, per-seed AUBC, and for the posterior strategies the per-round mean mutual
information and disagreement.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from typing import ClassVar

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

from mpts_fast.loop import RunConfig, run_experiment  # noqa: E402
from mpts_fast.results import summarize_runs, write_json_atomic  # noqa: E402
from mpts_fast.strategies import Needs, ScoreStrategy  # noqa: E402
from mpts_fast.strategies.registry import STRATEGIES, register  # noqa: E402

QUICK = {"rounds": 3, "epochs": 10}  # with 1 seed: checks the pipeline, not evidence


class MMDEntropyStrategy(ScoreStrategy):
    """Ablation: MPTS's MMD-regularised training, scored by the final model's entropy (no trajectory snapshots)."""

    name = "mmd_entropy"
    description = "ablation: entropy of the final model of MMD-regularised training"
    score_field = "entropy"
    needs: ClassVar[Needs] = Needs(mmd=True)


if "mmd_entropy" not in STRATEGIES:
    register(MMDEntropyStrategy)

# label -> (strategy, RunConfig overrides)
ENTRIES = {"mpts": ("mpts", {}), "entropy": ("entropy", {}), "random": ("random", {}), "bald": ("bald", {}),
           "ensemble_variance": ("ensemble_variance", {}),
           "mpts λ=0 (snapshots only)": ("mpts", {"mmd_weight": 0.0}),
           "mmd_entropy (MMD only)": ("mmd_entropy", {})}


def summarize(results: dict) -> dict:
    out = summarize_runs(results)
    div = [[rd["diversity"] for rd in run["rounds"] if "diversity" in rd] for run in results["runs"] if run["complete"]]
    if div and div[0]:
        out["mutual_information_per_round"] = np.mean([[d["mutual_information"] for d in r] for r in div], 0).tolist()
        out["disagreement_per_round"] = np.mean([[d["disagreement"] for d in r] for r in div], 0).tolist()
    return out


def markdown(report: dict) -> str:
    """The docs/mpts.md table: AUBC mean ± sample std per data set and entry, and mpts's paired per-seed wins."""
    sets = list(report["datasets"])
    labels = [k for k in ENTRIES if any(k in report["datasets"][d] for d in sets)]
    lines = ["| strategy | " + " | ".join(sets) + " |", "|---" * (len(sets) + 1) + "|"]
    for label in labels:
        cells = []
        for d in sets:
            e = report["datasets"][d].get(label)
            cells.append("–" if e is None else f"{e['aubc_mean']:.3f} ± {e['aubc_std'] or 0:.3f} ({e['repeats']})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="digits")
    ap.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 3; 1 with --quick)")
    ap.add_argument("--entries", default="all", help="comma-separated labels of ENTRIES (prefixes), or 'all'")
    ap.add_argument("--runs", default=None,
                    help="where each run's results.json lives (resumable; default runs/mpts-aubc[-quick])")
    harness.add_common_options(ap, "mpts-aubc", f"1 seed and {QUICK}: checks the pipeline, not evidence")
    ap.add_argument("--table", action="store_true", help="print the docs/mpts.md table of --out's mpts-aubc.json and exit")
    args = ap.parse_args()
    args.seeds = args.seeds or (1 if args.quick else 3)
    args.runs = args.runs or ("runs/mpts-aubc-quick" if args.quick else "runs/mpts-aubc")
    out = harness.out_dir(args, "mpts-aubc")
    if args.table:
        from mpts_fast.results import load_json

        print(markdown(load_json(os.path.join(out, "mpts-aubc.json"))))
        return
    entries = ENTRIES if args.entries == "all" else {
        k: v for k, v in ENTRIES.items() if any(k.startswith(w.strip()) for w in args.entries.split(","))}
    path = os.path.join(out, "mpts-aubc.json")
    report = {"date": datetime.date.today().isoformat(), "seeds": args.seeds, "command": " ".join(sys.argv),
              "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
              "torch": torch.__version__, "datasets": {}}
    if os.path.exists(path):  # keep the figures of earlier invocations (other data sets or entries)
        from mpts_fast.results import load_json

        report["datasets"] = load_json(path).get("datasets", {})
    for ds in [d.strip() for d in args.datasets.split(",")]:
        # a data set given as a file (e.g. the synthetic pool of bench/make_synthetic_pool.py) is named by its stem
        key = os.path.splitext(os.path.basename(ds))[0] if os.path.exists(ds) else ds
        for label, (strategy, over) in entries.items():
            # each curve scored by the strategy's own model, as the documented table was made (and as the runs in
            # --runs were written); bench/mpts_protocol.py scores them by the task model
            cfg = RunConfig(dataset=ds, strategy=strategy, repeats=args.seeds, evaluate="selection",
                            **(QUICK if args.quick else {}), **over)
            out_dir = os.path.join(args.runs, key, label.split(" ")[0] + ("-lambda0" if "λ=0" in label else ""))
            resume = os.path.exists(os.path.join(out_dir, "results.json"))
            results = run_experiment(cfg, out_dir, resume=resume, device="cpu", progress=False)
            s = summarize(results)
            report["datasets"].setdefault(key, {})[label] = {"config": results["config"], **s}
            write_json_atomic(path, report)
            print(f"{key:<14} {label:<28} AUBC {s['aubc_mean']:.3f} ± {s['aubc_std'] or 0:.3f}  "
                  f"final {s['accuracy_mean'][-1]:.3f}", flush=True)


if __name__ == "__main__":
    main()
