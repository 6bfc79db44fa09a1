"""Selection time per round for every strategy of the MPTS paper's line-up, side by side on one pool.

Pools: `digits` (scikit-learn train split, 1,347 × 64, 10 classes) and `synthetic` (200,000 items × 784, 10 Gaussian
classes, MNIST-sized inputs). Backbone: the MLP (Linear(d, 256) → ReLU embedding, linear head). Protocol: 100 random
labeled items, budget 100; one plain model (100 epochs, Adam) serves every strategy but mpts, which gets its own
MMD-regularised model with the paper's 50 trajectory snapshots (E = 100). Training is not timed: each figure is the wall
time of one `strategy.select(ctx, 100)` (best of --reps after --warmup untimed calls, harness.time_calls).

    python -m bench selection-time --pool digits --device cpu      # this file: python bench/selection_time.py
    python -m bench selection-time --pool synthetic --reps 1 --warmup 0
    python -m bench selection-time --quick                         # 5 epochs, 1 rep: written under build/bench/

Writes bench/results/selection-time/selection-time-<pool>-<machine>.json and prints a markdown table; with --update,
the strategies measured replace their rows in an existing file (each row keeps its own date) and the other rows stay.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

from mpts_fast.data import load_dataset  # noqa: E402
from mpts_fast.models import build_model  # noqa: E402
from mpts_fast.strategies import SelectionContext, build_strategy  # noqa: E402
from mpts_fast.training import TrainConfig, Trainer  # noqa: E402

LINE_UP = ["random", "entropy", "bald", "badge", "coreset", "cdal", "cdal_hellinger", "alfa_mix", "deepfool", "gcnal",
           "mpts"]
WHAT = {
    "random": "permutation",
    "entropy": "1 forward pass over the pool",
    "bald": "10 MC-dropout forward passes",
    "badge": "forward + k-means++ over factored gradient embeddings",
    "coreset": "embeddings + greedy k-center (labeled as centres)",
    "cdal": "softmax + furthest-first under the symmetric KL: one (N, 2C) matrix-vector product per pick",
    "cdal_hellinger": "softmax + k-center over C² contextual features",
    "alfa_mix": "embeddings, ≤ 32 caps × 5 learned-α steps × C anchors through the head, scikit-learn k-means",
    "deepfool": "≤ 50 DeepFool iterations × (C + 1) passes over the whole pool",
    "gcnal": "200 GCN steps on 10,000 sampled + labeled items, k-center on GCN features",
    "mpts": "50 snapshot forward passes, streamed entropy",
}


def synthetic_pool(n: int, d: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, d, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    x = centres[y] + 1.5 * torch.randn(n, d, generator=g)
    return x, y


def load_pool(name: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    if name == "digits":
        data = load_dataset("digits", progress=False)
        return data.x_train, data.y_train, data.num_classes
    x, y = synthetic_pool(200_000, 784, 10)
    return x, y, 10


def train(x_pool, lab, y_lab, classes, device, mpts: bool, epochs: int) -> object:
    cfg = TrainConfig(epochs=epochs, lr=1e-3, batch_size=64, mmd_weight=1.0 if mpts else 0.0,
                      snapshots=epochs // 2 if mpts else 0)
    factory = lambda: build_model("mlp", tuple(x_pool.shape[1:]), classes)  # noqa: E731
    return Trainer(factory, cfg, device).fit(x_pool, lab, y_lab, seed=1 if mpts else 0)


def time_strategy(name: str, ctx_for, budget: int, reps: int, warmup: int) -> dict:
    """Best of `reps` timed calls after `warmup` untimed ones (lazy imports, allocator, faiss/OpenMP start-up).
    Call r gets the context of seed r (built before the clock starts)."""
    strategy = build_strategy(name)
    contexts = iter([ctx_for(r) for r in range(warmup + reps)])

    def one_round() -> None:
        picks = strategy.select(next(contexts), budget)
        assert picks.numel() == budget, (name, picks.numel())

    timing = harness.time_calls(one_round, ctx_for(0).x_pool.device, warmup=warmup, reps=reps)
    return {"strategy": name, "seconds": timing["best_s"], "all_seconds": timing["times_s"],
            "other_cpu_share_of_best": timing.get("other_cpu_share_of_best")}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", choices=["digits", "synthetic"], default="digits")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=None, help="timed calls per strategy (default 3; 1 with --quick)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 1; 0 with --quick)")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default 100; 5 with --quick)")
    ap.add_argument("--strategies", default=",".join(LINE_UP))
    harness.add_common_options(ap, "selection-time", "5 epochs, 1 timed call, no warm-up: checks the pipeline")
    ap.add_argument("--update", action="store_true", help="replace only the measured rows of an existing results file")
    a = ap.parse_args(argv)
    for key, full, quick in (("reps", 3, 1), ("warmup", 1, 0), ("epochs", 100, 5)):
        if getattr(a, key) is None:
            setattr(a, key, quick if a.quick else full)
    device = torch.device(a.device)
    x, y, classes = load_pool(a.pool)
    x = x.to(device)
    budget, initial = 100, 100
    lab = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))[:initial]
    mask = torch.ones(x.shape[0], dtype=torch.bool)
    mask[lab] = False
    unlabeled = mask.nonzero().squeeze(1)
    names = [s.strip() for s in a.strategies.split(",") if s.strip()]
    t0 = time.perf_counter()
    models = {"plain": train(x, lab, y[lab], classes, device, False, a.epochs)}
    if "mpts" in names:
        models["mpts"] = train(x, lab, y[lab], classes, device, True, a.epochs)
    print(f"trained in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    rows = []
    for name in names:
        trained = models["mpts" if name == "mpts" else "plain"]

        def ctx_for(rep: int, trained=trained) -> SelectionContext:
            return SelectionContext(x_pool=x, labeled=lab, y_labeled=y[lab], unlabeled=unlabeled, trained=trained,
                                    num_classes=classes, generator=torch.Generator().manual_seed(rep), seed=rep)

        row = time_strategy(name, ctx_for, budget, a.reps, a.warmup)
        row["work"] = WHAT.get(name, "")
        row["date"] = date.today().isoformat()
        rows.append(row)
        print(f"{name:<10} {row['seconds'] if row['seconds'] is None else round(row['seconds'], 4)}", file=sys.stderr)

    machine = harness.machine_name(a.device)
    result = {"date": date.today().isoformat(), "machine": machine, "cpu": harness.cpu_model(),
              "threads": torch.get_num_threads(), "versions": harness.versions(), "pool": a.pool,
              "pool_size": int(x.shape[0]), "input_dim": int(x[0].numel()), "classes": classes, "initial": initial,
              "budget": budget, "epochs": a.epochs, "reps": a.reps, "warmup": a.warmup, "results": rows}
    path = os.path.join(harness.out_dir(a, "selection-time"), f"selection-time-{a.pool}-{machine}.json")
    if a.update and os.path.exists(path):
        with open(path) as fh:
            old = json.load(fh)
        measured = {row["strategy"]: row for row in rows}
        kept = [measured.pop(r["strategy"], r) for r in old["results"]]
        result["results"] = rows = kept + list(measured.values())
    with open(path, "w") as fh:
        json.dump(result, fh, indent=1)
    print(f"| strategy | {a.pool} ({x.shape[0]:,} items) | what it does |\n|---|---|---|")
    for row in rows:
        cell = "—" if row["seconds"] is None else f"{row['seconds']:.3f} s"
        print(f"| {row['strategy']} | {cell} | {row['work']} |")
    print(f"written: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
