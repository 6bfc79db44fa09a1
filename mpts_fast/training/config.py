"""What one training run does: the optimiser settings, the MPTS regulariser and the trajectory snapshots."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mpts_fast import _checks
from mpts_fast.training.recipe import (FIT_STEPS, FIT_TARGET_ACCURACY, FIT_SETTLE, FIT_WARMUP_FRACTION, RECIPES)

CycleShape = Literal["linear", "cos"]

# Defaults of the cyclic phase (docs/mpts.md argues them from the SWA / FGE / snapshot-ensemble papers and
# bench/mpts_trajectory.py measures them): cycles of 4 optimiser steps, each from 10·lr down to lr/10.
DEFAULT_CYCLE_STEPS = 4
# λ of MPTS's MMD² term (the paper gives no value). Chosen from the λ sweep of docs/mpts.md (5 seeds, digits, wine,
# breast-cancer): the picks' AUBC under the task model is highest at λ ≤ 0.01 and falls from λ = 0.3 on (digits 0.886
# at 0.01, 0.863 at 1), and the selection model's own accuracy falls monotonically with λ; 0.01 keeps the term (its
# gradient about a quarter of the CE gradient on digits' encoder) without letting it dominate, as λ = 1 did (3-5x).
DEFAULT_MMD_WEIGHT = 0.01
DEFAULT_CYCLE_MAX_FACTOR = 10.0
DEFAULT_CYCLE_MIN_FACTOR = 0.1


@dataclass(frozen=True)
class TrainConfig:
    """Settings for one from-scratch training run (MPTS paper §3–4, docs/mpts.md).

    mmd_weight: λ of the MMD² term (0 switches it off). snapshots: trajectory snapshots to keep (0: none, no cyclic phase;
    None: one per cycle, at most ⌊E/2⌋). The last ⌊E/2⌋ epochs' optimiser steps hold cycles of `cycle_steps` steps each
    (independent of |L| and the batch size); within a cycle the LR anneals (`cycle_shape`, via SWALR) from
    lr·cycle_max_factor to lr·cycle_min_factor and the weights after a cycle's last (lowest-LR) step are a snapshot;
    when there are more cycles than snapshots, the kept cycle ends are spread evenly, the last one included.
    ensemble_size: independently initialised members to train (1: just the model).

    recipe (training/recipe.py): "paper" trains `epochs` epochs at the constant `lr` (the cyclic phase, when there is
    one, in the second half as above). "fit" trains a fitting phase of at most `steps` optimiser steps, the LR warming
    up linearly over `warmup_fraction` of them and then following a cosine down to 0 at `steps`; at the first epoch end
    where the running training accuracy (the epoch's batches, as trained) reaches `target_accuracy` after s steps, it
    goes on for `settle`·s more steps (within `steps`) annealing the LR from where it is to 0, then stops ("target");
    else it stops at `steps` ("budget") or after `epochs` epochs when `epochs` is not None ("epochs"). The cyclic
    phase, when snapshots are wanted, follows it: `snapshots` cycles (None: recipe.FIT_SNAPSHOTS) of `cycle_steps`
    steps, one snapshot at each cycle's end.
    """

    epochs: int | None = 100
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    mmd_weight: float = 0.0
    snapshots: int | None = 0
    cycle_steps: int = DEFAULT_CYCLE_STEPS
    cycle_max_factor: float = DEFAULT_CYCLE_MAX_FACTOR
    cycle_min_factor: float = DEFAULT_CYCLE_MIN_FACTOR
    cycle_shape: CycleShape = "linear"
    ensemble_size: int = 1
    eval_batch_size: int = 1024
    recipe: str = "paper"
    steps: int = FIT_STEPS
    target_accuracy: float | None = FIT_TARGET_ACCURACY
    warmup_fraction: float = FIT_WARMUP_FRACTION
    settle: float = FIT_SETTLE

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe: expected one of {', '.join(RECIPES)}, got {self.recipe!r}")
        checks = [("epochs", self.epochs >= 1 if self.epochs is not None else self.recipe == "fit"),
                  ("steps", isinstance(self.steps, int) and not isinstance(self.steps, bool) and self.steps >= 1),
                  ("target_accuracy", self.target_accuracy is None or 0 < self.target_accuracy <= 1),
                  ("warmup_fraction", 0 <= self.warmup_fraction < 1), ("settle", self.settle >= 0),
                  ("lr", self.lr > 0), ("batch_size", self.batch_size >= 1),
                  ("weight_decay", self.weight_decay >= 0), ("mmd_weight", self.mmd_weight >= 0),
                  ("snapshots", self.snapshots is None or self.snapshots >= 0), ("ensemble_size", self.ensemble_size >= 1),
                  ("eval_batch_size", self.eval_batch_size >= 1)]
        for name, ok in checks:
            if not ok:
                raise ValueError(f"{name}: invalid value {getattr(self, name)!r}")
        check_cycle_settings(self.cycle_steps, self.cycle_max_factor, self.cycle_min_factor, self.cycle_shape)


def check_cycle_settings(cycle_steps: int, max_factor: float, min_factor: float, shape: str = "linear") -> None:
    """Raises ValueError naming the setting when the cyclic phase cannot work as described."""
    _checks.int_option(cycle_steps, "cycle_steps", what="a positive whole number of optimiser steps per cycle")
    for name, value in (("cycle_max_factor", max_factor), ("cycle_min_factor", min_factor)):
        _checks.number_option(value, name, above=0, below=float("inf"), what="a positive finite multiple of lr")
    if min_factor > max_factor:
        raise ValueError(f"cycle_min_factor: the cycle's lowest LR ({min_factor}·lr) must not exceed its highest "
                         f"(cycle_max_factor {max_factor}·lr)")
    if shape not in ("linear", "cos"):
        raise ValueError(f"cycle_shape: expected 'linear' or 'cos', got {shape!r}")
