"""How diverse are MPTS's trajectory snapshots? Posterior diversity over the unlabeled pool on one random labeled set,
for several cyclic-LR schedules, against an ensemble of independently trained members on the same labels (the
`ensemble_variance` strategy's yardstick) and MC dropout (`bald`).

    python -m bench mpts-trajectory [--dataset digits] [--labels 100] [--seeds 3]   # bench/results/mpts-trajectory/
    python -m bench mpts-trajectory --quick   # 1 seed, 10 epochs: written under build/bench/mpts-trajectory/

Every case trains from scratch with the data set's defaults (digits: 100 epochs, Adam lr 1e-3, batch 64, λ = 1 for the
MPTS cases), as `mpts-fast run` does. "before" is the schedule this project used first: one cycle per epoch,
the LR sampled at step starts on the line lr → lr/10 (with 100 labels, 2 steps per epoch: lr then 0.55·lr), 50 snapshots.
Reported per case (mean over seeds): mean mutual information (BALD) and mean pairwise argmax disagreement over the pool,
Spearman of the ensemble's entropy against the final model's, test accuracy of the final weights / the snapshot
ensemble / the SWA-averaged weights, and training seconds.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

from mpts_fast.data import load_dataset  # noqa: E402
from mpts_fast.models import build_model  # noqa: E402
from mpts_fast.training import TrainConfig, Trainer, derive_seed  # noqa: E402

# name -> TrainConfig overrides (on top of the data set's defaults); "source" picks the posterior
CASES: dict[str, dict] = {
    "before (1 cycle/epoch, lr→0.55·lr, 50 snaps)": dict(mmd_weight=1.0, snapshots=50, cycle_steps=2,
                                                        cycle_max_factor=1.0, cycle_min_factor=0.55),
    "default (4 steps, 10·lr→0.1·lr, linear)": dict(mmd_weight=1.0, snapshots=None),
    "cosine (4 steps, 10·lr→0.1·lr)": dict(mmd_weight=1.0, snapshots=None, cycle_shape="cos"),
    "2 steps, 10·lr→0.1·lr": dict(mmd_weight=1.0, snapshots=None, cycle_steps=2),
    "8 steps, 10·lr→0.1·lr": dict(mmd_weight=1.0, snapshots=None, cycle_steps=8),
    "4 steps, 3·lr→0.1·lr": dict(mmd_weight=1.0, snapshots=None, cycle_max_factor=3.0),
    "4 steps, 30·lr→0.1·lr": dict(mmd_weight=1.0, snapshots=None, cycle_max_factor=30.0),
    "4 steps, 10·lr→0.01·lr": dict(mmd_weight=1.0, snapshots=None, cycle_min_factor=0.01),
    "default, λ = 0 (snapshots only)": dict(mmd_weight=0.0, snapshots=None),
}
YARDSTICKS = {"independent ensemble (5 members)": ("ensemble", dict(ensemble_size=5)),
              "MC dropout (10 passes)": ("mc_dropout", dict())}


def measure(data, labeled, cfg: TrainConfig, source: str, seed: int) -> dict:
    model = data.defaults.model
    trainer = Trainer(lambda: build_model(model, data.input_shape, data.num_classes), cfg)
    t0 = time.perf_counter()
    trained = trainer.fit(data.x_train, labeled, data.y_train[labeled], seed=seed)
    train_s = time.perf_counter() - t0
    mask = torch.ones(data.x_train.shape[0], dtype=torch.bool)
    mask[labeled] = False
    _, div = trained.posterior_summary(data.x_train[mask], source, passes=10, seed=seed)
    y = data.y_test
    row = {**div.to_record(), "train_seconds": train_s,
           "final_accuracy": float((trained.logits(data.x_test).argmax(1) == y).float().mean()),
           "posterior_accuracy": float((trained.mean_probs(data.x_test, source, 10, seed).argmax(1) == y).float().mean())}
    if trained.swa_model is not None:
        row["swa_accuracy"] = float((trained.swa_model(data.x_test).argmax(1) == y).float().mean())
    if trained.trajectory is not None and source == "snapshots":
        row["schedule"] = trained.trajectory.record()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--labels", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=None, help="seeds (default 3; 1 with --quick)")
    ap.add_argument("--cases", default="all", help="comma-separated case-name prefixes, or 'all'")
    harness.add_common_options(ap, "mpts-trajectory", "1 seed, 10 epochs: checks the pipeline, not evidence")
    args = ap.parse_args()
    args.seeds = args.seeds or (1 if args.quick else 3)
    data = load_dataset(args.dataset)
    d = data.defaults
    base = dict(epochs=10 if args.quick else d.epochs, lr=d.lr, batch_size=d.batch_size)
    wanted = [c.strip() for c in args.cases.split(",")] if args.cases != "all" else None
    cases = {name: ("snapshots", over) for name, over in CASES.items()} | YARDSTICKS
    if wanted:
        cases = {k: v for k, v in cases.items() if any(k.startswith(w) for w in wanted)}
    results = {}
    for name, (source, over) in cases.items():
        rows = []
        for s in range(args.seeds):
            gen = torch.Generator().manual_seed(derive_seed(s, "initial"))
            labeled = torch.randperm(data.x_train.shape[0], generator=gen)[: args.labels]
            rows.append(measure(data, labeled, TrainConfig(**base, **over), source, derive_seed(s, 0, "train")))
        keys = [k for k in rows[0] if isinstance(rows[0][k], (int, float)) and rows[0][k] is not None]
        summary = {k: statistics.fmean(r[k] for r in rows if r.get(k) is not None) for k in keys}
        results[name] = {"config": over, "source": source, "mean": summary, "per_seed": rows}
        print(f"{name:<48} MI {summary['mutual_information']:.4f}  disagree {summary['disagreement']:.4f}  "
              f"spearman {summary.get('entropy_spearman', float('nan')):.3f}  acc final/post/swa "
              f"{summary['final_accuracy']:.3f}/{summary['posterior_accuracy']:.3f}/"
              f"{summary.get('swa_accuracy', float('nan')):.3f}  train {summary['train_seconds']:.1f}s", flush=True)
    out = {"date": datetime.date.today().isoformat(), "dataset": args.dataset, "labels": args.labels,
           "seeds": args.seeds, "settings": base, "machine": platform.processor() or platform.machine(),
           "cpu_count": os.cpu_count(), "torch": torch.__version__, "command": " ".join(sys.argv), "cases": results}
    path = harness.out_dir(args, "mpts-trajectory") / f"mpts-trajectory-{args.dataset}-{args.labels}.json"
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
