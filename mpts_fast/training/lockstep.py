"""Lockstep training: independent trainings of one architecture on equally many labels (the seeds of one round, the
members of an ensemble) run as one stacked model, one optimiser step for all of them at a time.

A small model's step is dozens of sub-microsecond ops, so its time is per-op overhead, not arithmetic
(docs/benchmarks.md, "Training"); stacking S models pays that overhead once for S. Each model keeps everything its
sequential training has: its initial weights (torch seeded with its own seed before it is built), its own data
order (its own generator), its own learning rate schedule and stopping point (the fitting recipe's target and
settling are per model: a model that has stopped is left as it is while the others go on), its own optimiser state.
MPTS's selection model stacks too: each model its own MMD batch (its generator's draws, as alone),
its own MMD² term, trajectory snapshots, SWA average and λ probe. What is not stacked trains sequentially
(`lockstep_obstacle` says why): dropout (BALD's selection model), BatchNorm (ResNet-18), backbones without a
stacked forward (training/stacked.py), DistributedDataParallel under torchrun (--ddp).

A model's slice of the stack computes the same floats whatever else is stacked with it (batched GEMMs are per
matrix), so where stacking applies even a single training goes through it: a model comes out the same whether it
trained alone (a resumed run's last seed, `mpts-fast select`) or with others. The sequential trainer (`lockstep`
off) computes with torch's unbatched ops and agrees to float rounding, which grows along training like any
change of reduction order (docs/benchmarks.md, "Training", gives the measured spread).
"""
from __future__ import annotations

import math
import time

import torch
from torch import nn
from torch.nn import functional as F

from mpts_fast.training.config import TrainConfig
from mpts_fast.training.course import LRDriver, end_fitting_epoch, start_course
from mpts_fast.training.mmd import mmd_penalty
from mpts_fast.training.stacked import StackedAdam, StackedModels, stacking_obstacle


def lockstep_obstacle(config: TrainConfig, model: nn.Module, distributed: bool) -> str | None:
    """Why trainings of `model`'s kind under `config` cannot run stacked (None: they can)."""
    if distributed:
        return "DistributedDataParallel training under torchrun"
    return stacking_obstacle(model)


def fit_lockstep(model_factory, config: TrainConfig, device: torch.device, x_pool: torch.Tensor,
                 labeled: list[torch.Tensor], y_labeled: list[torch.Tensor], seeds: list[int]) -> list[dict]:
    """Trains len(seeds) models together; returns per model the dict Trainer._fit_one returns (plus "lockstep": how
    many were stacked, "seconds": its share of the time).

    labeled[i]: (n_L,) int64 pool indices, the same n_L for all; y_labeled[i]: (n_L,) int64; seeds[i]: the seed the
    training of model i takes (its weights, its data order, its MMD batches).
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
    params = list(stack.params.values())
    opt = StackedAdam(params, weight_decay=cfg.weight_decay)
    gens = [torch.Generator().manual_seed(seed) for seed in seeds]
    n_models, n_l, n_pool = len(seeds), labeled[0].numel(), x_pool.shape[0]
    labs = torch.stack([lab.to(x_pool.device) for lab in labeled])
    ys = torch.stack([y.to(device) for y in y_labeled])
    steps = -(-n_l // min(cfg.batch_size, n_l))
    courses = [start_course(cfg, steps, LRDriver(cfg.lr), probed=cfg.mmd_weight > 0) for _ in seeds]
    mmd = cfg.mmd_weight > 0
    step, epoch = 0, 0
    while any(c.training for c in courses):
        t0 = time.perf_counter()
        perms = torch.stack([torch.randperm(n_l, generator=g) for g in gens])
        counted = [c.training and c.fitting for c in courses]  # the fitting phase's running accuracy
        correct = torch.zeros(n_models, dtype=torch.int64, device=device)
        seen = [0] * n_models
        for part in torch.tensor_split(perms, steps, dim=1):
            active = [c.training and step < c.end for c in courses]
            if not any(active):  # every model's steps ended within this epoch
                break
            for c, on in zip(courses, active):
                if on:
                    c.schedule.before(step)
            lrs = [c.driver.param_groups[0]["lr"] for c in courses]
            part = part.to(labs.device)
            rows, b = torch.gather(labs, 1, part), part.shape[1]
            xb, yb = x_pool[rows].to(device), torch.gather(ys, 1, part.to(device))
            if mmd:
                # each model's MMD batch from its own generator, drawn only while it trains (as alone)
                draws = torch.stack([torch.randint(n_pool, (b,), generator=g) if on else
                                     torch.zeros(b, dtype=torch.int64) for g, on in zip(gens, active)])
                z = stack.embed(torch.cat([xb, x_pool[draws.to(x_pool.device)].to(device)], 1))
                logits = stack.head(z[:, :b])
                zero = torch.zeros((), device=device)
                weighted = torch.stack([cfg.mmd_weight * mmd_penalty(z[s, :b], z[s, b:]) if on else zero
                                        for s, on in enumerate(active)])
            else:
                logits = stack.head(stack.embed(xb))
            losses = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none").view(n_models, -1)
            losses = losses.mean(1) + weighted if mmd else losses.mean(1)
            if any(counted):
                hits = (logits.detach().argmax(2) == yb).sum(1)
                mask = torch.tensor([on and k for on, k in zip(active, counted)], device=device)
                correct += torch.where(mask, hits, torch.zeros_like(hits))
                for s, on in enumerate(active):
                    seen[s] += b if on and counted[s] else 0
            opt.zero_grad()
            probed = [s for s, (c, on) in enumerate(zip(courses, active)) if on and c.probe and c.probe.wants(step)]
            if probed:  # one backward pass of the probed models' λ·MMD² alone, the graph kept
                mmd_grads = torch.autograd.grad(weighted[probed].sum(), params, retain_graph=True,
                                                allow_unused=True)
            losses.sum().backward()  # each model's loss reaches only its own slice of the stack
            if probed:
                reached = [(g, p) for g, p in zip(mmd_grads, params) if g is not None]
                for s in probed:
                    courses[s].probe.measure([g[s] for g, _ in reached], [p.grad[s] for _, p in reached])
            opt.step(lrs, active)
            for s, (c, on) in enumerate(zip(courses, active)):
                if not on:
                    continue
                c.lr_trace.append(float(lrs[s]))
                c.schedule.after(step)
                c.steps_done = step + 1
                if step in c.keep:
                    c.take_snapshot(stack.load_into(s))
            step += 1
        epoch += 1
        spent = time.perf_counter() - t0
        stepped = [s for s, c in enumerate(courses) if c.training]
        last_losses = losses.detach().tolist()  # one host read per epoch, as alone
        for s in stepped:
            c = courses[s]
            c.epoch_seconds.append(spent / len(stepped))  # the epoch's time shared among its models
            if not math.isfinite(last_losses[s]):
                where = (f"at optimiser step {c.steps_done}" if cfg.recipe == "fit" else
                         f"in epoch {epoch} of {cfg.epochs}")
                raise FloatingPointError(f"training diverged: the loss is {last_losses[s]} {where} (try a lower "
                                         f"learning rate or mmd_weight)")
            if c.fitting:
                accuracy = correct[s].item() / seen[s] if seen[s] else 0.0
                end_fitting_epoch(cfg, c, accuracy, c.steps_done, epoch, steps)
            elif c.steps_done >= c.end:
                c.training = False
    share = (time.perf_counter() - start) / n_models
    return [{**c.result(model, x_pool, labs[s], steps, c.steps_done), "lockstep": n_models, "seconds": share}
            for s, (model, c) in enumerate(zip(stack.unstack(), courses))]
