"""Dense selection baselines, re-implemented (not copied) in the style of public AL code, for the
side-by-side timings in bench/select_run.py and bench/test_bench_select.py.

    kcenter_dense_deepal      DeepAL / DeepAL+ `kcenter_greedy.py`: the full N x N Euclidean
                              distance matrix from one matmul (||a||^2 + ||b||^2 - 2ab, sqrt),
                              then per pick: min over the (unlabeled x centres) sub-matrix,
                              arg-max, drop the picked row, append the new centre's column
                              (numpy, float32, as those scripts run on CPU embeddings).
    badge_explicit_reference  BADGE's `init_centers`: explicit float64 gradient embeddings
                              (N x C D), k-means++ with sklearn pairwise_distances to the newest
                              centre, a Python loop for the min update and a scipy rv_discrete
                              draw per pick (re-drawn on duplicates). Minutes at N = 20,000:
                              timed on a prefix of the picks and extrapolated by run.py.
    badge_explicit_torch      the same explicit-embedding algorithm vectorised in torch float32
                              (norms once, one matrix-vector product per pick, torch.minimum,
                              torch.multinomial): the best one can do without the factored
                              distances, reading N C D floats per pick instead of N (C + D).

Each returns the picked row indices (int64 numpy array or tensor) in pick order.
"""
from __future__ import annotations

import time

import numpy as np
import torch

__all__ = ["kcenter_dense_deepal", "badge_embeddings", "badge_explicit_reference", "badge_explicit_torch"]


def kcenter_dense_deepal(
    embedding: np.ndarray, labeled: np.ndarray, k: int, max_picks: int | None = None, timings: dict | None = None
) -> np.ndarray:
    """embedding (N, d) float32, labeled (N,) bool. Memory: N^2 floats plus the sub-matrix.
    max_picks: stop early (timing a prefix); timings: filled with matrix_s and pick_s (list)."""
    t0 = time.perf_counter()
    n = embedding.shape[0]
    lb = labeled.copy()
    dist = embedding @ embedding.T
    sq = dist.diagonal().copy().reshape(n, 1)
    dist *= -2
    dist += sq
    dist += sq.T
    np.maximum(dist, 0, out=dist)  # the scripts take sqrt directly (NaN on rounding negatives)
    np.sqrt(dist, out=dist)
    mat = dist[~lb, :][:, lb]
    if timings is not None:
        timings["matrix_s"] = time.perf_counter() - t0
        timings["pick_s"] = []
    picks = []
    for _ in range(k if max_picks is None else min(k, max_picks)):
        t1 = time.perf_counter()
        mat_min = mat.min(axis=1)
        j = int(mat_min.argmax())
        row = int(np.arange(n)[~lb][j])
        lb[row] = True
        picks.append(row)
        mat = np.delete(mat, j, 0)
        mat = np.append(mat, dist[~lb, row][:, None], axis=1)
        if timings is not None:
            timings["pick_s"].append(time.perf_counter() - t1)
    return np.asarray(picks, dtype=np.int64)


def badge_embeddings(probs: np.ndarray, emb: np.ndarray, dtype=np.float64) -> np.ndarray:
    """g_i = (p_i - e_yhat) (x) h_i, (N, C D), as BADGE's get_grad_embedding builds it."""
    n, c = probs.shape
    d = emb.shape[1]
    out = np.zeros((n, c * d), dtype=dtype)
    yhat = probs.argmax(1)
    for j in range(c):
        coef = np.where(yhat == j, 1.0 - probs[:, j], -probs[:, j]) * -1.0  # p_j - [j == yhat]
        out[:, j * d : (j + 1) * d] = emb * coef[:, None]
    return out


def badge_explicit_reference(g: np.ndarray, k: int, seed: int = 0, max_picks: int | None = None) -> np.ndarray:
    """BADGE's seeding on explicit embeddings g (N, C D) float64. max_picks: stop early (for
    timing a prefix of the k picks)."""
    from scipy import stats
    from sklearn.metrics import pairwise_distances

    rng_state = np.random.get_state()
    np.random.seed(seed)
    try:
        first = int(np.argmax([np.linalg.norm(s, 2) for s in g]))
        mu = [g[first]]
        picks = [first]
        d2 = None
        stop = k if max_picks is None else min(k, max_picks)
        while len(picks) < stop:
            if d2 is None:
                d2 = pairwise_distances(g, mu).ravel().astype(float)
            else:
                new = pairwise_distances(g, [mu[-1]]).ravel().astype(float)
                for i in range(len(g)):
                    if d2[i] > new[i]:
                        d2[i] = new[i]
            p = d2**2 / np.sum(d2**2)
            draw = stats.rv_discrete(name="custm", values=(np.arange(len(d2)), p))
            ind = int(draw.rvs(size=1)[0])
            while ind in picks:
                ind = int(draw.rvs(size=1)[0])
            mu.append(g[ind])
            picks.append(ind)
        return np.asarray(picks, dtype=np.int64)
    finally:
        np.random.set_state(rng_state)


def badge_explicit_torch(g: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """k-means++ (first: largest norm) on explicit embeddings g (N, C D), vectorised torch:
    ||g||^2 once, then per pick one matrix-vector product with the newest centre (the cheapest
    way to get the distances from explicit embeddings: one read of g per pick), torch.minimum,
    torch.multinomial. (torch.cdist(g, g[c:c+1]) would be ~30x slower per pick here: its
    matmul path builds padded copies of g on every call.)"""
    sq = (g * g).sum(1)
    first = int(sq.argmax())
    picks = [first]
    d2 = (sq + sq[first] - 2 * torch.mv(g, g[first])).clamp_min_(0)
    d2[first] = 0
    for _ in range(1, k):
        c = int(torch.multinomial(d2, 1, generator=generator))
        picks.append(c)
        new = (sq + sq[c] - 2 * torch.mv(g, g[c])).clamp_min_(0)
        torch.minimum(d2, new, out=d2)
        d2[picks] = 0
    return torch.tensor(picks, dtype=torch.long)
