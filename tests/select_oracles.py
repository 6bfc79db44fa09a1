"""Float64 oracles for the selection ops, written independently of mpts_fast: dense pairwise
matrices from explicit differences (small N only) and explicitly built BADGE gradient
embeddings."""
from __future__ import annotations

import torch

F64 = torch.float64


def sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a_i - b_j||^2 from explicit differences, float64, (len(a), len(b))."""
    a, b = a.to(F64), b.to(F64)
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def _first_max(values: torch.Tensor, allowed: torch.Tensor) -> int:
    """Lowest index of the maximum of values over the allowed entries."""
    best, arg = None, -1
    for i in range(values.shape[0]):
        if allowed[i] and (best is None or values[i] > best):
            best, arg = values[i].item(), i
    return arg


def kcenter(x: torch.Tensor, k: int, labeled: torch.Tensor | None = None) -> list[int]:
    """Greedy k-center by the book: each pick maximises the distance to the nearest centre
    among unlabeled, unpicked rows (ties: lowest index)."""
    N = x.shape[0]
    D = sq_dists(x, x)
    centre = torch.zeros(N, dtype=torch.bool) if labeled is None else labeled.clone().cpu()
    picks: list[int] = []
    for _ in range(k):
        if not centre.any():
            xx = x.to(F64)
            to_mean = ((xx - xx.mean(0)) ** 2).sum(1)
            w = _first_max(to_mean, torch.ones(N, dtype=torch.bool))
        else:
            nearest = D[:, centre].min(1).values
            w = _first_max(nearest, ~centre)
        picks.append(w)
        centre[w] = True
    return picks


def gradient_embeddings(probs: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """BADGE's g_i = (p_i - e_yhat) (x) h_i, explicitly, (N, C * D) float64."""
    p, h = probs.to(F64), emb.to(F64)
    q = p.clone()
    q[torch.arange(p.shape[0]), p.argmax(1)] -= 1
    return (q[:, :, None] * h[:, None, :]).reshape(p.shape[0], -1)


def kmeanspp(g: torch.Tensor, k: int, u: torch.Tensor, first: int) -> list[int]:
    """k-means++ over explicit rows g with given uniforms: pick t >= 1 is the first row whose
    running sum of D^2 exceeds u[t] * total."""
    D = sq_dists(g, g)
    picks = [first]
    for t in range(1, k):
        d2 = D[:, picks].min(1).values
        d2[picks] = 0
        cs = torch.cumsum(d2, 0)
        target = float(u[t]) * float(cs[-1])
        picks.append(int((cs > target).nonzero()[0, 0]))
    return picks
