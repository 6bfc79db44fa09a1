"""How the training recipes fit: the task model trained under each recipe at every round size of a data set's defaults
(random labeled sets of that size): optimiser steps, why training stopped, final training accuracy (one eval pass),
test accuracy, seconds. The table in docs/mpts.md, "Training recipes", was made with it.

    python bench/recipe_fit.py digits,wine,breast-cancer,iris --seeds 3
    python bench/recipe_fit.py runs/synth50.npz,mnist1d --recipes paper,fit --seeds 1 --out recipe-fit.json
    python bench/recipe_fit.py digits --variant '{"fit-settle0": {"recipe": "fit", "train": {"settle": 0}}}'

--variant adds named RunConfig overrides, with "train" overriding TrainConfig fields of the recipe (settle, steps,
target_accuracy, warmup_fraction) to measure alternatives.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import time
from pathlib import Path

import torch

from mpts_fast.data import load_dataset
from mpts_fast.loop import RunConfig, evaluate, task_train_config
from mpts_fast.models import build_model
from mpts_fast.training import Trainer
from mpts_fast.training.diagnostics import labeled_fit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", help="comma-separated names or .npz paths")
    ap.add_argument("--recipes", default="paper,fit")
    ap.add_argument("--variant", default="{}", help="JSON {name: RunConfig overrides (+ 'train': TrainConfig ones)}")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--out", help="write the rows as JSON here")
    args = ap.parse_args()
    variants = {r: {"recipe": r} for r in args.recipes.split(",") if r}
    variants.update(json.loads(args.variant))
    out: dict = {}
    for name in args.datasets.split(","):
        data = load_dataset(name)
        d = data.defaults
        sizes = [d.initial + k * d.budget for k in range(d.rounds)]
        for vname, over in variants.items():
            over = dict(over)
            train = over.pop("train", {})
            cfg = RunConfig(dataset=name, strategy="entropy", **over).resolved(data)
            tc = dataclasses.replace(task_train_config(cfg), **train)
            factory = lambda: build_model(cfg.model, data.input_shape, data.num_classes, dropout=0.0)  # noqa: E731
            rows = []
            for n in sizes:
                for s in range(args.seeds):
                    lab = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(1000 + s))[:n]
                    t0 = time.perf_counter()
                    tr = Trainer(factory, tc).fit(data.x_train, lab, data.y_train[lab], seed=s)
                    rows.append({"n": n, "seed": s, "steps": tr.total_steps, "stop": tr.fit_stop,
                                 "train_acc": labeled_fit(tr, data.x_train, lab, data.y_train[lab])["train_accuracy"],
                                 "test_acc": evaluate(tr, data)["test_accuracy"],
                                 "seconds": time.perf_counter() - t0})
            out.setdefault(name, {})[vname] = rows
            by = collections.defaultdict(list)
            for r in rows:
                by[r["n"]].append(r)
            mean = lambda rs, k: sum(r[k] for r in rs) / len(rs)  # noqa: E731
            per = [mean(rs, "test_acc") for rs in by.values()]
            print(f"{name} {vname}: test acc mean over sizes {sum(per) / len(per):.3f}; "
                  + " ".join(f"{n}: {mean(rs, 'test_acc'):.3f} ({mean(rs, 'steps'):.0f} steps, train "
                             f"{min(r['train_acc'] for r in rs):.2f})" for n, rs in by.items())
                  + f"; stops {dict(collections.Counter(r['stop'] for r in rows))}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
