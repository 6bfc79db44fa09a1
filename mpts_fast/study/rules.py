"""The selection rules of the study: SASLA pruning and the uncertainty-sampling utilities."""
from __future__ import annotations

import math

import torch


def sasla_keep(phi: torch.Tensor, labels: torch.Tensor | None, beta: float = 0.9) -> torch.Tensor:
    """Which patterns of the current training set D_T survive one SASLA selection.

    phi (P,): informativeness Φ of each pattern of D_T; labels (P,) int class ids, or None (regression).
    Keeps Φ(p) > (1 − β)·mean Φ; then, for every class present in D_T with no survivor, keeps that class's
    most informative pattern (first index on ties); with labels None at least the single most informative
    pattern survives. Returns a (P,) bool mask.
    """
    if phi.dim() != 1 or phi.numel() == 0:
        raise ValueError(f"phi: expected a non-empty 1-D tensor, got shape {tuple(phi.shape)}")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta: expected a value in [0, 1], got {beta}")
    if not torch.isfinite(phi).all():
        raise ValueError("phi: expected finite values")
    keep = phi > (1.0 - beta) * phi.mean()
    if labels is None:
        if not keep.any():
            keep[int(phi.argmax())] = True
        return keep
    if labels.shape != phi.shape:
        raise ValueError(f"labels: expected shape {tuple(phi.shape)} like phi, got {tuple(labels.shape)}")
    for c in torch.unique(labels).tolist():
        in_c = labels == c
        if not (keep & in_c).any():
            members = in_c.nonzero().flatten()
            keep[members[int(phi[members].argmax())]] = True
    return keep


def normalised_entropy(z: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(z) over the last axis divided by log C, in [0, 1]. z (..., C) → (...)."""
    C = z.shape[-1]
    if C < 2:
        raise ValueError(f"z: entropy needs at least 2 classes, got {C}")
    logp = torch.log_softmax(z, dim=-1)
    return -(logp.exp() * logp).sum(-1) / math.log(C)


def ensemble_variance(p: torch.Tensor) -> torch.Tensor:
    """Σ_c Var_m p_c (paper Eq. 9; population variance over members). p (E, ..., C) → (...)."""
    return p.var(dim=0, unbiased=False).sum(-1)


def majority_vote(p: torch.Tensor) -> torch.Tensor:
    """Class ids by majority vote of the members' argmax; ties go to the larger mean probability.
    p (E, ..., C) → (...) int64."""
    C = p.shape[-1]
    votes = torch.nn.functional.one_hot(p.argmax(-1), C).sum(0).to(p.dtype)
    # mean probability < 1, so it only decides between classes with equal vote counts
    return (votes + 0.5 * p.mean(0)).argmax(-1)


def top_queries(utility: torch.Tensor, pool: torch.Tensor, q: int) -> torch.Tensor:
    """Indices (M, q) of the q highest-utility pool patterns of each row. utility, pool (M, N)."""
    u = utility.masked_fill(~pool, float("-inf"))
    return u.topk(q, dim=1).indices
