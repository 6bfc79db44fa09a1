"""Adversarial DeepFool (Ducoffe & Precioso 2018): the items with the smallest DeepFool perturbation are the closest to
the decision boundary; pick the `budget` smallest norms. Reference: `query_strategies/adversarial_deepfool.py` of the
ALFA-Mix repository (and of DeepAL), which scores every unlabeled item, one at a time, ≤ 50 iterations.

DeepFool (Moosavi-Dezfooli et al. 2016), batched: with f_k = logit_k − logit_ŷ and w_k = ∇f_k at the current point,
every item still predicted ŷ takes one linearised step towards a boundary, r += |f_l|/‖w_l‖² · w_l, and the model is
evaluated again at x + (1 + overshoot)·r; an item leaves the batch once its prediction changes; at most `max_iter`
iterations. Items never flipped keep their accumulated perturbation (as in the reference).

Variants (`variant`):
- "corrected" (default): l = argmin_k |f_k|/‖w_k‖, DeepFool's nearest boundary. The reference means this, but its loop
  never updates `value_l` (it stays inf), so every class passes the test and the step always goes towards the last
  class index ≠ ŷ. We fix that, on purpose: the score is then the distance DeepFool defines.
- "reference": the reference's arithmetic, bug included (the step towards the last class ≠ ŷ), to reproduce published
  numbers.
Both use the reference's step without DeepFool's +1e-4 and, by default, no overshoot (the reference has none);
`overshoot` > 0 (DeepFool's paper uses 0.02) is offered. The score is ‖(1 + overshoot)·r‖ (the
reference returns ‖r‖², the same order).

Stopping on the boundary: with no overshoot, a linearised step lands exactly on the boundary of a piecewise-linear
network; if the tie goes to ŷ, every further step is rounding-sized. Such an item (|f_l| within 64 ulp of the largest
logit) stops there; the reference takes those steps until `max_iter`, which changes the norm by rounding only and
costs up to 50 iterations per item.

Memory: the C input gradients are taken one class at a time (backward passes over the whole batch, keeping only the
running best direction), so a batch holds O(batch × input size) whatever C is; the whole pool is scored in batches of
`batch_size`, so a 1e6-item pool never needs its Jacobians at once. `pool_subsample` (an integer) scores a random
subsample instead: an option, not the reference's behaviour.
"""
from __future__ import annotations

import torch
from torch import nn

from mpts_fast._checks import choice, number_option, positive_int
from mpts_fast.strategies._access import require_classes
from mpts_fast.strategies.base import SelectionContext, Strategy, top_k
from mpts_fast.strategies.registry import register

VARIANTS = ("corrected", "reference")
_ROUNDING = 64  # |f_l| ≤ 64 ulp of the largest logit counts as 0: the item sits on the boundary


def _logit_gradient(out: torch.Tensor, x: torch.Tensor, k: int, retain: bool = True) -> torch.Tensor:
    """(a, *shape) ∂logit_k/∂x of every row at once (each row's logits depend on its own input only: eval mode)."""
    return torch.autograd.grad(out[:, k].sum(), x, retain_graph=retain)[0].flatten(1)


# Gradients of all C logits in one batched backward pass while C × batch × input stays under this many elements
# (512 MiB of float32); beyond it, one backward pass per class keeping only the running best direction.
_BATCHED_ELEMENTS = 1 << 27


def _chosen_step(out: torch.Tensor, xa: torch.Tensor, lab: torch.Tensor, variant: str
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One DeepFool step per row. out (a, C) logits of xa (a, *shape), lab (a,) the original predictions →
    (step (a, P), |f_l|/‖w_l‖ (a,), |f_l| (a,)) for the chosen class l (see the module docstring)."""
    a, c = out.shape
    rows = torch.arange(a, device=out.device)
    f = (out - out[rows, lab].unsqueeze(1)).detach()  # (a, C), 0 at ŷ
    if c * xa[0].numel() * a <= _BATCHED_ELEMENTS:
        basis = torch.eye(c, dtype=out.dtype, device=out.device).unsqueeze(1).expand(c, a, c)
        grads = torch.autograd.grad(out, xa, grad_outputs=basis, is_grads_batched=True)[0]  # (C, a, *shape)
        grads = grads.flatten(2).transpose(0, 1)  # (a, C, P)
        w = grads - grads[rows, lab].unsqueeze(1)
        w_norm = torch.linalg.vector_norm(w, dim=2)
        value = f.abs() / w_norm  # unguarded, as the reference: ‖w‖ = 0 gives inf or NaN
        if variant == "corrected":  # argmin over k ≠ ŷ, ties → lowest k; NaN never wins
            value[rows, lab] = float("inf")
            chosen = torch.nan_to_num(value, nan=float("inf")).argmin(1)
        else:  # the reference: the last class index ≠ ŷ
            chosen = torch.where(lab == c - 1, c - 2, c - 1)
        best, wn = value[rows, chosen], w_norm[rows, chosen]
        return (best / wn).unsqueeze(1) * w[rows, chosen], best, f[rows, chosen].abs()
    g_lab = torch.autograd.grad(out[rows, lab].sum(), xa, retain_graph=True)[0].flatten(1)  # ∇ logit_ŷ
    best = torch.full((a,), float("inf"), dtype=f.dtype, device=f.device)
    gap = torch.zeros_like(best)
    step = torch.zeros_like(g_lab)
    for k in range(c):
        w = _logit_gradient(out, xa, k, retain=k < c - 1) - g_lab  # (a, P)
        w_norm = torch.linalg.vector_norm(w, dim=1)
        value = f[:, k].abs() / w_norm
        # corrected: a strictly smaller distance wins (ties → lowest k); reference: every k ≠ ŷ wins
        take = lab != k
        if variant == "corrected":
            take &= value < best
        best = torch.where(take, value, best)
        gap = torch.where(take, f[:, k].abs(), gap)
        step = torch.where(take.unsqueeze(1), (value / w_norm).unsqueeze(1) * w, step)
    return step, best, gap


def deepfool_perturbations(model: nn.Module, x: torch.Tensor, max_iter: int = 50, overshoot: float = 0.0,
                           variant: str = "corrected") -> tuple[torch.Tensor, torch.Tensor]:
    """x (n, *shape) on the model's device → (r (n, *shape) perturbations with the overshoot applied, (n,) int64
    iterations used). The model must be in eval mode (BatchNorm statistics, no dropout). See the module docstring for
    the variants. An item whose logits do not change with its input (a zero gradient difference) cannot be moved
    towards any boundary: its r is inf (the reference's arithmetic gives NaN, which its argsort also puts last)."""
    choice(variant, "variant", VARIANTS)
    x0 = x.detach()
    n = x0.shape[0]
    r = torch.zeros_like(x0)
    iters = torch.zeros(n, dtype=torch.int64)
    with torch.no_grad():
        label = model(x0).argmax(1)
    active = torch.arange(n, device=x0.device)
    unreachable = torch.zeros(n, dtype=torch.bool, device=x0.device)
    for _ in range(max_iter):
        if active.numel() == 0:
            break
        xa = (x0[active] + (1.0 + overshoot) * r[active]).requires_grad_(True)
        with torch.enable_grad():
            out = model(xa)
            still = out.argmax(1) == label[active]
            if not bool(still.any()):
                break
            lab = label[active]
            step, best, gap = _chosen_step(out, xa, lab, variant)
        f = out.detach()
        # no finite step (the logits do not move with x: ‖w‖ = 0): no boundary is reachable, the score is inf
        stuck = ~torch.isfinite(step).all(1) | ~torch.isfinite(best)
        unreachable[active[still & stuck]] = True
        # on the boundary within rounding (the last step landed on it, the tie went to ŷ): further steps would be
        # rounding-sized and the reference takes them until max_iter; the item stops here instead
        scale = out.detach().abs().amax(1).clamp_min(1.0)
        landed = gap <= _ROUNDING * torch.finfo(f.dtype).eps * scale
        keep = still & ~stuck & ~landed
        step, active = step[keep], active[keep]
        r[active] += step.view_as(r[active])
        iters[active.cpu()] += 1
    r[unreachable] = float("inf")
    return (1.0 + overshoot) * r, iters


def deepfool_scores(model: nn.Module, x: torch.Tensor, *, max_iter: int = 50, overshoot: float = 0.0,
                    variant: str = "corrected", batch_size: int = 256) -> torch.Tensor:
    """x (N, *shape) → (N,) float32 Euclidean norms of the DeepFool perturbations (CPU; inf for an item no step can
    move), batches of `batch_size` rows moved to the model's device and dtype one at a time. Smaller is closer to the
    boundary."""
    param = next(model.parameters(), None)
    device, dtype = (x.device, x.dtype) if param is None else (param.device, param.dtype)
    norms = [torch.linalg.vector_norm(
        deepfool_perturbations(model, xb.to(device, dtype), max_iter, overshoot, variant)[0].flatten(1), dim=1).cpu()
        for xb in torch.split(x, batch_size)]
    return torch.cat(norms).float() if norms else torch.zeros(0)


@register
class DeepFoolStrategy(Strategy):
    """Options: variant ("corrected"; "reference" reproduces the reference's bug), max_iter (50), overshoot (0, as the
    reference; DeepFool's paper: 0.02), pool_subsample (None: the whole pool, as the reference; an integer scores that
    many random unlabeled items), batch_size (256 items per batched DeepFool run)."""

    name = "deepfool"
    description = "smallest DeepFool perturbation norms over the whole pool (batched, ≤ 50 iterations)"

    def __init__(self, variant: str = "corrected", max_iter: int = 50, overshoot: float = 0.0,
                 pool_subsample: int | None = None, batch_size: int = 256) -> None:
        choice(variant, "variant", VARIANTS)
        self.variant = variant
        self.max_iter = positive_int(max_iter, "max_iter")
        self.overshoot = number_option(overshoot, "overshoot", at_least=0, below=1)
        self.pool_subsample = positive_int(pool_subsample, "pool_subsample", allow_none=True)
        self.batch_size = positive_int(batch_size, "batch_size")

    def perturbation_norms(self, ctx: SelectionContext, positions: torch.Tensor) -> torch.Tensor:
        """(m,) positions in ctx.unlabeled → (m,) Euclidean norms of their DeepFool perturbations (CPU)."""
        model = ctx.trained.model
        if not isinstance(model, nn.Module):
            raise ValueError(f"model: strategy {self.name!r} needs a torch nn.Module, got {type(model).__name__}")
        norms = []
        for pb in torch.split(positions, self.batch_size):
            x = ctx.x_pool[ctx.unlabeled[pb].to(ctx.x_pool.device)].to(ctx.trained.device).float()
            norms.append(deepfool_scores(model, x, max_iter=self.max_iter, overshoot=self.overshoot,
                                         variant=self.variant, batch_size=self.batch_size))
        return torch.cat(norms) if norms else torch.zeros(0)

    def select(self, ctx: SelectionContext, budget: int) -> torch.Tensor:
        require_classes(ctx, self.name)
        n_u = ctx.unlabeled.numel()
        if self.pool_subsample is None:
            positions = torch.arange(n_u)
        else:
            size = min(n_u, max(self.pool_subsample, budget))
            positions = torch.sort(torch.randperm(n_u, generator=ctx.generator)[:size]).values
        norms = self.perturbation_norms(ctx, positions)
        return ctx.unlabeled[positions[top_k(norms, budget, largest=False)].to(ctx.unlabeled.device)]
