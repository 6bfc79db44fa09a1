"""One AL round's training as the loop runs it (our Trainer, recipes `paper` and `fit`) next to the same work written as
a plain PyTorch loop the obvious way (DeepAL+ / ALFA-Mix: DataLoader(shuffle=True), model.train(), zero_grad /
backward / step), per optimiser step of one model, with torch's default intra-op threads ("auto": ours applies its
per-model thread rule, training/threads.py, as the loop does; the plain loop runs on the default count) and with 1
thread for both, quiet and with one core held.

A round of `--seeds` seeds (default 5, as `--repeats 5`): each seed its own labeled set of |L| items and its own
model. Ours trains them as the loop does (Trainer.fit_many: one stacked model where the backbone allows,
training/lockstep.py), the plain loop one after another; "ours, one by one" is our trainer with lockstep off (what the
thread rule alone gives). Every figure is per model-step: the round's time over the optimiser steps of all its models.

    python -m bench training                 # ~5-8 min on 2 cores; bench/results/training/
    python -m bench training --quick         # tiny step counts, no ResNet-18: checks the pipeline
    python -m bench training --cases openml6-mlp,digits-mlp --threads 1 --seeds 1
    python -m bench training --device cuda --quick   # on a GPU: the same three ways, launch-bound there

Cases: the paper's OpenML-6 MLP (16 -> 256 -> 26 on a synthetic 18,000-item pool of that shape, |L| = 500), the
digits MLP (|L| = 200), the 1-D CNN on MNIST-1D (|L| = 500) and a CIFAR-shaped ResNet-18 (32x32, |L| = 64, a few
steps). Every figure is per optimiser step: ours = the whole fit() (model building, the schedule, the stopping rule's
bookkeeping included) over the steps it took; the plain loop runs exactly as many steps. Reported: ms per step,
steps/s, the ratio plain / ours, and the fraction of the arithmetic floor: FLOPs of one training step (forward +
backward, counted by torch.utils.flop_counter; the optimiser's elementwise update is not counted) at the torch.mm
GEMM rate measured in the same run with the same thread count.

Ours and plain are timed round-robin (harness.time_interleaved), so a load that comes and goes hits both alike:
read ratios, not absolute times, on a shared machine (the JSON records the load average and the CPU share other
processes used during every call).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import mpts_fast  # noqa: F401  isort: skip  (before torch: the package's libgomp defaults, as users get them)
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from contention import BusyCores, load_average  # noqa: E402

from mpts_fast.models import build_model  # noqa: E402
from mpts_fast.training import TrainConfig, Trainer  # noqa: E402

LOADS = {"quiet": [], "one_core_held": [0]}


@dataclass(frozen=True)
class TrainingCase:
    name: str
    model: str
    shape: tuple[int, ...]
    classes: int
    n_labeled: int
    batch_size: int
    lr: float
    epochs: int  # recipe paper: epochs per round
    steps: int  # recipe fit: step budget
    what: str


def cases(quick: bool) -> list[TrainingCase]:
    e = 2 if quick else 1
    out = [
        TrainingCase("openml6-mlp", "mlp", (16,), 26, 500, 64, 1e-3, 2 if quick else 10, 40 if quick else 300,
                     "MLP 16->256->26, synthetic pool 18,000 x 16 (OpenML-6's shape), |L|=500, batch 64"),
        TrainingCase("digits-mlp", "mlp", (64,), 10, 200, 64, 1e-3, 2 if quick else 25, 40 if quick else 300,
                     "MLP 64->256->10 on digits, |L|=200, batch 64"),
        TrainingCase("mnist1d-cnn1d", "cnn1d", (40,), 10, 500, 100, 1e-2, 2 if quick else 10, 40 if quick else 200,
                     "1-D CNN on MNIST-1D, |L|=500, batch 100"),
    ]
    if not quick:
        out.append(TrainingCase("cifar-resnet18", "resnet18", (3, 32, 32), 10, 64, 32, 1e-3, e, 4,
                                "ResNet-18 on 32x32x3 synthetic images, |L|=64, batch 32"))
    return out


def pool_for(case: TrainingCase) -> tuple[torch.Tensor, torch.Tensor]:
    """x_pool: (N, *shape) float32, y_pool: (N,) int64."""
    from mpts_fast.data import load_dataset

    if case.name == "digits-mlp":
        d = load_dataset("digits", progress=False)
        return d.x_train, d.y_train
    if case.name == "mnist1d-cnn1d":
        d = load_dataset("mnist1d", progress=False)
        return d.x_train, d.y_train
    g = torch.Generator().manual_seed(0)
    n = 18_000 if case.name == "openml6-mlp" else 1_000
    centers = torch.randn(case.classes, *case.shape, generator=g)
    y = torch.randint(case.classes, (n,), generator=g)
    return centers[y] + 0.8 * torch.randn(n, *case.shape, generator=g), y


def step_flops(case: TrainingCase) -> float:
    """FLOPs of one model's training step (forward + backward of one batch), counted by torch's flop counter."""
    model = build_model(case.model, case.shape, case.classes, dropout=0.0)
    model.train()
    x, y = torch.randn(case.batch_size, *case.shape), torch.randint(case.classes, (case.batch_size,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return float(counter.get_total_flops())


def ours(case: TrainingCase, recipe: str, x_pool, labs, y_labs, steps_out: list, threads_out: list,
         lockstep: bool = True, device: str = "cpu") -> callable:
    """Our trainer on the round's seeds (labs[i], y_labs[i]) as the loop trains them (dropout 0, as every strategy's
    task model). steps_out receives each model's optimiser steps, threads_out the thread count."""
    cfg = (TrainConfig(recipe="paper", epochs=case.epochs, lr=case.lr, batch_size=case.batch_size) if recipe == "paper"
           else TrainConfig(recipe="fit", epochs=None, steps=case.steps, lr=case.lr, batch_size=case.batch_size))
    trainer = Trainer(lambda: build_model(case.model, case.shape, case.classes, dropout=0.0), cfg, device=device,
                      lockstep=lockstep)

    def run():
        trained = trainer.fit_many(x_pool, labs, y_labs, list(range(len(labs))))
        steps_out.append([t.total_steps for t in trained])
        threads_out.append(trainer.threads)

    return run


def plain(case: TrainingCase, x_pool, labs, y_labs, steps: list[int], device: str = "cpu") -> callable:
    """The obvious PyTorch loop (DeepAL+'s Net.train, ALFA-Mix's train), once per seed: DataLoader over its labeled
    set (in host memory, each batch moved to the device), shuffled, Adam, as many optimiser steps as our model of
    that seed took."""
    def one(lab, y_lab, n):
        model = build_model(case.model, case.shape, case.classes, dropout=0.0).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=case.lr)
        loader = DataLoader(TensorDataset(x_pool[lab].cpu(), y_lab.cpu()), batch_size=case.batch_size, shuffle=True)
        model.train()
        done = 0
        while done < n:
            for xb, yb in loader:
                xb, yb = xb.to(device), yb.to(device)
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                done += 1
                if done == n:
                    break

    def run():
        for lab, y_lab, n in zip(labs, y_labs, steps):
            one(lab, y_lab, n)

    return run


def gemm_gflops(threads: int, device: str = "cpu") -> float:
    """torch.mm (1024x512)@(512x1024) float32 at `threads` intra-op threads (on a GPU: 4096x4096x4096), best of 7."""
    torch.set_num_threads(threads)
    n, k = (1024, 512) if device == "cpu" else (4096, 4096)
    a, b = torch.randn(n, k, device=device), torch.randn(k, n, device=device)
    c = torch.empty(n, n, device=device)
    t = harness.time_calls(lambda: torch.mm(a, b, out=c), device=device, warmup=2, reps=7)
    return 2 * n * k * n / t["best_s"] / 1e9


def measure(case: TrainingCase, threads: str, reps: int, flops: float, rates: dict[int, float], seeds: int,
            device: str = "cpu") -> dict:
    """threads: "auto" (torch's default count; ours applies its per-model rule, training/threads.py, as the loop
    does, the plain loop runs on the default count) or a count both run on (set as the user's choice). seeds: models
    in the round, each on its own labeled set."""
    from mpts_fast.training.threads import adopt_threads

    default = max(rates)  # rates is keyed by thread count: torch's default is the largest measured
    adopt_threads(default if threads == "auto" else int(threads), chosen=threads != "auto")
    x_pool, y_pool = pool_for(case)
    x_pool = x_pool.to(device)  # as the loop keeps it
    g = torch.Generator().manual_seed(1)
    labs = [torch.randperm(x_pool.shape[0], generator=g)[: case.n_labeled] for _ in range(seeds)]
    y_labs = [y_pool[lab] for lab in labs]
    rows = {}
    for recipe in ("paper", "fit"):
        steps: list[list[int]] = []
        ran_on: list[int] = []
        mine = ours(case, recipe, x_pool, labs, y_labs, steps, ran_on, device=device)
        mine()  # warm-up, and the step counts the plain loop repeats
        one_by_one = ours(case, recipe, x_pool, labs, y_labs, [], [], lockstep=False, device=device)
        one_by_one()
        n = sum(steps[-1])  # model-steps of the round
        on = {"ours": ran_on[-1], "ours_one_by_one": ran_on[-1], "plain": torch.get_num_threads()}
        timed = harness.time_interleaved({"ours": mine, "ours_one_by_one": one_by_one,
                                          "plain": plain(case, x_pool, labs, y_labs, steps[-1], device)},
                                         device=device, warmup=0, reps=reps)
        per_step = {k: v["median_s"] / n for k, v in timed.items()}
        floor = {k: flops / (rates.get(on[k], default) * 1e9) for k in on}
        rows[recipe] = {
            "seeds": seeds, "steps": n, "steps_per_model": steps[-1], "threads_used": on,
            "ms_per_step": {k: 1e3 * v for k, v in per_step.items()},
            "steps_per_s": {k: 1 / v for k, v in per_step.items()},
            "ratio_plain_over_ours": per_step["plain"] / per_step["ours"],
            "ratio_plain_over_ours_one_by_one": per_step["plain"] / per_step["ours_one_by_one"],
            "fraction_of_floor": {k: floor[k] / v for k, v in per_step.items()},
            "other_cpu_share": {k: v.get("other_cpu_share_all_reps") for k, v in timed.items()},
            "times_s": {k: v["times_s"] for k, v in timed.items()},
        }
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_common_options(ap, "training", "tiny step counts, no ResNet-18: checks the pipeline, not a result")
    ap.add_argument("--cases", default=None, help="comma-separated case names (default: all)")
    ap.add_argument("--threads", default="auto,1",
                    help="comma-separated: 'auto' (torch's default count; ours applies its per-model thread rule as "
                         "the loop does, plain runs on the default count) and/or thread counts both run on "
                         "(default: auto,1)")
    ap.add_argument("--loads", default="quiet,one_core_held", help="comma-separated: quiet, one_core_held")
    ap.add_argument("--reps", type=int, default=3, help="timed calls of each implementation per figure (median)")
    ap.add_argument("--seeds", type=int, default=5, help="models in the round, each on its own labeled set (default 5)")
    ap.add_argument("--device", default="cpu",
                    help="cpu or cuda (on a GPU: threads 'auto' and the quiet load only; the floor at the GPU's "
                         "torch.mm rate)")
    ap.add_argument("--tag", default="", help="suffix of the result file's name")
    args = ap.parse_args()
    if args.device != "cpu":  # thread counts and held CPU cores say nothing about a GPU's step
        args.threads, args.loads = "auto", "quiet"
    default_threads = torch.get_num_threads()
    threads = [t.strip() for t in args.threads.split(",") if t.strip()]
    counts = sorted({default_threads, 1} | {int(t) for t in threads if t != "auto"}, reverse=True)
    chosen = cases(args.quick)
    if args.cases:
        wanted = args.cases.split(",")
        unknown = sorted(set(wanted) - {c.name for c in chosen})
        if unknown:
            ap.error(f"--cases: unknown {', '.join(unknown)}; expected among {', '.join(c.name for c in chosen)}")
        chosen = [c for c in chosen if c.name in wanted]
    loads = args.loads.split(",")
    reps = 1 if args.quick else args.reps
    rates = {t: gemm_gflops(t, args.device) for t in counts}
    result = {"date": dt.date.today().isoformat(), "versions": harness.versions(),
              "machine": harness.machine_name("cuda" if args.device.startswith("cuda") else "cpu"), "device": args.device,
              "torch_default_threads": default_threads, "gemm_gflops": rates, "quick": args.quick,
              "note": "ratios, not absolute times: the machine may be shared (load_average per row)", "rows": []}
    print(f"GEMM rate (torch.mm 1024x512x1024): " + ", ".join(f"{t} thread(s) {r:.1f} GFLOP/s" for t, r in rates.items()))
    print(f"{args.seeds} seed(s) per round; ms per model-step; 'one by one': ours with lockstep off")
    print(f"{'case':<15} {'load':<14} {'thr':>4} {'recipe':<6} {'steps':>5} {'ours ms':>8} {'1-by-1 ms':>9} "
          f"{'plain ms':>8} {'plain/ours':>10} {'plain/1-by-1':>12} {'ours floor':>10} {'plain floor':>11}")
    path = harness.out_dir(args, "training") / f"{result['date']}-training-{result['machine']}{args.tag}.json"
    for case in chosen:
        flops = step_flops(case)
        for load in loads:
            with BusyCores(LOADS[load]):
                for t in threads:
                    # ResNet-18 trains one by one (BatchNorm, training/lockstep.py): one seed says as much as five
                    rows = measure(case, t, reps, flops, rates, 1 if case.model == "resnet18" else args.seeds,
                                   args.device)
                    for recipe, r in rows.items():
                        result["rows"].append({"case": case.name, "what": case.what, "load": load, "threads": t,
                                               "recipe": recipe, "step_flops": flops, "load_average": load_average(),
                                               **r})
                        ms = r["ms_per_step"]
                        print(f"{case.name:<15} {load:<14} {t:>4} {recipe:<6} {r['steps']:>5} "
                              f"{ms['ours']:>8.3f} {ms['ours_one_by_one']:>9.3f} {ms['plain']:>8.3f} "
                              f"{r['ratio_plain_over_ours']:>10.2f} {r['ratio_plain_over_ours_one_by_one']:>12.2f} "
                              f"{r['fraction_of_floor']['ours']:>10.3f} {r['fraction_of_floor']['plain']:>11.3f}",
                              flush=True)
        path.write_text(json.dumps(result, indent=1))  # after every case: a long run interrupted keeps what it has
    from mpts_fast.training.threads import adopt_threads

    adopt_threads(default_threads, chosen=False)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
