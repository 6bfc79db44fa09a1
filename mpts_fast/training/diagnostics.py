"""What a round's training did, measured: how well each model fits its labeled set, how strongly MPTS's MMD term pulls
against cross-entropy, and whether the labeled set's features still differ from the pool's (docs/mpts.md, "Reading
the diagnostics")."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from mpts_fast import ops

# Every PROBE_EVERY-th optimiser step of the second half of training is probed: one extra backward pass of the MMD term
# alone. Measured on digits' MLP (20 to 1,000 labels, 100 epochs, timed inside the same runs): 0.1-2.3% of the
# training time. Odd, so that successive samples fall on different positions within the 4-step LR cycles.
PROBE_EVERY = 13

# A model that ends a round below this accuracy on its own labeled set is underfitting it (too few epochs or too low a
# learning rate for the labels it has): the CLI says so once per run.
UNDERFIT_ACCURACY = 0.9

# Rows of each side of the end-of-training MMD² (labeled set and pool sample): enough for a stable U-statistic, small
# enough to cost nothing next to training.
MMD_GAP_ROWS = 2000
# Pool-vs-pool samples the null is averaged over: one draw at |L| = 20 scatters by about ±0.03, as much as the gap
# it is read against.
NULL_DRAWS = 5


class GradientProbe:
    """λ·‖∇MMD²‖ / ‖∇CE‖ and cos(∇CE, ∇MMD²) over the encoder's parameters (those the MMD term reaches), sampled on
    optimiser steps first_step, first_step + every, ... (the second half of training).

    On a sampled step: `before_backward(params, weighted_mmd)` after the forward pass (one backward pass of λ·MMD²
    alone, the graph kept), then `after_backward()` once `loss.backward()` has filled `.grad`: ∇CE is the total gradient
    less the MMD one, so the training step itself is untouched and costs no second CE backward. Nothing is read to the
    host until `record()`.
    """

    def __init__(self, first_step: int, every: int = PROBE_EVERY) -> None:
        if every < 1:
            raise ValueError(f"every: expected a positive number of steps, got {every}")
        self.first_step, self.every = first_step, every
        self._pending: list[tuple[nn.Parameter, torch.Tensor]] = []
        self._ratios: list[torch.Tensor] = []
        self._cosines: list[torch.Tensor] = []

    def wants(self, step: int) -> bool:
        return step >= self.first_step and (step - self.first_step) % self.every == 0

    def before_backward(self, params: list[nn.Parameter], weighted_mmd: torch.Tensor) -> None:
        """params: the trainable parameters; weighted_mmd: λ·MMD² of this step (0-dim, its graph alive)."""
        grads = torch.autograd.grad(weighted_mmd, params, retain_graph=True, allow_unused=True)
        self._pending = [(p, g) for p, g in zip(params, grads) if g is not None]

    @torch.no_grad()
    def after_backward(self) -> None:
        if not self._pending:
            return
        self.measure([g for _, g in self._pending],
                     [p.grad if p.grad is not None else torch.zeros_like(p) for p, _ in self._pending])
        self._pending = []

    @torch.no_grad()
    def measure(self, mmd_grads: list[torch.Tensor], total_grads: list[torch.Tensor]) -> None:
        """One sample from λ·∇MMD² and the whole step's gradient, tensor by tensor over the parameters the MMD term
        reaches (lockstep training passes each model's slices of the stacked gradients)."""
        g_mmd = torch.cat([g.reshape(-1).double() for g in mmd_grads])
        total = torch.cat([g.reshape(-1).double() for g in total_grads])
        g_ce = total - g_mmd
        n_mmd, n_ce = g_mmd.norm(), g_ce.norm()
        self._ratios.append(n_mmd / n_ce)
        self._cosines.append(torch.dot(g_ce, g_mmd) / (n_ce * n_mmd))

    def record(self) -> dict:
        """{"grad_ratio": mean λ·‖∇MMD²‖/‖∇CE‖, "grad_cosine": mean cosine, "grad_samples", "grad_every"}; the means
        are None when no step was sampled (training shorter than two epochs) or a gradient vanished."""
        ratios = torch.stack(self._ratios).cpu().tolist() if self._ratios else []
        cosines = torch.stack(self._cosines).cpu().tolist() if self._cosines else []

        def mean(values: list[float]) -> float | None:
            finite = [v for v in values if math.isfinite(v)]
            return sum(finite) / len(finite) if finite and len(finite) == len(values) else None

        return {"grad_ratio": mean(ratios), "grad_cosine": mean(cosines), "grad_samples": len(ratios),
                "grad_every": self.every}


@torch.no_grad()
def labeled_fit(trained, x_pool: torch.Tensor, labeled: torch.Tensor, y_labeled: torch.Tensor,
                prefix: str = "") -> dict[str, float]:
    """The final model's accuracy and mean cross-entropy on its own labeled set (eval mode: no dropout, BatchNorm's
    running statistics), one pass. labeled: (n_L,) pool indices; y_labeled: (n_L,)."""
    logits = trained.logits(x_pool[labeled.to(x_pool.device)]).double()
    y = y_labeled.to(logits.device)
    return {f"{prefix}train_accuracy": float((logits.argmax(1) == y).double().mean()),
            f"{prefix}train_loss": float(F.cross_entropy(logits, y))}


def underfit_note(record: dict) -> str | None:
    """A sentence when a round's task or selection model ends below UNDERFIT_ACCURACY on its labeled set, else None."""
    low = [(what, record[key]) for what, key in (("task model", "train_accuracy"),
                                                 ("selection model", "selection_train_accuracy"))
           if isinstance(record.get(key), float) and record[key] < UNDERFIT_ACCURACY]
    if not low:
        return None
    said = " and ".join(f"the {what} {acc:.2f}" for what, acc in low)
    return (f"underfitting: round {record.get('round')} ended with training accuracy {said} on its "
            f"{record.get('n_labeled')} labels (below {UNDERFIT_ACCURACY}); {_remedy(record)} may help "
            f"(the run goes on)")


def _remedy(record: dict) -> str:
    """What to raise: the fitting recipe's step budget when that is what ended training, else the epochs."""
    if "budget" in (record.get("train_stop"), record.get("selection_train_stop")):
        return "more --steps or a higher --lr"
    return "more --epochs or a higher --lr"


@torch.no_grad()
def mmd_gap(trained, x_pool: torch.Tensor, labeled: torch.Tensor, unlabeled: torch.Tensor,
            generator: torch.Generator, rows: int = MMD_GAP_ROWS, null_draws: int = NULL_DRAWS) -> dict | None:
    """Unbiased MMD² (the training's five-kernel ladder) between the final model's features of the labeled set and of
    a pool sample P of m unlabeled items, next to its null: the same statistic between P and `null_draws` other samples
    of n unlabeled items (disjoint from P), i.e. what sampling alone gives at these sizes (mean and sample std).
    m = min(rows, ⌊|U|/2⌋), n = min(|L|, rows, |U| − m) (so that the null's samples come from at least |U|/2 items and
    differ); None when either is below 2. labeled, unlabeled: (n_L,), (n_U,) pool indices. The same generator state
    gives the same rows, so two models can be measured on the same items."""
    m = min(rows, unlabeled.numel() // 2)
    n = min(labeled.numel(), rows, unlabeled.numel() - m)
    if n < 2 or m < 2:
        return None
    lab = labeled.cpu()[torch.randperm(labeled.numel(), generator=generator)[:n]]
    order = unlabeled.cpu()[torch.randperm(unlabeled.numel(), generator=generator)]
    pool, rest = order[:m], order[m:]
    dev = x_pool.device

    def features(idx: torch.Tensor) -> torch.Tensor:
        return trained.embeddings(x_pool[idx.to(dev)]).float()

    z_pool = features(pool)
    observed = ops.rbf_mmd2_ladder(features(lab), z_pool, estimator="unbiased")
    nulls = torch.stack([ops.rbf_mmd2_ladder(features(rest[torch.randperm(rest.numel(), generator=generator)[:n]]),
                                             z_pool, estimator="unbiased").double() for _ in range(null_draws)])
    return {"mmd2_labeled_pool": float(observed), "mmd2_pool_null": float(nulls.mean()),
            "mmd2_pool_null_std": float(nulls.std()) if null_draws > 1 else None, "mmd2_rows_labeled": n,
            "mmd2_rows_pool": m, "mmd2_null_draws": null_draws}
