"""Diversity selection on large pools: greedy k-center (Coreset), k-means++ seeding and BADGE,
one fused pass over the pool per pick, memory linear in N (the engine is :mod:`mpts_fast.coverage`);
and the fakes of its mpts_fast::select_* kernels."""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch

from mpts_fast.ops import dispatch

# Rows that count as centres and are never picked: a bool mask (N,) or integer row indices, as a
# tensor, numpy array or list.
LabeledArg = Union[None, torch.Tensor, np.ndarray, Sequence[int], Sequence[bool]]


def kcenter_greedy(features: torch.Tensor, k: int, labeled: LabeledArg = None) -> torch.Tensor:
    """Greedy k-center (Coreset, Sener & Savarese): k rows, each the unlabeled, unpicked row
    farthest (Euclidean) from its nearest centre; ties go to the lowest index.

    features: (N, d) floating tensor. labeled: rows that already count as centres and are never
    picked: None, a bool mask (N,), or integer row indices; a torch tensor, numpy array or list;
    empty means none. An integer `labeled` of length N holding only 0s and 1s (mask.long()) is
    refused as ambiguous (pass mask.bool()), and so is uint8. With no labeled row the first
    pick is the row farthest from the mean of all rows. Returns (k,) int64 row indices in pick
    order, on features' device. 1 <= k <= number of unlabeled rows (an int, numpy integer or
    0-dim integer tensor). Deterministic.

    Initial distances to the labeled set: faiss 1-NN on CPU (chunked GEMM without faiss),
    refined in the direct form; then one fused pass per pick (distance to the newest centre,
    min update, arg-max). Memory O(N) beyond the input.
    """
    from mpts_fast import coverage

    return coverage.kcenter_greedy(features, k, labeled)


def kmeanspp(
    features: torch.Tensor,
    k: int,
    *,
    generator: torch.Generator | None = None,
    first: str = "norm",
    labeled: LabeledArg = None,
) -> torch.Tensor:
    """k-means++ seeding: k distinct rows. The first pick is the largest-norm unlabeled row
    (first="norm", as in BADGE) or a uniform draw among them (first="random"); each next pick is
    drawn with probability proportional to the squared distance to the nearest chosen or
    labeled row. If every remaining distance is 0 the rest are drawn uniformly from the unpicked
    rows. Reproducible with `generator` (k float64 uniforms are drawn from it up front).

    features: (N, d); labeled as in kcenter_greedy. Returns (k,) int64 in pick order.
    """
    from mpts_fast import coverage

    return coverage.kmeanspp(features, k, generator=generator, first=first, labeled=labeled)


def badge_select(
    probs: torch.Tensor,
    embeddings: torch.Tensor,
    k: int,
    *,
    generator: torch.Generator | None = None,
    labeled: LabeledArg = None,
) -> torch.Tensor:
    """BADGE (Ash et al. 2020): k-means++ seeding (first="norm") over the gradient embeddings
    g_i = (p_i - e_yhat_i) (x) h_i, yhat_i = argmax p_i, without forming them:
    ||g_i - g_j||^2 = ||q_i||^2 ||h_i||^2 + ||q_j||^2 ||h_j||^2 - 2 (q_i . q_j)(h_i . h_j),
    q = p - e_yhat, so each pick reads N (C + D) numbers, not N C D.

    probs: (N, C) softmax outputs (non-negative, rows summing to 1); embeddings: (N, D)
    penultimate features; labeled as in kcenter_greedy: labeled rows are never picked and count
    as chosen centres (as kmeanspp(g, k, first="norm", labeled=labeled) over the explicit g).
    Returns (k,) int64 in pick order. Reproducible with `generator`.
    """
    from mpts_fast import coverage

    return coverage.badge_select(probs, embeddings, k, generator=generator, labeled=labeled)


def _check_rows_fake(x, mind, first, k) -> None:
    torch._check(x.dim() == 2, lambda: f"select: expected (N, d) rows, got {x.dim()}-D")
    torch._check(mind.dim() == 1 and mind.shape[0] == x.shape[0],
                 lambda: f"select: expected ({x.shape[0]},) mind, got {tuple(mind.shape)}")
    torch._check(-1 <= first < x.shape[0],
                 lambda: f"select: expected first in [-1, {x.shape[0]}), got {first}")
    torch._check(0 <= k <= x.shape[0], lambda: f"select: expected k in [0, {x.shape[0]}], got {k}")


@dispatch.register_fake("select_kcenter")
def _(x, mind, first, k):
    _check_rows_fake(x, mind, first, k)
    return x.new_empty((k,), dtype=torch.long)


@dispatch.register_fake("select_kmeanspp")
def _(x, mind, first, k, u):
    _check_rows_fake(x, mind, first, k)
    torch._check(u.dim() == 1 and u.dtype == torch.float64,
                 lambda: "select_kmeanspp: expected 1-D float64 uniforms u")
    torch._check(u.shape[0] >= k, lambda: f"select_kmeanspp: expected at least {k} uniforms")
    return x.new_empty((k,), dtype=torch.long)


@dispatch.register_fake("select_lower_mind")
def _(x, centres, mind):
    _check_rows_fake(x, mind, -1, 0)
    torch._check(centres.dim() == 1 and centres.dtype == torch.long,
                 lambda: "select_lower_mind: expected 1-D int64 centres")
    return None


@dispatch.register_fake("select_farthest_from_mean")
def _(x):
    torch._check(x.dim() == 2 and x.shape[0] >= 1,
                 lambda: "select_farthest_from_mean: expected (N, d) rows, N >= 1")
    return x.new_empty((), dtype=torch.long)


@dispatch.register_fake("select_badge_sqnorms")
def _(q, h):
    torch._check(q.dim() == 2 and h.dim() == 2 and q.shape[0] == h.shape[0],
                 lambda: "select_badge_sqnorms: expected q (N, C) and h (N, D)")
    return q.new_empty((q.shape[0],))


@dispatch.register_fake("select_badge_kmeanspp")
def _(q, h, a, mind, first, k, u):
    torch._check(h.dim() == 2 and h.shape[0] == q.shape[0],
                 lambda: "select_badge_kmeanspp: expected q (N, C) and h (N, D)")
    torch._check(a.dim() == 1 and a.shape[0] == q.shape[0],
                 lambda: "select_badge_kmeanspp: expected (N,) squared norms a")
    _check_rows_fake(q, mind, first, k)
    torch._check(u.dim() == 1 and u.dtype == torch.float64,
                 lambda: "select_badge_kmeanspp: expected 1-D float64 uniforms u")
    torch._check(u.shape[0] >= k, lambda: f"select_badge_kmeanspp: expected at least {k} uniforms")
    return q.new_empty((k,), dtype=torch.long)
