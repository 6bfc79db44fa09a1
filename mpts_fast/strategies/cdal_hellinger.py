"""`cdal_hellinger`: our variant of CDAL (not the reference's; `cdal` is the reference's rule). Furthest-first over
per-item contextual features built from the softmax outputs, with the labeled items as the initial centres, through the
selection engine's k-center op. Kept because it follows the paper's class-conditional, entropy-weighted construction
(the reference code drops it and runs on the raw softmax vectors), at the cost of N × C² features.

Contextual features. The paper's class-conditional probability of an image I for class c is the entropy-weighted mean
P_I^c = (1/|R_I^c|) Σ_{r ∈ R_I^c} H(p_r) p_r over its regions predicted as c; contextual diversity sums a symmetric KL
over the classes. In classification an item is one region, so only the block of its predicted class ŷ is occupied: P_i^ŷ
= w_i p_i, with w_i = H(p_i)/log C (entropy in [0, 1]).

Distance. The symmetric KL is not Euclidean; this variant uses the Hellinger embedding so that the Euclidean k-center
op applies: the feature of item i is the C × C block vector
holding √(w_i p_i) in block ŷ_i and zeros elsewhere. For two items with the same prediction the squared distance is
Σ_c (√(w_i p_ic) − √(w_j p_jc))², a symmetric f-divergence that agrees with the symmetric KL to second order
(½(KL(p‖q) + KL(q‖p)) ≈ 2‖√p − √q‖² for nearby p, q: both are the Fisher metric locally); items with different
predictions sit in orthogonal blocks, at w_i + w_j, the largest distance their weights allow. Confident items (w ≈ 0)
crowd at the origin, so furthest-first prefers confused items spread over predicted classes: the point of CDAL.
Memory: N × C² floats (100 dims for 10 classes; 10,000 for 100 classes).
"""
from __future__ import annotations

import math

import torch

from mpts_fast import _checks, ops
from mpts_fast.strategies._access import require_classes
from mpts_fast.strategies.base import SelectionContext, Strategy
from mpts_fast.strategies.registry import register


def contextual_features(probs: torch.Tensor) -> torch.Tensor:
    """probs (N, C) softmax rows → (N, C·C) block features: √(H(p)/log C · p) in the block of argmax p, else 0."""
    _checks.tensor(probs, "probs", dim=2)
    n, c = probs.shape
    if c < 2:
        raise ValueError(f"probs: contextual features need at least 2 classes, got shape {tuple(probs.shape)}")
    _checks.finite(probs, "probs")
    p = probs.float().clamp_min(0.0)
    entropy = -(p * torch.log(p.clamp_min(1e-30))).sum(1)
    weight = (entropy / math.log(c)).clamp(0.0, 1.0)
    feats = torch.zeros(n, c, c, dtype=p.dtype, device=p.device)
    rows = torch.arange(n, device=p.device)
    feats[rows, p.argmax(1)] = torch.sqrt(weight.unsqueeze(1) * p)
    return feats.view(n, c * c)


@register
class CDALHellingerStrategy(Strategy):
    """No options: the features and the distance are fixed by the variant (see the module docstring)."""

    name = "cdal_hellinger"
    description = ("ours, not the reference: k-center (Hellinger) over entropy-weighted class-conditional softmax "
                   "blocks")

    def select(self, ctx: SelectionContext, budget: int) -> torch.Tensor:
        require_classes(ctx, self.name)
        feats = contextual_features(ctx.trained.probs(ctx.x_pool))
        mask = ctx.labeled_mask().to(feats.device)
        return ops.kcenter_greedy(feats, budget, labeled=mask).to(ctx.unlabeled.device)
