"""k-means for the clustering step of ALFA-Mix: scikit-learn's KMeans as the reference runs it (k-means++, 10 restarts,
300 iterations: sklearn 0.23's defaults), or faster stand-ins: faiss when importable (CPU tensors), Lloyd iterations in
torch on the tensors' device (a GPU machine has no faiss). Either way the result is the item nearest each non-empty
centre."""
from __future__ import annotations

import torch

from mpts_fast import _checks
from mpts_fast.coverage.nearest import faiss_module

BACKENDS = ("sklearn", "auto", "faiss", "torch")


def _sq_dists(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """(n, d), (k, d) → (n, k) squared Euclidean distances, ‖x‖² + ‖c‖² − 2x·c clamped at 0."""
    return ((x * x).sum(1, keepdim=True) + (c * c).sum(1) - 2.0 * x @ c.T).clamp_min_(0.0)


def _assign(x: torch.Tensor, c: torch.Tensor, block: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centre and its squared distance per row, in row blocks so no n × k matrix is held."""
    labels, dists = [], []
    for xb in torch.split(x, block):
        d = _sq_dists(xb, c)
        best = d.min(1)
        dists.append(best.values)
        labels.append(best.indices)
    return torch.cat(labels), torch.cat(dists)


def _lloyd(x: torch.Tensor, k: int, niter: int, seed: int) -> torch.Tensor:
    """Centres after `niter` Lloyd steps from k distinct random rows; an emptied centre moves to the row farthest
    from its centre (so k stays k)."""
    gen = torch.Generator().manual_seed(seed)
    centres = x[torch.randperm(x.shape[0], generator=gen)[:k].to(x.device)].clone()
    for _ in range(niter):
        labels, dists = _assign(x, centres)
        sums = torch.zeros_like(centres).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k).to(x.dtype)
        empty = counts == 0
        new = sums / counts.clamp_min(1).unsqueeze(1)
        if bool(empty.any()):
            far = torch.topk(dists, int(empty.sum())).indices
            new[empty] = x[far]
        if torch.equal(new, centres):
            break
        centres = new
    return centres


def kmeans_nearest(features: torch.Tensor, k: int, *, seed: int = 0, niter: int = 50,
                   backend: str = "auto") -> torch.Tensor:
    """Clusters features (n, d) into k groups and returns the positions (m,) int64 of the row nearest each non-empty
    centre (m ≤ k; rows are distinct since each row belongs to one cluster), ordered by centre.

    backend: "sklearn" (sklearn.cluster.KMeans(n_clusters=k, n_init=10, max_iter=300), the reference's call; niter is
    not used), "faiss" (faiss.Kmeans on CPU float32, niter iterations; error if faiss is missing), "torch" (Lloyd on
    the features' device), "auto" (faiss when importable and the features are on the CPU, else torch).
    """
    _checks.tensor(features, "features", dim=2)
    _checks.choice(backend, "backend", BACKENDS)
    n = features.shape[0]
    k = _checks.int_option(k, "k", minimum=1, maximum=n)
    _checks.finite(features, "features")
    x = features.detach().float()
    if backend == "sklearn":
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=k, n_init=10, max_iter=300, random_state=seed).fit(x.cpu().numpy())
        return _nearest_per_cluster(x, torch.from_numpy(km.cluster_centers_).float().to(x.device))
    # the selection engine's loader: lazy import, MPTS_FAST_FAISS=0 honoured, a broken install treated as absent
    faiss = faiss_module(torch.device("cpu")) if backend != "torch" else None
    if backend == "faiss" and faiss is None:
        raise ValueError("backend: 'faiss' requested but faiss is not installed (pip install faiss-cpu)")
    use_faiss = faiss is not None and (backend == "faiss" or features.device.type == "cpu")
    if use_faiss:
        xs = x.cpu().contiguous().numpy()
        km = faiss.Kmeans(xs.shape[1], k, niter=niter, seed=seed, verbose=False, min_points_per_centroid=1,
                           max_points_per_centroid=1 << 30)
        km.train(xs)
        centres = torch.from_numpy(km.centroids).to(x.device)
    else:
        centres = _lloyd(x, k, niter, seed)
    return _nearest_per_cluster(x, centres)


def _nearest_per_cluster(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Positions (m,) of the row nearest each non-empty centre, ordered by centre."""
    n = x.shape[0]
    labels, dists = _assign(x, centres)
    # per cluster, the member with the smallest distance (ties: lowest position): sort by (cluster, distance, position)
    order = torch.argsort(dists, stable=True)
    order = order[torch.argsort(labels[order], stable=True)]
    first = torch.ones(n, dtype=torch.bool, device=x.device)
    first[1:] = labels[order][1:] != labels[order][:-1]
    return order[first].cpu()
