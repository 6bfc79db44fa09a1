"""MPTS training overhead: time per epoch of MPTS training (cross-entropy + MMD² on a second batch from L ∪ U, cyclic-LR
snapshots) against plain cross-entropy training, same data, same labeled set, same process.

    python -m bench al-overhead [--epochs 6] [--skip-resnet]   # ~1.5 min; bench/results/al-overhead/
    python -m bench al-overhead --quick                          # 2 epochs, no ResNet: written under build/bench/

Cases: the digits MLP (|L| = 200), an MNIST-shaped MLP (d = 784, |L| = 1000, pool 50,000) and a CIFAR-shaped ResNet-18
(|L| = 256, pool 2,000). Reported: median epoch seconds of each and the ratio MPTS / plain. The MMD term needs
embeddings of a second batch as large as the labeled one, with gradients (MPTS paper Eq. 7), so where the backbone's
compute dominates (ResNet-18) the floor of the ratio is ~2× the rows per step; where per-step overhead dominates
(small MLPs) the joint forward pass keeps it low.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

from mpts_fast.data import load_dataset  # noqa: E402
from mpts_fast.models import build_model  # noqa: E402
from mpts_fast.training import TrainConfig, Trainer  # noqa: E402


def epoch_seconds(model: str, shape, classes: int, x_pool, y_pool, n_labeled: int, cfg: TrainConfig) -> float:
    lab = torch.arange(n_labeled)
    trainer = Trainer(lambda: build_model(model, shape, classes), cfg)
    trained = trainer.fit(x_pool, lab, y_pool[lab], seed=0)
    # the trainer clocks each epoch itself (time.perf_counter around the epoch's steps): timing fit() from outside
    # would add model building and the snapshot bookkeeping to every figure
    return statistics.median(trained.epoch_seconds[1:] or trained.epoch_seconds)  # the first epoch warms caches


def cases(skip_resnet: bool):
    d = load_dataset("digits")
    yield "digits MLP, |L|=200", "mlp", d.input_shape, 10, d.x_train, d.y_train, 200
    g = torch.Generator().manual_seed(0)
    yield ("MNIST-shaped MLP, |L|=1000, pool 50k", "mlp", (1, 28, 28), 10, torch.randn(50_000, 1, 28, 28, generator=g),
           torch.randint(10, (50_000,), generator=g), 1000)
    if not skip_resnet:
        yield ("CIFAR-shaped ResNet-18, |L|=256, pool 2k", "resnet18", (3, 32, 32), 10,
               torch.randn(2000, 3, 32, 32, generator=g), torch.randint(10, (2000,), generator=g), 256)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_common_options(ap, "al-overhead", "2 epochs, no ResNet-18: checks the pipeline, not a result")
    ap.add_argument("--epochs", type=int, default=6, help="epochs per MLP run (the ResNet-18 runs 2)")
    ap.add_argument("--skip-resnet", action="store_true")
    args = ap.parse_args()
    rows = []
    for name, model, shape, classes, x, y, n_l in cases(args.skip_resnet or args.quick):
        e = 2 if args.quick or model != "mlp" else args.epochs
        plain = epoch_seconds(model, shape, classes, x, y, n_l, TrainConfig(epochs=e))
        mpts = epoch_seconds(model, shape, classes, x, y, n_l, TrainConfig(epochs=e, mmd_weight=1.0, snapshots=e // 2))
        rows.append({"case": name, "plain_epoch_s": plain, "mpts_epoch_s": mpts, "ratio": mpts / plain})
        print(f"{name:<42} plain {plain * 1e3:8.1f} ms  mpts {mpts * 1e3:8.1f} ms  ratio {mpts / plain:5.2f}", flush=True)
    result = {"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
              "cpu": harness.cpu_model(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "quick": args.quick, "rows": rows}
    path = harness.out_dir(args, "al-overhead") / f"{result['date']}-al-overhead-cpu.json"
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
