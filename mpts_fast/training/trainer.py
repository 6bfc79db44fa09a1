"""Trains a backbone from scratch on the labeled set: cross-entropy + optional MMD (MPTS), cyclic-LR snapshots (cycles
counted in optimiser steps, training/schedule.py) with their SWA average, ensembles."""
from __future__ import annotations

import hashlib
import math
import time
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from mpts_fast.distributed import ddp as _ddp
from mpts_fast.distributed.group import rank as _rank, world_size as _world_size
from mpts_fast.training.config import TrainConfig
from mpts_fast.training.course import end_fitting_epoch, start_course
from mpts_fast.training.lockstep import fit_lockstep, lockstep_obstacle
from mpts_fast.training.mmd import mmd_penalty
from mpts_fast.training.posterior import TrainedModel
from mpts_fast.training.threads import step_flops, training_threads


def derive_seed(*keys: int | str) -> int:
    """A 63-bit seed from a tuple of keys (run seed, round, role...), so each round's randomness is independent of the
    history of the process — a resumed run draws exactly what an uninterrupted one did."""
    digest = hashlib.sha256("/".join(map(str, keys)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class Trainer:
    """Fits `model_factory()` on (x_pool[labeled], y_labeled).

    model_factory: builds a fresh backbone (with `embed` and `head`). x_pool: (N, *shape) float32, the whole pool (the MMD
    term draws its second batch uniformly from L ∪ U), on the training device or in host memory (batches are moved).
    ddp: under torchrun with more than one rank, train with DistributedDataParallel, each rank its share of every global
    batch (distributed/ddp.py: batch semantics, per-rank MMD batch, BatchNorm); in one process the plain path.
    lockstep: fit_many() (and fit() of an ensemble) trains independent models as one stacked model where it can
    (training/lockstep.py); False trains them one by one.
    """

    def __init__(self, model_factory: Callable[[], nn.Module], config: TrainConfig, device: torch.device | str = "cpu",
                 progress: bool = False, ddp: bool = False, lockstep: bool = True) -> None:
        self.model_factory = model_factory
        self.config = config
        self.device = torch.device(device)
        self.progress = progress
        self.ddp = ddp
        self.lockstep = lockstep
        self._flops: dict[tuple, float | None] = {}
        self._meta_model: nn.Module | None = None
        self.threads: int | None = None  # torch's intra-op threads the last fit() trained with
        self.lockstep_obstacle: str | None = None  # why the last fit_many() trained one by one (None: stacked)

    def step_flops(self, input_shape: tuple[int, ...], n_labeled: int, models: int = 1) -> float | None:
        """FLOPs of one optimiser step on `n_labeled` labels (training/threads.py; cached per shape and batch): the
        batch is min(batch_size, n_labeled) rows, twice that with the MMD term's joint forward pass; `models` stacked
        models take `models` times that (counted as one model's step on that many rows)."""
        rows = min(self.config.batch_size, n_labeled) * (2 if self.config.mmd_weight > 0 else 1) * models
        key = (tuple(input_shape), rows)
        if key not in self._flops:
            self._flops[key] = step_flops(self.model_factory, tuple(input_shape), rows)
        return self._flops[key]

    def fit(self, x_pool: torch.Tensor, labeled: torch.Tensor, y_labeled: torch.Tensor, seed: int) -> TrainedModel:
        """labeled: (n_L,) int64 pool indices; y_labeled: (n_L,) int64 classes in the same order. Returns the trained model,
        its trajectory snapshots (CPU state dicts), their SWA average, the schedule, and any extra ensemble members."""
        return self.fit_many(x_pool, [labeled], [y_labeled], [seed])[0]

    def fit_many(self, x_pool: torch.Tensor, labeled: list[torch.Tensor], y_labeled: list[torch.Tensor],
                 seeds: list[int]) -> list[TrainedModel]:
        """fit() of several independent trainings (the seeds of one round): labeled[i], y_labeled[i], seeds[i] as
        fit() takes them. Where they can (training/lockstep.py: a backbone with a stacked forward and no dropout or
        BatchNorm, not under torchrun's DDP) and `lockstep` is on, every model (each ensemble member of each
        training) trains in one stacked run per labeled-set size; each model comes out as it would trained alone
        through the stack. `lockstep_obstacle` is then None, else why they trained one by one (the sequential trainer;
        equal to the stacked one to float rounding)."""
        if not (len(labeled) == len(y_labeled) == len(seeds)):
            raise ValueError(f"labeled, y_labeled, seeds: expected one per training, got {len(labeled)}, "
                             f"{len(y_labeled)}, {len(seeds)}")
        for lab, y in zip(labeled, y_labeled):
            if lab.numel() == 0:
                raise ValueError("labeled: training needs at least one labeled item")
            if lab.shape != y.shape:
                raise ValueError(f"y_labeled: expected shape {tuple(lab.shape)}, got {tuple(y.shape)}")
        if not seeds:
            return []
        members = self.config.ensemble_size
        jobs = [(i, derive_seed(seed, "member", m)) for i, seed in enumerate(seeds) for m in range(members)]
        self.lockstep_obstacle = self.stacking_obstacle()
        stacked = self.lockstep_obstacle is None
        by_size: dict[int, list[int]] = {}  # a stack trains on equally many labels
        for j, (i, _) in enumerate(jobs):
            by_size.setdefault(labeled[i].numel(), []).append(j)
        # small models train on one thread (training/threads.py): a function of the model and batch, not the load;
        # a stacked step counts as its models' steps together
        stack = max(len(group) for group in by_size.values()) if stacked else 1
        flops = (self.step_flops(tuple(x_pool.shape[1:]), max(by_size), stack) if self.device.type == "cpu" else None)
        runs: list[dict] = [{} for _ in jobs]
        with training_threads(flops, self.device) as self.threads:
            for group in by_size.values():
                if stacked:
                    done = fit_lockstep(self.model_factory, self.config, self.device, x_pool,
                                        [labeled[jobs[j][0]].to(x_pool.device) for j in group],
                                        [y_labeled[jobs[j][0]].to(x_pool.device) for j in group],
                                        [jobs[j][1] for j in group])
                    for j, run in zip(group, done):
                        runs[j] = run
                    continue
                for j in group:
                    t0 = time.perf_counter()
                    i, member_seed = jobs[j]
                    runs[j] = self._fit_one(x_pool, labeled[i].to(x_pool.device), y_labeled[i].to(x_pool.device),
                                            member_seed)
                    runs[j]["seconds"] = time.perf_counter() - t0
        out = []
        for i in range(len(seeds)):
            own = runs[i * members:(i + 1) * members]
            first = own[0]
            out.append(TrainedModel(first["model"], first["snapshots"], [r["model"] for r in own],
                                    self.config.eval_batch_size, train_seconds=sum(r["seconds"] for r in own),
                                    epoch_seconds=[t for r in own for t in r["epoch_seconds"]],
                                    swa_model=first["swa_model"], trajectory=first["plan"],
                                    lr_trace=first["lr_trace"], gradient_probe=first["probe"],
                                    fit_steps=first["fit"]["steps"], fit_stop=first["fit"]["stop"],
                                    fit_running_accuracy=first["fit"]["running_accuracy"],
                                    total_steps=first["total_steps"], lockstep=first.get("lockstep")))
        return out

    def stacking_obstacle(self) -> str | None:
        """Why fit_many() would train this trainer's models one by one (None: it stacks them)."""
        if not self.lockstep:
            return "switched off"
        return lockstep_obstacle(self.config, self._template(), self.ddp and _world_size() > 1)

    def _template(self) -> nn.Module:
        """A model as the factory builds it, on the meta device (its kind and modules; no weights drawn)."""
        if self._meta_model is None:
            with torch.device("meta"):
                self._meta_model = self.model_factory()
        return self._meta_model

    def _fit_one(self, x_pool, labeled, y_labeled, seed) -> dict:
        cfg = self.config
        torch.manual_seed(seed)  # weights and dropout masks
        model = self.model_factory().to(self.device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        gen = torch.Generator().manual_seed(seed)
        n_l, n_pool = labeled.numel(), x_pool.shape[0]
        steps = -(-n_l // min(cfg.batch_size, n_l))
        world = _world_size() if self.ddp else 1  # world 1 (or no --ddp): the single-process path below
        net: nn.Module = _ddp.TrainStep(model)
        rank = _rank() if world > 1 else 0
        if world > 1:
            _ddp.check_ddp_sizes(n_l, cfg.batch_size, world)
            net = _ddp.wrap(net, self.device)  # rank 0's initial weights everywhere
            torch.manual_seed(derive_seed(seed, "dropout", rank))  # each rank's own dropout masks
            gen = torch.Generator().manual_seed(derive_seed(seed, "mmd", rank))  # each rank's own MMD draws
        # λ measured in one process only: under DDP .grad holds the ranks' average, the probe's own backward pass one
        # rank's
        course = start_course(cfg, steps, opt, probed=cfg.mmd_weight > 0 and world == 1)
        trainable = [p for p in model.parameters() if p.requires_grad]
        model.train()
        # disable=None: tqdm switches itself off when stderr is not a terminal (logs, CI)
        bar = tqdm(total=cfg.epochs, desc="epochs", leave=False, disable=None if self.progress else True,
                   dynamic_ncols=True)
        step, epoch = 0, 0
        while step < course.end:
            t0 = time.perf_counter()
            # nearly equal batches: no size-1 batch for BatchNorm, every labeled item once per epoch
            parts = (_ddp.epoch_parts(n_l, steps, epoch, seed, rank, world) if world > 1 else
                     torch.tensor_split(torch.randperm(n_l, generator=gen), steps))
            correct = torch.zeros((), dtype=torch.int64, device=self.device) if course.fitting else None
            seen = 0
            for part in parts:
                if step >= course.end:  # the fitting phase's step budget ends within an epoch
                    break
                course.schedule.before(step)
                part = part.to(labeled.device)
                # the pool may stay in host memory while the model trains on the GPU: move batches, not the pool
                xb, yb = x_pool[labeled[part]].to(self.device), y_labeled[part].to(self.device)
                if cfg.mmd_weight > 0:
                    draw = torch.randint(n_pool, (part.numel(),), generator=gen).to(x_pool.device)
                    # one forward pass over both batches: half the launches of two passes (BatchNorm sees the joint batch)
                    logits, z_l, z_all = net(torch.cat([xb, x_pool[draw].to(self.device)]), part.numel())
                    weighted_mmd = cfg.mmd_weight * mmd_penalty(z_l, z_all)
                    loss = F.cross_entropy(logits, yb) + weighted_mmd
                else:
                    logits = net(xb)
                    loss = F.cross_entropy(logits, yb)
                if correct is not None:  # the stopping rule's running accuracy: no host read until the epoch ends
                    correct += (logits.detach().argmax(1) == yb).sum()
                    seen += part.numel()
                opt.zero_grad(set_to_none=True)
                probed = course.probe is not None and course.probe.wants(step)
                if probed:
                    course.probe.before_backward(trainable, weighted_mmd)
                loss.backward()
                if probed:
                    course.probe.after_backward()
                opt.step()
                course.lr_trace.append(float(opt.param_groups[0]["lr"]))
                course.schedule.after(step)
                if step in course.keep:
                    if world > 1:
                        _ddp.broadcast_buffers(model)  # rank 0's BatchNorm statistics: the same snapshot on every rank
                    course.take_snapshot(model)
                step += 1
            epoch += 1
            course.epoch_seconds.append(time.perf_counter() - t0)
            # one host read per epoch (not per step): the MMD op no longer syncs on a GPU, so a diverged model would
            # otherwise train on NaN silently until the end of the round
            last_loss = float(loss.detach())
            if not math.isfinite(last_loss):
                where = f"in epoch {epoch} of {cfg.epochs}" if not course.fitting else f"at optimiser step {step}"
                raise FloatingPointError(
                    f"training diverged: the loss is {last_loss} {where} (try a lower learning rate or mmd_weight)")
            if not bar.disable:
                bar.set_postfix(loss=f"{last_loss:.3f}", refresh=False)
            bar.update(1)
            if course.fitting:
                end_fitting_epoch(cfg, course, _running_accuracy(correct, seen, world), step, epoch, steps)
        bar.close()
        if world > 1:
            _ddp.broadcast_buffers(model)
        return course.result(model, x_pool, labeled, steps, step)


def _running_accuracy(correct: torch.Tensor, seen: int, world: int) -> float:
    """The epoch's running training accuracy over every rank's batches (under DDP each rank saw its share)."""
    if world > 1:
        import torch.distributed as dist

        counts = torch.stack([correct.double(), torch.tensor(float(seen), dtype=torch.float64,
                                                             device=correct.device)])
        dist.all_reduce(counts)
        return float(counts[0] / counts[1]) if float(counts[1]) else 0.0
    return float(correct) / seen if seen else 0.0
