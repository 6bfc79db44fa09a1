"""Named training recipes for the task model, and the fitting recipe's learning-rate schedule.

`paper`: the MPTS paper's Table 1 / §4.2 training: a fixed number of epochs at a constant Adam learning rate.
`fit`: train until the model fits its labeled set: a budget of optimiser steps (the same for 20 labels as for 1,000),
Adam with a linear warm-up and a cosine decay to 0 over the budget; at the end of the first epoch whose running training
accuracy reaches 99% (the rule of the ALFA-Mix and BADGE reference code) it settles: 3 times the steps taken so far
more (within the budget), the LR annealed from where it is to 0, then stops. Stopping at once costs test accuracy on
small labeled sets (digits, 20 labels: 0.44 against 0.62 for the paper's 100 epochs); docs/mpts.md, "Training
recipes", gives the measurements behind the defaults below.
"""
from __future__ import annotations

import math

import torch

RECIPES = ("paper", "fit")
DEFAULT_RECIPE = "fit"

# The fitting recipe's defaults (measured: docs/mpts.md, "Training recipes").
FIT_STEPS = 1000  # optimiser steps of the fitting phase at most
FIT_TARGET_ACCURACY = 0.99  # stop at the end of the first epoch whose running training accuracy reaches this
FIT_WARMUP_FRACTION = 0.05  # of the step budget, linear from lr/warmup_steps up to lr
# Once the target is reached after s steps, the fitting phase goes on for settle·s more steps (at most to the
# budget), annealing the LR to 0 (0: stop at once, the reference code's rule).
FIT_SETTLE = 3.0
# Under `fit` a trajectory-sampling selection model (MPTS) appends this many LR cycles to its fitting phase, one
# snapshot each (--snapshots sets it): 25 snapshots reached 78% of an independent 5-member ensemble's mutual
# information on digits (docs/mpts.md, "Why these cycle defaults").
FIT_SNAPSHOTS = 25

# Why a fitting phase ended, recorded per round.
STOP_TARGET, STOP_BUDGET, STOP_EPOCHS = "target", "budget", "epochs"


def warmup_steps(budget: int, fraction: float) -> int:
    return int(round(budget * fraction))


def fit_lr_factor(step: int, budget: int, warmup: int) -> float:
    """The multiple of the peak LR that optimiser step `step` (0-based) of a `budget`-step fitting phase runs at:
    (step + 1) / warmup over the first `warmup` steps, then a cosine from 1 down towards 0 over the rest (the last
    step runs just above 0)."""
    if step < warmup:
        return (step + 1) / warmup
    span = budget - warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / span)) if span > 0 else 1.0


class FitScheduler:
    """Drives an optimiser's LR through the fitting phase: `before(step)` before each optimiser step (the
    TrajectoryScheduler interface; `after` does nothing). `settle(step, steps)`: from `step` on, anneal from the LR
    reached there down towards 0 over `steps` steps (cosine) instead of following the budget's cosine."""

    def __init__(self, optimizer: torch.optim.Optimizer, lr: float, budget: int, warmup: int) -> None:
        self.optimizer, self.lr, self.budget, self.warmup = optimizer, lr, budget, warmup
        self._settle: tuple[int, int, float] | None = None

    def lr_at(self, step: int) -> float:
        if self._settle is not None and step >= self._settle[0]:
            start, span, lr0 = self._settle
            return lr0 * 0.5 * (1.0 + math.cos(math.pi * (step - start) / span))
        return self.lr * fit_lr_factor(step, self.budget, self.warmup)

    def settle(self, step: int, steps: int) -> None:
        self._settle = (step, max(1, steps), self.lr_at(step))

    def before(self, step: int) -> None:
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def after(self, step: int) -> None:
        pass
