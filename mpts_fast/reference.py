"""Plain-PyTorch versions of every op: the fallback when no native kernel serves a call, and
the oracle the tests compare the kernels against (run in float64).

These are written for clarity, not memory: `rbf_mmd2` builds the (n+m)^2 kernel matrix and
`sensitivity` builds the (P, K, I) tensor in chunks. Arguments are assumed validated by
:mod:`mpts_fast.ops`.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from mpts_fast._types import SnapshotScores


def mean_sq_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean ||a - b||^2 over distinct pairs of rows of [x; y], in O((n+m) d), no gradient.

    Uses sum_{a != b} ||z_a - z_b||^2 = 2 N sum_a ||z_a||^2 - 2 ||sum_a z_a||^2.
    """
    with torch.no_grad():
        z = torch.cat([x, y]).double()
        N = z.shape[0]
        if N < 2:
            return z.new_zeros(())
        total = 2 * N * z.pow(2).sum() - 2 * z.sum(0).pow(2).sum()
        return (total / (N * (N - 1))).clamp_min(0)


def bandwidth_scales(x: torch.Tensor, y: torch.Tensor, num: int = 5, mul: float = 2.0) -> list[float]:
    """The scales s_q = 2 sigma_q^2 = h * mul^(q - num // 2) of the default kernel.

    h is the mean pairwise squared distance; when every point coincides (h = 0) any bandwidth
    gives the same MMD (zero), so h = 1 is used to keep the kernel defined.
    """
    h = float(mean_sq_distance(x, y))
    if not h > 0.0 or not math.isfinite(h):
        h = 1.0 if h == 0.0 else h
    return [h * mul ** (q - num // 2) for q in range(num)]


def ladder_base(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """h of bandwidth_scales as a 0-dim float64 tensor on x's device, without gradient and
    without reading it to the host (traceable, works on meta tensors): the mean pairwise squared
    distance, 1 where it is 0 (NaN stays NaN)."""
    h = mean_sq_distance(x, y)
    return torch.where(h == 0, torch.ones_like(h), h)


def ladder_ratios(num: int = 5, mul: float = 2.0) -> list[float]:
    """mul^(q - num // 2), q = 0..num-1: the scales s_q = h * ratio_q of the default kernel."""
    return [mul ** (q - num // 2) for q in range(num)]


def mmd_bandwidths(x: torch.Tensor, y: torch.Tensor, num: int = 5, mul: float = 2.0) -> torch.Tensor:
    """sigma_q with 2 sigma_q^2 = h * mul^(q - num // 2). Returns (num,) in x's dtype/device."""
    ratios = torch.tensor(ladder_ratios(num, mul), dtype=torch.float64, device=x.device)
    return (ladder_base(x, y) * ratios / 2).sqrt().to(dtype=x.dtype)


def rbf_mmd2(
    x: torch.Tensor, y: torch.Tensor, scales: Sequence[float], unbiased: bool = False
) -> torch.Tensor:
    """MMD^2 between x (n, d) and y (m, d) with k = sum_q exp(-||a-b||^2 / s_q). Dense: builds
    the (n+m)^2 kernel matrix. Differentiable in x and y."""
    n, m = x.shape[0], y.shape[0]
    z = torch.cat([x, y])
    sq = z.pow(2).sum(1)
    D = (sq[:, None] + sq[None, :] - 2 * z @ z.T).clamp_min(0)
    eye = torch.eye(n + m, dtype=torch.bool, device=z.device)
    D = D.masked_fill(eye, 0)
    K = sum(torch.exp(-D / s) for s in scales)
    Kxx, Kyy, Kxy = K[:n, :n], K[n:, n:], K[:n, n:]
    if not unbiased:
        return Kxx.mean() + Kyy.mean() - 2 * Kxy.mean()
    off_x = Kxx.sum() - Kxx.diagonal().sum()
    off_y = Kyy.sum() - Kyy.diagonal().sum()
    return off_x / (n * (n - 1)) + off_y / (m * (m - 1)) - 2 * Kxy.mean()


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """-sum_c p log p over the last dim with 0 log 0 = 0 (NaN still propagates)."""
    plogp = torch.where(p > 0, p * torch.log(torch.where(p > 0, p, torch.ones_like(p))), torch.zeros_like(p))
    plogp = torch.where(torch.isnan(p), p, plogp)
    return -plogp.sum(-1)


def _scores_from_moments(pbar: torch.Tensor, var_sum: torch.Tensor, mean_ent: torch.Tensor) -> SnapshotScores:
    entropy = _entropy(pbar)
    mi = entropy - mean_ent
    bald = torch.where(torch.isnan(mi), mi, mi.clamp_min(0))
    C = pbar.shape[-1]
    if C >= 2:
        top = pbar.topk(2, dim=-1).values
        top1, top2 = top[..., 0], top[..., 1]
    else:
        top1, top2 = pbar[..., 0], torch.zeros_like(pbar[..., 0])
    return SnapshotScores(entropy, bald, var_sum, top1 - top2, 1 - top1)


def _plogp(p: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """p log p with 0 log 0 = 0: a -inf logit (a masked class) has p = 0 and log p = -inf, whose
    product would be NaN. NaN p stays NaN (p * 0)."""
    return torch.where(p > 0, p * logp, p * 0)


def snapshot_uncertainty(logits: torch.Tensor) -> SnapshotScores:
    """logits (S, N, C) -> SnapshotScores of (N,) tensors. The plain way: softmax, mean, entropy.
    -inf logits (masked classes) give the scores of the logits without those classes."""
    S = logits.shape[0]
    logp = torch.log_softmax(logits, dim=-1)
    p = logp.exp()
    pbar = p.mean(0)
    mean_ent = -_plogp(p, logp).sum(-1).mean(0)
    var_sum = p.var(0, unbiased=True).sum(-1) if S > 1 else torch.zeros_like(pbar[..., 0])
    return _scores_from_moments(pbar, var_sum, mean_ent)


class SnapshotMoments:
    """Welford state for the reference accumulator: mean (N, C), m2 (N, C), ent_sum (N)."""

    def __init__(self, n: int, num_classes: int, device, dtype) -> None:
        self.mean = torch.zeros(n, num_classes, device=device, dtype=dtype)
        self.m2 = torch.zeros_like(self.mean)
        self.ent_sum = torch.zeros(n, device=device, dtype=dtype)

    def update(self, logits: torch.Tensor, count: int) -> None:
        logp = torch.log_softmax(logits.to(self.mean.dtype), dim=-1)
        p = logp.exp()
        delta = p - self.mean
        self.mean += delta / (count + 1)
        self.m2 += delta * (p - self.mean)
        self.ent_sum += -_plogp(p, logp).sum(-1)

    def scores(self, count: int) -> SnapshotScores:
        var_sum = self.m2.sum(-1) / (count - 1) if count > 1 else torch.zeros_like(self.ent_sum)
        return _scores_from_moments(self.mean, var_sum, self.ent_sum / count)


def sensitivity_matrix(
    x: torch.Tensor,
    V: torch.Tensor,
    b_v: torch.Tensor,
    W: torch.Tensor,
    b_w: torch.Tensor,
    output: str = "sigmoid",
) -> torch.Tensor:
    """S[p,k,i] = a_pk sum_j W[k,j] y_pj (1 - y_pj) V[j,i], (P, K, I)."""
    y = torch.sigmoid(x @ V.T + b_v)
    net = y @ W.T + b_w
    if output == "sigmoid":
        o = torch.sigmoid(net)
        a = o * (1 - o)
    else:
        a = torch.ones_like(net)
    g = y * (1 - y)
    return a[:, :, None] * torch.einsum("kj,pj,ji->pki", W, g, V)


_NORMS = {"l1": 1, "l2": 2, "inf": float("inf")}


def sensitivity(
    x: torch.Tensor,
    V: torch.Tensor,
    b_v: torch.Tensor,
    W: torch.Tensor,
    b_w: torch.Tensor,
    norm: str = "l1",
    output: str = "sigmoid",
    chunk: int = 256,
) -> torch.Tensor:
    """phi[p] = max_k ||S[p,k,:]||, computed chunk by chunk through sensitivity_matrix."""
    out = x.new_empty(x.shape[0])
    for p0 in range(0, x.shape[0], chunk):
        S = sensitivity_matrix(x[p0 : p0 + chunk], V, b_v, W, b_w, output)
        out[p0 : p0 + chunk] = torch.linalg.vector_norm(S, ord=_NORMS[norm], dim=-1).amax(-1)
    return out


# ----------------------------------------------------------------------- selection loops
#
# The plain-PyTorch per-pick loops behind ops.kcenter_greedy / kmeanspp / badge_select (the
# state set-up lives in mpts_fast.coverage). Same contract as csrc/kernels/select.h: mind (N)
# holds each row's squared distance to its nearest centre, < 0 for rows never to pick, and is
# updated in place; first >= 0 is pick 0, first < 0 takes pick 0 from mind as it is. Linear
# memory (rows in chunks), not fused: every pick reads the pool once per chunk.

_SELECT_CHUNK_ELEMS = 1 << 22


def _select_chunks(n: int, cols: int):
    step = max(1, _SELECT_CHUNK_ELEMS // max(1, cols))
    return [(s, min(n, s + step)) for s in range(0, n, step)]


def _fold_min(mind: torch.Tensor, s: int, e: int, dist: torch.Tensor) -> None:
    m = mind[s:e]
    mind[s:e] = torch.where(m >= 0, torch.minimum(m, dist.to(m.dtype)), m)


def _update_features(x: torch.Tensor, mind: torch.Tensor, c: int) -> None:
    centre = x[c].to(mind.dtype)
    for s, e in _select_chunks(x.shape[0], x.shape[1]):
        _fold_min(mind, s, e, (x[s:e].to(mind.dtype) - centre).pow_(2).sum(1))


def _draw(mind: torch.Tensor, u: float) -> int:
    """Row i with probability mind_i / sum (eligible rows, mind >= 0); uniform over eligible
    rows when every weight is 0."""
    w = mind.clamp_min(0).double()
    cs = torch.cumsum(w, 0)
    total = float(cs[-1])
    if total > 0 and math.isfinite(total):
        i = int(torch.searchsorted(cs, torch.tensor([u * total], dtype=torch.float64, device=cs.device), right=True)[0])
        positive = (w > 0).nonzero().squeeze(1)
        # rounding can put the target at or past the end: the last positive-weight row
        return i if i < w.shape[0] and w[i] > 0 else int(positive[positive <= min(i, w.shape[0] - 1)][-1])
    eligible = (mind >= 0).nonzero().squeeze(1)
    return int(eligible[min(int(u * eligible.shape[0]), eligible.shape[0] - 1)])


def _select_loop(update, mind: torch.Tensor, first: int, k: int, u: torch.Tensor | None) -> torch.Tensor:
    picks = []
    uu = u.tolist() if u is not None else None
    for t in range(k):
        if t == 0 and first >= 0:
            w = first
        else:
            if t > 0:
                update(picks[-1])
            w = int(mind.argmax()) if uu is None else _draw(mind, uu[t])
        picks.append(w)
        mind[w] = -1
    return torch.tensor(picks, dtype=torch.long, device=mind.device)


def kcenter_loop(x: torch.Tensor, mind: torch.Tensor, first: int, k: int) -> torch.Tensor:
    """Greedy k-center: each pick is the arg-max of mind (lowest index on ties). (k,) int64."""
    return _select_loop(lambda c: _update_features(x, mind, c), mind, first, k, None)


def kmeanspp_loop(x: torch.Tensor, mind: torch.Tensor, first: int, k: int, u: torch.Tensor) -> torch.Tensor:
    """k-means++: each pick drawn with probability proportional to mind, using u[t]."""
    return _select_loop(lambda c: _update_features(x, mind, c), mind, first, k, u)


def badge_sqnorms(q: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """||q_i (x) h_i||^2 = ||q_i||^2 ||h_i||^2, (N,)."""
    return q.pow(2).sum(1) * h.to(q.dtype).pow(2).sum(1)


def badge_loop(
    q: torch.Tensor, h: torch.Tensor, a: torch.Tensor, mind: torch.Tensor, first: int, k: int, u: torch.Tensor
) -> torch.Tensor:
    """k-means++ over g_i = q_i (x) h_i in factored form:
    ||g_i - g_c||^2 = a_i + a_c - 2 (q_i . q_c)(h_i . h_c), clamped at 0."""

    def update(c: int) -> None:
        qc, hc = q[c], h[c].to(q.dtype)
        for s, e in _select_chunks(h.shape[0], h.shape[1] + q.shape[1]):
            cross = (q[s:e] @ qc) * (h[s:e].to(q.dtype) @ hc)
            _fold_min(mind, s, e, (a[s:e] + a[c] - 2 * cross).clamp_min(0))

    return _select_loop(update, mind, first, k, u)
