"""The MPTS trajectory schedule (§3.3), counted in optimiser steps.

The first ⌈E/2⌉ epochs train at the base LR. The optimiser steps of the last ⌊E/2⌋ epochs hold `cycles` cycles of
`cycle_steps` steps each (any remainder is spent at the base LR before the first cycle, so training ends on a cycle
end). Within a cycle the LR anneals from lr·max_factor to lr·min_factor, both ends included: step k of a c-step cycle
trains at high + (low − high)·α(k / (c − 1)), α the SWALR anneal (linear or cosine); a 1-step cycle trains at low
(SWA's constant-LR case). The weights after a cycle's last step (the lowest LR) are the snapshot candidates.

Counting in steps, not epochs, is the point: with 100 labels and batch 64 an epoch is 2 steps, so an epoch-long cycle
barely leaves its top LR. The total number of steps is E × steps-per-epoch for every strategy, so MPTS trains no longer
than the baselines; when the second half holds fewer cycles than the snapshots asked for, fewer are kept and the plan
says so (`short`), which the loop writes into the round's record.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.optim.swa_utils import SWALR

from mpts_fast.training.config import TrainConfig


@dataclass(frozen=True)
class TrajectoryPlan:
    """Where one training run's optimiser steps go. Steps are 0-based over the whole run."""

    total_steps: int
    steps_per_epoch: int
    cycle_start: int  # first step of the first cycle (== total_steps when there is no cyclic phase)
    cycle_steps: int  # steps per cycle actually used (shorter than asked only when the second half is)
    cycles: int
    snapshot_steps: tuple[int, ...]  # the snapshot is the weights after these steps
    requested: int | None  # snapshots asked for (None: one per cycle, at most ⌊E/2⌋)
    base_lr: float
    high_lr: float
    low_lr: float
    shape: str
    requested_cycle_steps: int

    @property
    def short(self) -> bool:
        """The second half has too few steps for what was asked: fewer snapshots, shorter cycles, or (one-epoch runs)
        no cyclic phase at all, the final weights being the only snapshot."""
        if not self.snapshot_steps:
            return False
        return self.cycles == 0 or self.cycle_steps < self.requested_cycle_steps or \
            (self.requested is not None and len(self.snapshot_steps) < self.requested)

    def lr_at(self, step: int) -> float:
        """The LR the optimiser step `step` runs at (the reference the trainer is tested against)."""
        if step < self.cycle_start:
            return self.base_lr
        k = (step - self.cycle_start) % self.cycle_steps
        t = 1.0 if self.cycle_steps == 1 else k / (self.cycle_steps - 1)
        alpha = t if self.shape == "linear" else (1 - math.cos(math.pi * t)) / 2
        return self.high_lr * (1 - alpha) + self.low_lr * alpha

    def record(self) -> dict:
        """What results.json keeps about the schedule of a round (JSON types only)."""
        return {"snapshots": len(self.snapshot_steps), "snapshots_requested": self.requested, "cycles": self.cycles,
                "cycle_steps": self.cycle_steps, "cycle_steps_requested": self.requested_cycle_steps,
                "cyclic_steps": self.total_steps - self.cycle_start, "total_steps": self.total_steps,
                "steps_per_epoch": self.steps_per_epoch, "short": self.short}


def plan_trajectory(cfg: TrainConfig, steps_per_epoch: int) -> TrajectoryPlan:
    """The schedule of a run of cfg.epochs epochs of `steps_per_epoch` optimiser steps each."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch: expected at least 1, got {steps_per_epoch}")
    total = cfg.epochs * steps_per_epoch
    base = dict(total_steps=total, steps_per_epoch=steps_per_epoch, requested=cfg.snapshots, base_lr=cfg.lr,
                high_lr=cfg.lr * cfg.cycle_max_factor, low_lr=cfg.lr * cfg.cycle_min_factor, shape=cfg.cycle_shape,
                requested_cycle_steps=cfg.cycle_steps)
    if cfg.snapshots == 0:
        return TrajectoryPlan(cycle_start=total, cycle_steps=cfg.cycle_steps, cycles=0, snapshot_steps=(), **base)
    second_half = (cfg.epochs // 2) * steps_per_epoch
    if second_half == 0:
        # one epoch: no cyclic phase; the final weights are the only snapshot (recorded as short when more were asked)
        return TrajectoryPlan(cycle_start=total, cycle_steps=cfg.cycle_steps, cycles=0, snapshot_steps=(total - 1,),
                              **base)
    cycle = min(cfg.cycle_steps, second_half)
    cycles = second_half // cycle
    keep = min(cycles, cfg.epochs // 2 if cfg.snapshots is None else cfg.snapshots)
    stride = cycles / keep
    # count back from the last cycle so the final weights are always a snapshot; even spacing along the trajectory
    kept_cycles = sorted({cycles - 1 - int(i * stride) for i in range(keep)})
    start = total - cycles * cycle
    return TrajectoryPlan(cycle_start=start, cycle_steps=cycle, cycles=cycles,
                          snapshot_steps=tuple(start + (c + 1) * cycle - 1 for c in kept_cycles), **base)


def plan_cycles_after(cfg: TrainConfig, start_step: int, steps_per_epoch: int) -> TrajectoryPlan:
    """The fitting recipe's cyclic phase (training/recipe.py): after a fitting phase of `start_step` optimiser steps,
    cfg.snapshots cycles (None: recipe.FIT_SNAPSHOTS) of cfg.cycle_steps steps each, every cycle's end a snapshot.
    Its length does not depend on how soon the fitting phase stopped, so the posterior always holds as many
    snapshots as asked for."""
    from mpts_fast.training.recipe import FIT_SNAPSHOTS

    cycles = FIT_SNAPSHOTS if cfg.snapshots is None else cfg.snapshots
    total = start_step + cycles * cfg.cycle_steps
    return TrajectoryPlan(total_steps=total, steps_per_epoch=steps_per_epoch, cycle_start=start_step,
                          cycle_steps=cfg.cycle_steps, cycles=cycles,
                          snapshot_steps=tuple(start_step + (c + 1) * cfg.cycle_steps - 1 for c in range(cycles)),
                          requested=cfg.snapshots, base_lr=cfg.lr, high_lr=cfg.lr * cfg.cycle_max_factor,
                          low_lr=cfg.lr * cfg.cycle_min_factor, shape=cfg.cycle_shape,
                          requested_cycle_steps=cfg.cycle_steps)


class TrajectoryScheduler:
    """Drives an optimiser's LR along `plan`: `before(step)` before each optimiser step, `after(step)` after it.

    Each cycle is one torch.optim.swa_utils.SWALR anneal (restarted at the cycle's first step), so the within-cycle
    shape is torch's; the restarts and the constant first phase are this class's.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, plan: TrajectoryPlan) -> None:
        self.optimizer, self.plan = optimizer, plan
        self._swalr: SWALR | None = None

    def _set(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def before(self, step: int) -> None:
        plan = self.plan
        if step < plan.cycle_start:
            self._set(plan.base_lr)
        elif (step - plan.cycle_start) % plan.cycle_steps == 0:
            self._set(plan.high_lr)  # restart: SWALR anneals from the group's current LR to swa_lr
            self._swalr = SWALR(self.optimizer, swa_lr=plan.low_lr, anneal_epochs=plan.cycle_steps - 1,
                                anneal_strategy=plan.shape)

    def after(self, step: int) -> None:
        if self._swalr is not None and step >= self.plan.cycle_start:
            self._swalr.step()
