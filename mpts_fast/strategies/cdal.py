"""CDAL, the coreset variant (Agarwal et al. 2020), as the reference code runs it (ALFA-Mix repository,
`query_strategies/cdal_sampling.py` with `CDALModel.select_coreset`): furthest-first over the softmax vectors under the
symmetric KL divergence, the labeled items as the initial centres.

    d(p, q) = ½ KL(p‖q) + ½ KL(q‖p) = ½ Σ_c (p_c − q_c)(log p_c − log q_c)

Each pick is the unlabeled item whose smallest divergence to the centres (labeled items and earlier picks) is largest;
ties go to the lowest index; with no labeled item the first pick is the first unlabeled item (every distance is +inf, as
in the reference).

Memory O(N·C): furthest-first needs only the running minimum divergence, updated with one new column per pick, for any
divergence, so no N × N or N × L matrix is held. The divergence is an inner product in disguise,
d(p, q) = ½(a_p + a_q − [p, log p]·[log q, q]) with a_p = Σ p log p, so a column is one (N, 2C) matrix-vector product
and the labeled set's minimum is a blocked matrix product. Computed in float64 (the expanded form cancels; float64
keeps the error near 1e-14, far below any gap that decides a pick) and clamped at 0.

The reference's bug, fixed by default: its `predict_prob_embed` already returns softmax probabilities and
`cdal_sampling.py` applies `F.softmax` to them again, so its divergences are between softmax(p) vectors (squeezed
towards uniform: every entry within a factor e of the others). We use the softmax vectors the method describes;
`double_softmax=True` reproduces the reference.

Deviations from the reference, both on values the reference cannot handle:
- a probability below float32's smallest normal number (a softmax that underflowed to 0 or to a subnormal) is raised
  to it before the logarithm: the reference computes 0·log(0/q) = NaN there and then picks whichever item the NaN
  lands on;
- a picked or labeled item is never picked again (the reference could re-pick an item once every distance is 0).
"""
from __future__ import annotations

import torch

from mpts_fast import _checks
from mpts_fast.coverage.validate import count, labeled_mask
from mpts_fast.strategies._access import require_classes
from mpts_fast.strategies.base import SelectionContext, Strategy
from mpts_fast.strategies.registry import register

# Rows × labeled items per block of the initial minimum (32 MiB of float64), so the labeled set never costs N × L.
_INIT_BLOCK_ELEMENTS = 1 << 22


def symmetric_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """p (N, C), q (C,) or (N, C) probability rows → (N,) ½ Σ (p − q)(log p − log q), in the direct form (for checks
    and small inputs; cdal_select uses the expanded form). Probabilities are floored as in cdal_select."""
    floor = torch.finfo(torch.float32).tiny
    p, q = p.double().clamp_min(floor), q.double().clamp_min(floor)
    return 0.5 * ((p - q) * (p.log() - q.log())).sum(-1)


def _features(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, C) → (left (N, 2C) = [p, log p], right (N, 2C) = [log p, p], a (N,) = Σ p log p), float64."""
    p = probs.detach().double().clamp_min(torch.finfo(torch.float32).tiny)
    logp = p.log()
    return torch.cat([p, logp], 1), torch.cat([logp, p], 1), (p * logp).sum(1)


def cdal_select(probs: torch.Tensor, k: int, labeled=None) -> torch.Tensor:
    """The reference's CDAL coreset rule. probs: (N, C) softmax rows (any float dtype, any device); k: picks, 1 ≤ k ≤
    unlabeled rows; labeled: None, a bool mask (N,) or row indices. Returns (k,) int64 row indices in pick order, on
    probs' device. Deterministic."""
    _checks.tensor(probs, "probs", dim=2)
    n = probs.shape[0]
    if probs.shape[1] < 1:
        raise ValueError(f"probs: expected at least one class column, got shape {tuple(probs.shape)}")
    _checks.finite(probs, "probs")
    k = count(k)
    mask = labeled_mask(labeled, n, probs.device)
    n_free = n - (int(mask.sum()) if mask is not None else 0)
    if k > n_free:
        raise ValueError(f"k: expected at most {n_free} (the unlabeled rows), got {k}")
    left, right, a = _features(probs)
    min_div = torch.full((n,), float("inf"), dtype=torch.float64, device=probs.device)
    if mask is not None:
        centres = mask.nonzero().squeeze(1)
        r_l, a_l = right[centres], a[centres]
        block = max(1, _INIT_BLOCK_ELEMENTS // centres.numel())
        for s in range(0, n, block):
            d = torch.addmm(a[s:s + block, None] + a_l, left[s:s + block], r_l.T, alpha=-1.0)  # (b, L), ×2
            min_div[s:s + block] = d.amin(1).mul_(0.5).clamp_min_(0.0)
        min_div[mask] = float("-inf")
    picks = torch.empty(k, dtype=torch.int64, device=probs.device)
    for i in range(k):
        j = torch.argmax(min_div)  # first maximum: ties to the lowest index; stays on the device (no sync per pick)
        picks[i] = j
        col = torch.addmv(a + a[j], left, right[j], alpha=-1.0).mul_(0.5).clamp_min_(0.0)
        torch.minimum(min_div, col, out=min_div)
        min_div.index_fill_(0, j.view(1), float("-inf"))
    return picks


@register
class CDALStrategy(Strategy):
    """Option: double_softmax (False; True applies softmax to the probabilities again, as the reference code does)."""

    name = "cdal"
    description = "contextual diversity (coreset variant): furthest-first on softmax vectors, symmetric KL"

    def __init__(self, double_softmax: bool = False) -> None:
        if not isinstance(double_softmax, bool):
            raise ValueError(f"double_softmax: expected True or False, got {double_softmax!r}")
        self.double_softmax = double_softmax

    def select(self, ctx: SelectionContext, budget: int) -> torch.Tensor:
        require_classes(ctx, self.name)
        probs = ctx.trained.probs(ctx.x_pool)
        if self.double_softmax:
            probs = torch.softmax(probs.float(), dim=1)
        mask = ctx.labeled_mask().to(probs.device)
        return cdal_select(probs, budget, labeled=mask).to(ctx.unlabeled.device)
