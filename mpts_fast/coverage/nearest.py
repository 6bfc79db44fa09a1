"""Squared distance of every unlabeled row to its nearest labeled row, in memory linear in N.

A GEMM-shaped 1-NN search finds each row's nearest labeled row: faiss (``IndexFlatL2``) on CPU
float32 when faiss is importable, faiss-gpu for CUDA float32 when installed, a chunked
``||b||^2 - 2 a.b`` GEMM in torch otherwise. Queries and the labeled set are both processed in
chunks, so no N x L matrix (and no copy of the pool) is ever held. The distance to the row found
is then recomputed in the direct form sum_j (x_ij - x_bj)^2, the form the per-pick loops use: a
duplicate of a labeled row gets exactly 0, as in a float64 reference.

With few labeled rows on CPU (see direct_is_faster), the native kernel instead lowers
each row's distance against every labeled row in the direct form, one pass over the pool in
place: no copies of the pool and a single parallel region with a dynamic schedule, where the
search + recompute above costs four pool-sized copies and a dozen torch calls (five times the
time at N = 8,000, d = 512, ten labeled rows, and twice that again with other processes
holding the cores). It is also exact where the search's rounding picks a near-tied neighbour.

MPTS_FAST_FAISS=0 turns faiss off (the GEMM path is then used everywhere).
"""
from __future__ import annotations

import os

import torch

# Above this many labeled rows the direct kernel's L d multiply-adds per row cost more than a
# GEMM-shaped search plus its copies (about 2 N d bytes of traffic per copy). Measured on 2 AMD
# EPYC cores, 32-byte vectors (direct vs faiss search, ms): d = 512, N = 8,000: L = 128 10.6 vs
# 15.6, L = 256 17.5 vs 25.3; d = 128, N = 20,000: L = 128 8.4 vs 10.1, L = 256 18.7 vs 18.6;
# d = 32, N = 20,000: L = 32 2.0 vs 3.7, L = 64 3.5 vs 3.7, L = 128 6.6 vs 4.1 (the search's
# fixed costs shrink with d, the direct kernel's per-row reduction does not).
DIRECT_MAX_LABELED = 128
DIRECT_MAX_LABELED_NARROW = 32  # d < 64
_QUERY_ELEMS = 1 << 22  # elements of one query chunk's distance block / gathered rows (16 MB fp32)


def faiss_module(device: torch.device):
    """The faiss module if it serves `device` here, else None (imported lazily: optional)."""
    if os.environ.get("MPTS_FAST_FAISS", "1").strip().lower() in ("0", "off", "false", "no"):
        return None
    try:
        import faiss  # noqa: PLC0415
    except Exception:  # missing, or a broken install: the GEMM path is always correct
        return None
    if device.type == "cuda":
        gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        return faiss if gpus > 0 and hasattr(faiss, "StandardGpuResources") else None
    return faiss


def _chunk_rows(cols: int) -> int:
    return max(1, _QUERY_ELEMS // max(1, cols))


def _direct_sqdist(x: torch.Tensor, rows: torch.Tensor, other: torch.Tensor, out_dtype) -> torch.Tensor:
    """sum_j (x[rows] - x[other])^2 row by row, chunked."""
    res = torch.empty(rows.shape[0], dtype=out_dtype, device=x.device)
    step = _chunk_rows(x.shape[1])
    for s in range(0, rows.shape[0], step):
        a = x[rows[s : s + step]].to(out_dtype)
        b = x[other[s : s + step]].to(out_dtype)
        res[s : s + step] = (a - b).pow_(2).sum(1)
    return res


def _nn_torch(x: torch.Tensor, qidx: torch.Tensor, lidx: torch.Tensor, dtype) -> torch.Tensor:
    """Index (into x) of the nearest labeled row of each query, chunked GEMM."""
    best_val = torch.full((qidx.shape[0],), float("inf"), dtype=dtype, device=x.device)
    best_idx = torch.zeros(qidx.shape[0], dtype=torch.long, device=x.device)
    d = x.shape[1]
    lstep = max(1, min(lidx.shape[0], _QUERY_ELEMS // d))
    qstep = max(1, _QUERY_ELEMS // max(lstep, d))
    for l0 in range(0, lidx.shape[0], lstep):
        li = lidx[l0 : l0 + lstep]
        b = x[li].to(dtype)
        bsq = b.pow(2).sum(1)
        for q0 in range(0, qidx.shape[0], qstep):
            a = x[qidx[q0 : q0 + qstep]].to(dtype)
            # ||a||^2 is the same for every candidate of a row: only ||b||^2 - 2 a.b ranks them.
            score = torch.addmm(bsq[None, :], a, b.T, alpha=-2.0)
            val, arg = score.min(1)
            val = val + a.pow(2).sum(1)
            better = val < best_val[q0 : q0 + qstep]
            best_val[q0 : q0 + qstep] = torch.where(better, val, best_val[q0 : q0 + qstep])
            best_idx[q0 : q0 + qstep] = torch.where(better, li[arg], best_idx[q0 : q0 + qstep])
    return best_idx


def _nn_faiss(faiss, x: torch.Tensor, qidx: torch.Tensor, lidx: torch.Tensor) -> torch.Tensor:
    """Index (into x) of the nearest labeled row of each query, faiss IndexFlatL2 (float32)."""
    import numpy as np  # noqa: PLC0415

    d = x.shape[1]
    best_val = np.full(qidx.shape[0], np.inf, dtype=np.float32)
    best_idx = np.zeros(qidx.shape[0], dtype=np.int64)
    lstep = max(1, (1 << 25) // d)  # 128 MB of labeled rows per index
    qstep = max(1, _QUERY_ELEMS // d)
    on_gpu = x.device.type == "cuda"
    res = faiss.StandardGpuResources() if on_gpu else None
    for l0 in range(0, lidx.shape[0], lstep):
        li = lidx[l0 : l0 + lstep]
        index = faiss.IndexFlatL2(d)
        if on_gpu:
            index = faiss.index_cpu_to_gpu(res, x.device.index or 0, index)
        index.add(np.ascontiguousarray(x[li].float().cpu().numpy()))
        li_np = li.cpu().numpy()
        for q0 in range(0, qidx.shape[0], qstep):
            a = np.ascontiguousarray(x[qidx[q0 : q0 + qstep]].float().cpu().numpy())
            dist, arg = index.search(a, 1)
            dist, arg = dist[:, 0], arg[:, 0]
            sl = slice(q0, q0 + a.shape[0])
            better = dist < best_val[sl]
            best_val[sl] = np.where(better, dist, best_val[sl])
            best_idx[sl] = np.where(better, li_np[arg], best_idx[sl])
    return torch.from_numpy(best_idx).to(x.device)


def direct_is_faster(labeled: int, d: int) -> bool:
    """Whether the native direct kernel beats the search for `labeled` labeled rows of width d."""
    return labeled <= (DIRECT_MAX_LABELED if d >= 64 else DIRECT_MAX_LABELED_NARROW)


def min_sqdist_to_labeled(
    x: torch.Tensor, mask: torch.Tensor, dtype: torch.dtype, *, native: bool = False
) -> torch.Tensor:
    """mind (N,) in `dtype`: squared distance of each unlabeled row to its nearest labeled row
    (direct form), -1 at labeled rows (never to be picked).

    x: (N, d), any floating dtype; mask: (N,) bool on x's device with at least one True.
    native: x is a contiguous CPU tensor of `dtype` and the native kernels are in use (the
    direct kernel is then taken where direct_is_faster)."""
    lidx = mask.nonzero().squeeze(1)
    if native and x.device.type == "cpu" and x.dtype == dtype and direct_is_faster(lidx.numel(), x.shape[1]):
        mind = torch.where(mask, -1.0, float("inf")).to(dtype)
        torch.ops.mpts_fast.select_lower_mind(x, lidx, mind)
        return mind
    qidx = (~mask).nonzero().squeeze(1)
    mind = torch.full((x.shape[0],), -1.0, dtype=dtype, device=x.device)
    if qidx.numel() == 0:
        return mind
    faiss = faiss_module(x.device) if dtype == torch.float32 else None
    nn = _nn_faiss(faiss, x, qidx, lidx) if faiss is not None else _nn_torch(x, qidx, lidx, dtype)
    mind[qidx] = _direct_sqdist(x, qidx, nn, dtype)
    return mind


def min_sqdist_to_labeled_badge(q: torch.Tensor, h: torch.Tensor, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The BADGE version of min_sqdist_to_labeled, over g_i = q_i (x) h_i without forming g.

    The nearest labeled row of each unlabeled row is found by chunked GEMMs in the factored form
    ||g_i - g_l||^2 = a_i + a_l - 2 (q_i . q_l)(h_i . h_l), never holding an N x L block; the
    distance to the row found is then recomputed from the explicit outer products,
    sum_cd (q_ic h_id - q_lc h_ld)^2, a chunk of rows at a time, so a duplicate of a labeled row
    gets exactly 0. q: (N, C), h: (N, D), mask: (N,) bool with at least one True. Returns (N,)
    in `dtype`, -1 at labeled rows."""
    lidx = mask.nonzero().squeeze(1)
    qidx = (~mask).nonzero().squeeze(1)
    mind = torch.full((q.shape[0],), -1.0, dtype=dtype, device=q.device)
    if qidx.numel() == 0:
        return mind
    qq, hh = q.to(dtype), h.to(dtype)
    a = qq.pow(2).sum(1) * hh.pow(2).sum(1)
    cols = q.shape[1] + h.shape[1]
    lstep = max(1, min(lidx.shape[0], _QUERY_ELEMS // cols))
    qstep = max(1, _QUERY_ELEMS // max(lstep, cols))
    best_val = torch.full((qidx.shape[0],), float("inf"), dtype=dtype, device=q.device)
    best_idx = torch.zeros(qidx.shape[0], dtype=torch.long, device=q.device)
    for l0 in range(0, lidx.shape[0], lstep):
        li = lidx[l0 : l0 + lstep]
        for q0 in range(0, qidx.shape[0], qstep):
            qi = qidx[q0 : q0 + qstep]
            # a_i is the same for every candidate of a row: only a_l - 2 (q.q)(h.h) ranks them
            score = a[li][None, :] - 2 * (qq[qi] @ qq[li].T) * (hh[qi] @ hh[li].T)
            val, arg = score.min(1)
            sl = slice(q0, q0 + qi.shape[0])
            better = val < best_val[sl]
            best_val[sl] = torch.where(better, val, best_val[sl])
            best_idx[sl] = torch.where(better, li[arg], best_idx[sl])
    step = _chunk_rows(q.shape[1] * h.shape[1])
    for s in range(0, qidx.shape[0], step):
        i, j = qidx[s : s + step], best_idx[s : s + step]
        gi = qq[i][:, :, None] * hh[i][:, None, :]
        gj = qq[j][:, :, None] * hh[j][:, None, :]
        mind[i] = (gi - gj).pow_(2).sum((1, 2))
    return mind
