"""Plain versions of mpts_fast's ops, written the way active-learning and domain-adaptation
codebases write them. The benchmarks (bench/cases.py) time these side by side with mpts_fast.ops.

They are deliberately *not* optimised: each follows a pattern found in public code, so the
ratios say what a user gains by swapping the snippet they have for the mpts_fast op. All of
them compute the same quantity as the corresponding op (the benchmarks check the values agree),
with the default bandwidth ladder 2 sigma_q^2 = h * 2**(q - 2), q = 0..4, h = mean pairwise
squared distance of the joint set [x; y].

    rbf_mmd2 (forward + backward through autograd)
        mmd2_three_blocks         Kxx, Kyy, Kxy from ||a||^2 + ||b||^2 - 2 a b^T (MMD-GAN /
                                  two-sample-test style "k(x,x) + k(y,y) - 2 k(x,y)")
        mmd2_concat_cdist         DAN / JAN "mmd_rbf" (jindongwang/transferlearning and its many
                                  copies): cat([x, y]), cdist^2, one exp per bandwidth,
                                  XX + YY - XY - YX
    snapshot_uncertainty
        snapshot_scores_plain     softmax -> mean over snapshots -> entropy, BALD, variance,
                                  margin, least confidence (the baal / BatchBALD / MC-dropout
                                  notebook pattern)
        snapshot_entropy_plain    the entropy of the mean softmax only
    sensitivity (Engelbrecht SASLA pattern informativeness)
        sensitivity_einsum_chunked  the formula as written, chunked over patterns:
                                  S = o(1-o) * einsum('kj,pj,ji->pki', W, y(1-y), V)
        gemm_same_shape_chunked   not a baseline but the yardstick: only the (P K x J) @ (J x I)
                                  GEMM that sensitivity has to do, chunked the same way
        sensitivity_autograd_jacobian  do/dx per pattern with torch.autograd.functional.jacobian
                                  (what "sensitivity = Jacobian of the outputs" becomes in code)
    kcenter_greedy
        kcenter_dense_deepal      DeepAL / DeepAL+ `kcenter_greedy.py`: the full N x N Euclidean
                                  distance matrix from one matmul (||a||^2 + ||b||^2 - 2ab, sqrt),
                                  then per pick: min over the (unlabeled x centres) sub-matrix,
                                  arg-max, drop the picked row, append the new centre's column
                                  (numpy, float32, as those scripts run on CPU embeddings)
        kcenter_torch             the O(N)-memory greedy loop in plain PyTorch on the GPU: labeled
                                  1-NN distances by chunked GEMM, then one matrix-vector product,
                                  torch.minimum and an argmax read to the host per pick
    badge_select
        badge_explicit_reference  BADGE's `init_centers`: explicit float64 gradient embeddings
                                  (N x C D, from badge_embeddings), k-means++ with sklearn
                                  pairwise_distances to the newest centre, a Python loop for the min
                                  update and a scipy rv_discrete draw per pick (re-drawn on duplicates)
        badge_explicit_torch      the same explicit-embedding algorithm vectorised in torch float32
                                  (norms once, one matrix-vector product per pick, torch.minimum,
                                  torch.multinomial): the best one can do without the factored
                                  distances, reading N C D floats per pick instead of N (C + D)
        badge_embeddings_torch    the explicit embeddings built with torch on the GPU

The selection baselines return the picked row indices (int64 numpy array or tensor) in pick order.
"""
from __future__ import annotations

import time

import numpy as np
import torch

__all__ = [
    "mmd2_three_blocks",
    "mmd2_concat_cdist",
    "snapshot_scores_plain",
    "snapshot_entropy_plain",
    "sensitivity_einsum_chunked",
    "gemm_same_shape_chunked",
    "sensitivity_autograd_jacobian",
    "kcenter_dense_deepal",
    "badge_embeddings",
    "badge_explicit_reference",
    "badge_explicit_torch",
    "kcenter_torch",
    "badge_embeddings_torch",
]


# ----------------------------------------------------------------------------- rbf_mmd2


def _sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a_i||^2 + ||b_j||^2 - 2 a_i . b_j, the matmul form every snippet uses (no clamp)."""
    return a.pow(2).sum(1)[:, None] + b.pow(2).sum(1)[None, :] - 2 * a @ b.T


def mmd2_three_blocks(x: torch.Tensor, y: torch.Tensor, kernel_num: int = 5, kernel_mul: float = 2.0) -> torch.Tensor:
    """Biased MMD^2 from three kernel blocks: mean Kxx + mean Kyy - 2 mean Kxy.

    Each block's squared distances come from one matmul; k = sum over the bandwidth ladder of
    exp(-D / (2 sigma_q^2)), one exp per bandwidth. The bandwidths are computed from the same
    distance blocks without gradient: h = sum of all joint pairwise squared distances / (N^2 - N),
    2 sigma_q^2 = h * kernel_mul**(q - kernel_num // 2). Memory: three n x m blocks plus one
    saved exp per bandwidth and block for autograd.
    """
    n, m = x.shape[0], y.shape[0]
    N = n + m
    Dxx, Dyy, Dxy = _sq_dist(x, x), _sq_dist(y, y), _sq_dist(x, y)
    with torch.no_grad():
        h = (Dxx.sum() + Dyy.sum() + 2 * Dxy.sum()) / (N * N - N)
    scales = [h * kernel_mul ** (q - kernel_num // 2) for q in range(kernel_num)]
    Kxx = sum(torch.exp(-Dxx / s) for s in scales)
    Kyy = sum(torch.exp(-Dyy / s) for s in scales)
    Kxy = sum(torch.exp(-Dxy / s) for s in scales)
    return Kxx.mean() + Kyy.mean() - 2 * Kxy.mean()


def mmd2_concat_cdist(x: torch.Tensor, y: torch.Tensor, kernel_num: int = 5, kernel_mul: float = 2.0) -> torch.Tensor:
    """DAN/JAN-style mmd_rbf (Long et al.; the transferlearning repo's `guassian_kernel` + `mmd_rbf`).

    The original builds L2 with ((total[None] - total[:, None]) ** 2).sum(2), an (N, N, d)
    broadcast (137 GB at N = 8192, d = 512); the common modern rewrite, used here, is
    torch.cdist(total, total) ** 2. bandwidth = sum(L2) / (N^2 - N) (detached), divided by
    kernel_mul**(kernel_num // 2), then kernels = sum_i exp(-L2 / (bandwidth * kernel_mul**i)).
    The loss is mean(XX + YY - XY - YX) as in the original (which assumes n == m; for n != m the
    four block means are taken separately, the same biased estimator).
    """
    n, m = x.shape[0], y.shape[0]
    N = n + m
    total = torch.cat([x, y], dim=0)
    L2 = torch.cdist(total, total) ** 2
    bandwidth = L2.detach().sum() / (N * N - N)
    bandwidth = bandwidth / kernel_mul ** (kernel_num // 2)
    bandwidth_list = [bandwidth * kernel_mul**i for i in range(kernel_num)]
    kernels = sum(torch.exp(-L2 / bw) for bw in bandwidth_list)
    XX = kernels[:n, :n]
    YY = kernels[n:, n:]
    XY = kernels[:n, n:]
    YX = kernels[n:, :n]
    if n == m:
        return torch.mean(XX + YY - XY - YX)
    return XX.mean() + YY.mean() - XY.mean() - YX.mean()


# ------------------------------------------------------------------- snapshot scores


def snapshot_scores_plain(logits: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(entropy, bald, variance, margin, least_confidence) of S snapshots' logits (S, N, C).

    p = softmax(logits); pbar = p.mean(0); entropy = -(pbar log pbar).sum(-1);
    BALD = entropy - mean_s H(p_s); variance = p.var(0).sum(-1) (S - 1 denominator);
    margin / least confidence from topk(2) of pbar. Materialises p and p log p (S N C each).
    """
    p = torch.softmax(logits, dim=-1)
    pbar = p.mean(0)
    entropy = -(pbar * torch.log(pbar)).sum(-1)
    mean_snapshot_entropy = -(p * torch.log(p)).sum(-1).mean(0)
    bald = entropy - mean_snapshot_entropy
    variance = p.var(0).sum(-1)
    top2 = pbar.topk(2, dim=-1).values
    margin = top2[:, 0] - top2[:, 1]
    least_confidence = 1 - top2[:, 0]
    return entropy, bald, variance, margin, least_confidence


def snapshot_entropy_plain(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the mean softmax only: the cheapest thing an AL loop computes from snapshots."""
    p = torch.softmax(logits, dim=-1)
    pbar = p.mean(0)
    return -(pbar * torch.log(pbar)).sum(-1)


# ------------------------------------------------------------------------ sensitivity


def sensitivity_einsum_chunked(
    x: torch.Tensor,
    V: torch.Tensor,
    b_v: torch.Tensor,
    W: torch.Tensor,
    b_w: torch.Tensor,
    chunk: int = 2048,
) -> torch.Tensor:
    """phi[p] = max_k sum_i |S[p,k,i]| with the (chunk, K, I) sensitivity tensor built by einsum.

    y = sigmoid(x V^T + b_v), o = sigmoid(y W^T + b_w),
    S = (o (1 - o))[:, :, None] * einsum('kj,pj,ji->pki', W, y (1 - y), V).
    """
    P = x.shape[0]
    phi = x.new_empty(P)
    with torch.no_grad():
        for p0 in range(0, P, chunk):
            xc = x[p0 : p0 + chunk]
            y = torch.sigmoid(xc @ V.T + b_v)
            o = torch.sigmoid(y @ W.T + b_w)
            S = (o * (1 - o))[:, :, None] * torch.einsum("kj,pj,ji->pki", W, y * (1 - y), V)
            phi[p0 : p0 + chunk] = S.abs().sum(-1).amax(-1)
    return phi


def gemm_same_shape_chunked(A: torch.Tensor, V: torch.Tensor, P: int, K: int, chunk: int = 2048) -> torch.Tensor:
    """torch.mm at sensitivity's GEMM shape (P K x J) @ (J x I), chunk*K rows at a time.

    A: (chunk * K, J) operand reused for every chunk (its contents do not matter for timing),
    V: (J, I), the hidden weights as stored. Returns the last output chunk.
    FLOPs: 2 P K J I, the same as sensitivity's.
    """
    rows = chunk * K
    out = A.new_empty(rows, V.shape[1])
    for p0 in range(0, P, chunk):
        r = min(chunk, P - p0) * K
        torch.mm(A[:r], V, out=out[:r])
    return out


def sensitivity_autograd_jacobian(
    x: torch.Tensor,
    V: torch.Tensor,
    b_v: torch.Tensor,
    W: torch.Tensor,
    b_w: torch.Tensor,
) -> torch.Tensor:
    """phi[p] = max_k ||d o_k / d x_p||_1, one torch.autograd.functional.jacobian call per pattern.

    For a sigmoid output layer the Jacobian d o / d x is exactly S[p] (K, I). Cost is dominated
    by per-pattern autograd overhead, so time it on a few hundred patterns and extrapolate.
    """

    def net(xp: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(torch.sigmoid(xp @ V.T + b_v) @ W.T + b_w)

    phi = x.new_empty(x.shape[0])
    for p in range(x.shape[0]):
        jac = torch.autograd.functional.jacobian(net, x[p])  # (K, I)
        phi[p] = jac.abs().sum(-1).amax()
    return phi


# ------------------------------------------------------------------------- selection


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


def kcenter_torch(x: torch.Tensor, labeled: torch.Tensor, k: int, chunk: int = 4096) -> torch.Tensor:
    """Greedy k-center in plain PyTorch on x's device, O(N) memory: the way it is written without
    a kernel. x: (N, d) float32, labeled: (L,) long indices. Squared distances from ||a||^2 +
    ||b||^2 - 2 a.b; the labeled rows' 1-NN distances by GEMM in chunks of `chunk` labeled rows;
    then per pick one matrix-vector product with the newest centre, torch.minimum and an argmax
    read to the host (the pick's index). Labeled and picked rows are never picked again."""
    sq = (x * x).sum(1)
    mind = torch.full_like(sq, float("inf"))
    for start in range(0, labeled.numel(), chunk):
        lab = labeled[start:start + chunk]
        d = (sq[:, None] + sq[lab][None, :] - 2 * (x @ x[lab].T)).clamp_min_(0)
        torch.minimum(mind, d.min(1).values, out=mind)
        del d
    mind[labeled] = -1.0
    picks = []
    for _ in range(k):
        c = int(mind.argmax())
        picks.append(c)
        new = (sq + sq[c] - 2 * torch.mv(x, x[c])).clamp_min_(0)
        torch.minimum(mind, new, out=mind)
        mind[c] = -1.0
    return torch.tensor(picks, dtype=torch.long)


def badge_embeddings_torch(probs: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """g_i = (p_i - e_yhat) (x) h_i, (N, C D), built with torch on the inputs' device (as
    badge_embeddings, BADGE's get_grad_embedding, builds them with numpy)."""
    coef = probs.clone()
    coef[torch.arange(probs.shape[0], device=probs.device), probs.argmax(1)] -= 1
    return (coef[:, :, None] * emb[:, None, :]).reshape(probs.shape[0], -1)
