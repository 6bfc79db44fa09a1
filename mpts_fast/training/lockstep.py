"""Lockstep training: independent trainings of one architecture on equally many labels (the seeds of one round, the
members of an ensemble) run as one stacked model, one optimiser step for all of them at a time.

A small model's step is dozens of sub-microsecond ops, so its time is per-op overhead, not arithmetic
(docs/benchmarks.md, "Training"); stacking S models pays that overhead once for S. Each model keeps everything its
sequential training has: its initial weights (torch seeded with its own seed before it is built), its own data
order (its own generator), its own learning rate schedule and stopping point (the fitting recipe's target and
settling are per model: a model that has stopped is left as it is while the others go on), its own optimiser state.
What is not stacked trains sequentially (`lockstep_obstacle` says why): the MMD term and
trajectory snapshots (MPTS's selection model), dropout (BALD's), BatchNorm (ResNet-18), torchrun.

A model's slice of the stack computes the same floats whatever else is stacked with it (batched GEMMs are per
matrix), so where stacking applies even a single training goes through it: a model comes out the same whether it
trained alone (a resumed run's last seed, `mpts-fast select`) or with others. The sequential trainer (`lockstep`
off) computes with torch's unbatched ops and agrees to float rounding, which grows along training like any
change of reduction order (docs/benchmarks.md, "Lockstep training", gives the measured spread).
"""
from __future__ import annotations

import math
import time
from types import SimpleNamespace

import torch
from torch import nn
from torch.nn import functional as F

from mpts_fast.training.config import TrainConfig
from mpts_fast.training.recipe import STOP_BUDGET, STOP_EPOCHS, STOP_TARGET, FitScheduler, warmup_steps
from mpts_fast.training.stacked import StackedAdam, StackedModels, stacking_obstacle


def lockstep_obstacle(config: TrainConfig, model: nn.Module, distributed: bool) -> str | None:
    """Why trainings of `model`'s kind under `config` cannot run stacked (None: they can)."""
    if distributed:
        return "DistributedDataParallel training under torchrun"
    if config.mmd_weight > 0:
        return "the MMD term (MPTS's selection model)"
    if config.snapshots != 0:
        return "trajectory snapshots"
    return stacking_obstacle(model)


def fit_lockstep(model_factory, config: TrainConfig, device: torch.device, x_pool: torch.Tensor,
                 labeled: list[torch.Tensor], y_labeled: list[torch.Tensor], seeds: list[int]) -> list[dict]:
    """Trains len(seeds) models together; returns per model the dict Trainer._fit_one returns.

    labeled[i]: (n_L,) int64 pool indices, the same n_L for all; y_labeled[i]: (n_L,) int64; seeds[i]: the seed the
    sequential training of model i would take (its weights, its data order).
    """
    cfg = config
    start = time.perf_counter()
    models = []
    for seed in seeds:
        torch.manual_seed(seed)  # the weights each model gets when trained alone
        models.append(model_factory().to(device))
    for m in models:
        m.train()
    stack = StackedModels(models)
    opt = StackedAdam(list(stack.params.values()), weight_decay=cfg.weight_decay)
    gens = [torch.Generator().manual_seed(seed) for seed in seeds]
    n_models, n_l = len(seeds), labeled[0].numel()
    labs = torch.stack([lab.to(x_pool.device) for lab in labeled])
    ys = torch.stack([y.to(device) for y in y_labeled])
    steps = -(-n_l // min(cfg.batch_size, n_l))
    fitting = cfg.recipe == "fit"
    # each model's learning rate comes from its own scheduler driving a stand-in for its optimiser's param_groups
    groups = [SimpleNamespace(param_groups=[{"lr": cfg.lr}]) for _ in seeds]
    schedules = ([FitScheduler(g, cfg.lr, cfg.steps, warmup_steps(cfg.steps, cfg.warmup_fraction)) for g in groups]
                 if fitting else None)
    ends = [cfg.steps if fitting else cfg.epochs * steps] * n_models
    training = [True] * n_models
    reached: list[tuple[int, float] | None] = [None] * n_models
    fits: list[dict | None] = [None] * n_models
    lr_traces: list[list[float]] = [[] for _ in seeds]
    epoch_seconds: list[list[float]] = [[] for _ in seeds]
    last_step = [0] * n_models
    step, epoch = 0, 0
    while any(training):
        t0 = time.perf_counter()
        perms = torch.stack([torch.randperm(n_l, generator=g) for g in gens])
        correct = torch.zeros(n_models, dtype=torch.int64, device=device)
        seen = [0] * n_models
        for part in torch.tensor_split(perms, steps, dim=1):
            active = [on and step < end for on, end in zip(training, ends)]
            if not any(active):  # every model's step budget ended within this epoch
                break
            lrs = []
            for s, on in enumerate(active):
                if on and schedules is not None:
                    schedules[s].before(step)
                lrs.append(groups[s].param_groups[0]["lr"])
            part = part.to(labs.device)
            rows = torch.gather(labs, 1, part)
            xb, yb = x_pool[rows].to(device), torch.gather(ys, 1, part.to(device))
            logits, _ = stack(xb)
            losses = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none").view(n_models, -1).mean(1)
            if fitting:
                hits = (logits.detach().argmax(2) == yb).sum(1)
                mask = torch.tensor(active, device=device)
                correct += torch.where(mask, hits, torch.zeros_like(hits))
                for s, on in enumerate(active):
                    seen[s] += part.shape[1] if on else 0
            opt.zero_grad()
            losses.sum().backward()  # each model's loss reaches only its own slice of the stack
            opt.step(lrs, active)
            for s, on in enumerate(active):
                if on:
                    lr_traces[s].append(float(lrs[s]))
                    last_step[s] = step + 1
            step += 1
        epoch += 1
        spent = time.perf_counter() - t0
        stepped = [s for s in range(n_models) if training[s]]
        for s in stepped:  # the epoch's time shared among the models that trained in it
            epoch_seconds[s].append(spent / len(stepped))
        last_losses = losses.detach().tolist()  # one host read per epoch, as the sequential trainer does
        accuracies = (correct.tolist() if fitting else None)
        for s in stepped:
            if not math.isfinite(last_losses[s]):
                where = f"in epoch {epoch} of {cfg.epochs}" if not fitting else f"at optimiser step {last_step[s]}"
                raise FloatingPointError(f"training diverged: the loss is {last_losses[s]} {where} (try a lower "
                                         f"learning rate or mmd_weight)")
            if not fitting:
                if last_step[s] >= ends[s]:
                    training[s] = False
                continue
            accuracy = accuracies[s] / seen[s] if seen[s] else 0.0
            done = last_step[s]
            if reached[s] is None and cfg.target_accuracy is not None and accuracy >= cfg.target_accuracy:
                reached[s] = (done, accuracy)
                tail = int(round(cfg.settle * done))
                if tail > 0 and done < cfg.steps:
                    schedules[s].settle(done, min(tail, cfg.steps - done))
                ends[s] = min(cfg.steps, done + tail)
            stop = (STOP_TARGET if reached[s] is not None and done >= ends[s] else
                    STOP_BUDGET if done >= cfg.steps else
                    STOP_EPOCHS if cfg.epochs is not None and epoch >= cfg.epochs else None)
            if stop is not None:
                training[s] = False
                ends[s] = done
                fits[s] = {"steps": done, "stop": stop, "running_accuracy": accuracy,
                           "target_step": None if reached[s] is None else reached[s][0]}
    for m in stack.unstack():
        m.eval()
    out = []
    for s, model in enumerate(models):
        fit = fits[s] or {"steps": last_step[s], "stop": STOP_EPOCHS, "running_accuracy": None, "target_step": None}
        out.append({"model": model, "snapshots": [], "epoch_seconds": epoch_seconds[s], "swa_model": None,
                    "plan": None if fitting else _paper_plan(cfg, steps), "lr_trace": lr_traces[s], "probe": None,
                    "fit": fit, "total_steps": last_step[s], "lockstep": n_models,
                    "seconds": (time.perf_counter() - start) / n_models})
    return out


def _paper_plan(cfg: TrainConfig, steps: int):
    from mpts_fast.training.schedule import plan_trajectory

    return plan_trajectory(cfg, steps)
