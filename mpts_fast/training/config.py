"""What one training run does: the optimiser settings, the MPTS regulariser and the trajectory snapshots."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Settings for one from-scratch training run (SPEC §1.2–1.7).

    mmd_weight: λ of the MMD² term (0 switches it off). snapshots: how many trajectory snapshots to keep (0: none, no cyclic
    phase). cyclic_epochs: length of the cyclic-LR phase at the end of training (None: ⌊E/2⌋, SPEC §1.4); one cycle per epoch,
    lr falling linearly to lr·cycle_min_factor; snapshots are the ends of the last cycles, thinned evenly when fewer are asked.
    ensemble_size: independently initialised members to train (1: just the model).
    """

    epochs: int = 100
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    mmd_weight: float = 0.0
    snapshots: int = 0
    cyclic_epochs: int | None = None
    cycle_min_factor: float = 0.1
    ensemble_size: int = 1
    eval_batch_size: int = 1024

    def __post_init__(self) -> None:
        checks = [("epochs", self.epochs >= 1), ("lr", self.lr > 0), ("batch_size", self.batch_size >= 1),
                  ("weight_decay", self.weight_decay >= 0), ("mmd_weight", self.mmd_weight >= 0),
                  ("snapshots", self.snapshots >= 0), ("ensemble_size", self.ensemble_size >= 1),
                  ("cycle_min_factor", 0 < self.cycle_min_factor <= 1), ("eval_batch_size", self.eval_batch_size >= 1)]
        for name, ok in checks:
            if not ok:
                raise ValueError(f"{name}: invalid value {getattr(self, name)!r}")
        if self.cyclic_epochs is not None and not 0 <= self.cyclic_epochs <= self.epochs:
            raise ValueError(f"cyclic_epochs: expected 0..epochs ({self.epochs}), got {self.cyclic_epochs}")

    @property
    def cycle_count(self) -> int:
        """Number of cyclic-LR epochs (cycles) at the end of training; 0 without snapshots."""
        if self.snapshots == 0:
            return 0
        return self.epochs // 2 if self.cyclic_epochs is None else self.cyclic_epochs

    def snapshot_epochs(self) -> list[int]:
        """0-based epochs whose end is kept as a snapshot: `snapshots` cycle ends spread evenly, the last cycle included."""
        cycles = self.cycle_count
        if cycles == 0:
            return []
        first = self.epochs - cycles
        keep = min(self.snapshots, cycles)
        stride = cycles / keep
        # count back from the last cycle so the final weights are always a snapshot
        return sorted({first + cycles - 1 - int(i * stride) for i in range(keep)})
