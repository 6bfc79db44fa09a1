"""Adversarial DeepFool (Ducoffe & Precioso 2018): the items with the smallest DeepFool perturbation are the closest to
the decision boundary; pick the `budget` smallest norms.

DeepFool (Moosavi-Dezfooli et al. 2016), batched: every active item takes one linearised step per iteration towards its
nearest boundary, r += (|f_l| + 1e-4)/‖w_l‖² · w_l with f_k = logit_k − logit_ŷ, w_k = ∇f_k, l = argmin_k |f_k|/‖w_k‖;
the model is evaluated at x + (1 + overshoot)·r; an item leaves the batch once its prediction changes; at most
`max_iter` (50) iterations. The C input gradients come from C backward passes over the whole batch (each item's logits
depend on its own input only: the model is in eval mode). Items never flipped keep their accumulated perturbation.
The pool is subsampled at random (`pool_subsample`, default 10,000 items; None: the whole pool) as DeepFool costs up to
50 × (C + 1) passes per item.
"""
from __future__ import annotations

import torch
from torch import nn

from mpts_fast.strategies._access import positive_float, positive_int, require_classes
from mpts_fast.strategies.base import SelectionContext, Strategy, top_k
from mpts_fast.strategies.registry import register


def deepfool_perturbations(model: nn.Module, x: torch.Tensor, max_iter: int = 50, overshoot: float = 0.02
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """x (n, *shape) on the model's device → (r (n, *shape) perturbations with the overshoot applied, (n,) int64
    iterations used). The model must be in eval mode (BatchNorm statistics, no dropout)."""
    x0 = x.detach()
    n = x0.shape[0]
    r = torch.zeros_like(x0)
    iters = torch.zeros(n, dtype=torch.int64)
    with torch.no_grad():
        label = model(x0).argmax(1)
    active = torch.arange(n, device=x0.device)
    for _ in range(max_iter):
        if active.numel() == 0:
            break
        xa = (x0[active] + (1.0 + overshoot) * r[active]).requires_grad_(True)
        with torch.enable_grad():
            out = model(xa)
            c = out.shape[1]
            still = out.argmax(1) == label[active]
            if not bool(still.any()):
                break
            grads = torch.stack([torch.autograd.grad(out[:, k].sum(), xa, retain_graph=k < c - 1)[0]
                                 for k in range(c)], 1)  # (a, C, *shape)
        out, grads = out.detach()[still], grads[still].flatten(2)
        active = active[still]
        lab = label[active]
        rows = torch.arange(active.numel(), device=x0.device)
        f = out - out[rows, lab].unsqueeze(1)  # (a, C), 0 at ŷ
        w = grads - grads[rows, lab].unsqueeze(1)  # (a, C, P)
        w_norm = torch.linalg.vector_norm(w, dim=2)
        dist = f.abs() / w_norm.clamp_min(1e-12)
        dist[rows, lab] = float("inf")
        nearest = dist.argmin(1)
        w_l, f_l = w[rows, nearest], f[rows, nearest].abs()
        step = ((f_l + 1e-4) / w_norm[rows, nearest].clamp_min(1e-12) ** 2).unsqueeze(1) * w_l
        r[active] += step.view_as(r[active])
        iters[active.cpu()] += 1
    return (1.0 + overshoot) * r, iters


@register
class DeepFoolStrategy(Strategy):
    """Options: max_iter (50), pool_subsample (10,000 random unlabeled items scored; None: all), batch_size (256 items
    per batched DeepFool run), overshoot (0.02, DeepFool's default)."""

    name = "deepfool"
    description = "smallest DeepFool perturbation norms (batched, ≤ 50 iterations) on a random pool subsample"

    def __init__(self, max_iter: int = 50, pool_subsample: int | None = 10_000, batch_size: int = 256,
                 overshoot: float = 0.02) -> None:
        self.max_iter = positive_int(max_iter, "max_iter")
        self.pool_subsample = positive_int(pool_subsample, "pool_subsample", allow_none=True)
        self.batch_size = positive_int(batch_size, "batch_size")
        self.overshoot = positive_float(overshoot, "overshoot")

    def perturbation_norms(self, ctx: SelectionContext, positions: torch.Tensor) -> torch.Tensor:
        """(m,) positions in ctx.unlabeled → (m,) Euclidean norms of their DeepFool perturbations (CPU)."""
        model = ctx.trained.model
        if not isinstance(model, nn.Module):
            raise ValueError(f"model: strategy {self.name!r} needs a torch nn.Module, got {type(model).__name__}")
        device = ctx.trained.device
        norms = []
        for pb in torch.split(positions, self.batch_size):
            x = ctx.x_pool[ctx.unlabeled[pb].to(ctx.x_pool.device)].to(device).float()
            r, _ = deepfool_perturbations(model, x, self.max_iter, self.overshoot)
            norms.append(torch.linalg.vector_norm(r.flatten(1), dim=1).cpu())
        return torch.cat(norms) if norms else torch.zeros(0)

    def select(self, ctx: SelectionContext, budget: int) -> torch.Tensor:
        require_classes(ctx, self.name)
        n_u = ctx.unlabeled.numel()
        size = n_u if self.pool_subsample is None else min(n_u, max(self.pool_subsample, budget))
        positions = torch.sort(torch.randperm(n_u, generator=ctx.generator)[:size]).values
        norms = self.perturbation_norms(ctx, positions)
        return ctx.unlabeled[positions[top_k(norms, budget, largest=False)].to(ctx.unlabeled.device)]
