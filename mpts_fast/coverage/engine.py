"""The three selection flows: validate, initialise the min-distance state, run the per-pick loop
(native fused kernel, or the plain-PyTorch loop of mpts_fast.reference).

Memory beyond the inputs: the (N,) state and picks, plus chunks (and, for BADGE, the (N, C)
matrix q = p - e_argmax(p)). Nothing N x N, N x L or N x (C D) is ever formed.
"""
from __future__ import annotations

import torch

from mpts_fast import _checks, _native, reference
from mpts_fast.coverage import nearest, seeding, validate

_HALF = (torch.float16, torch.bfloat16)


def _prepare(x: torch.Tensor, op: str) -> tuple[torch.Tensor, torch.dtype, bool]:
    """(rows to run on, dtype of the distance state, native?). CPU: float32/float64 kernels
    (float16/bfloat16 are widened to float32). CUDA: float32 state; float16/bfloat16 storage
    is read as is by the kernel; float64 runs the reference in float64."""
    if x.device.type == "cuda" and x.dtype == torch.float64:
        return x, torch.float64, False
    native = _native.use_native(op, x.device)
    if x.device.type == "cuda":
        if native:
            return x.contiguous(), torch.float32, True
        return x.float(), torch.float32, False
    x = x.float() if x.dtype in _HALF else x
    return (x.contiguous() if native else x), x.dtype, native


def _labeled_mask(labeled, k: int, n: int, device: torch.device) -> torch.Tensor | None:
    """The (n,) labeled mask (None without labels), after checking that k picks fit among the unlabeled rows."""
    mask = validate.labeled_mask(labeled, n, device)
    validate.enough_rows(k, n, mask)
    return mask


def _initial_state(x: torch.Tensor, mask: torch.Tensor | None, dtype: torch.dtype, native: bool) -> torch.Tensor:
    if mask is None:
        return torch.full((x.shape[0],), float("inf"), dtype=dtype, device=x.device)
    return nearest.min_sqdist_to_labeled(x, mask, dtype, native=native)


def kcenter_greedy(features: torch.Tensor, k: int, labeled=None) -> torch.Tensor:
    features = validate.features(features)
    k = validate.count(k)
    N = features.shape[0]
    mask = _labeled_mask(labeled, k, N, features.device)
    with torch.no_grad():
        x, dtype, native = _prepare(features.detach(), "kcenter_greedy")
        mind = _initial_state(x, mask, dtype, native)
        first = -1 if mask is not None else seeding.farthest_from_mean(x, native=native)
        if native:
            return torch.ops.mpts_fast.select_kcenter(x, mind, first, k)
        return reference.kcenter_loop(x, mind, first, k)


def kmeanspp(
    features: torch.Tensor,
    k: int,
    *,
    generator: torch.Generator | None = None,
    first: str = "norm",
    labeled=None,
) -> torch.Tensor:
    features = validate.features(features)
    k = validate.count(k)
    _checks.choice(first, "first", ("norm", "random"))
    generator = validate.generator(generator)
    N = features.shape[0]
    mask = _labeled_mask(labeled, k, N, features.device)
    with torch.no_grad():
        x, dtype, native = _prepare(features.detach(), "kmeanspp")
        u = seeding.uniforms(k, generator, x.device)
        if first == "norm":
            first_row = seeding.largest_norm(seeding.row_sqnorms(x), mask)
        else:
            first_row = seeding.uniform_row(float(u[0]), N, mask)
        mind = _initial_state(x, mask, dtype, native)
        if native:
            return torch.ops.mpts_fast.select_kmeanspp(x, mind, first_row, k, u)
        return reference.kmeanspp_loop(x, mind, first_row, k, u)


def badge_factors(probs: torch.Tensor, embeddings: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """q = p - e_argmax(p), (N, C) in `dtype`, row-major: the class factor of g_i = q_i (x) h_i.

    A plain copy would keep the strides of a transposed `probs` (`probs.T` of a (C, N) tensor), and the kernels
    read q row by row."""
    q = probs.to(dtype=dtype, copy=True, memory_format=torch.contiguous_format)
    rows = torch.arange(q.shape[0], device=q.device)
    q[rows, probs.argmax(1)] -= 1
    return q


def badge_select(
    probs: torch.Tensor,
    embeddings: torch.Tensor,
    k: int,
    *,
    generator: torch.Generator | None = None,
    labeled=None,
) -> torch.Tensor:
    validate.probs_and_embeddings(probs, embeddings)
    k = validate.count(k)
    generator = validate.generator(generator)
    N = probs.shape[0]
    mask = _labeled_mask(labeled, k, N, probs.device)
    with torch.no_grad():
        h, dtype, native = _prepare(embeddings.detach(), "badge_select")
        q = badge_factors(probs.detach(), h, dtype)
        u = seeding.uniforms(k, generator, h.device)
        if mask is None:
            mind = torch.full((N,), float("inf"), dtype=dtype, device=h.device)
        else:
            mind = nearest.min_sqdist_to_labeled_badge(q, h, mask, dtype)
        a = torch.ops.mpts_fast.select_badge_sqnorms(q, h) if native else reference.badge_sqnorms(q, h)
        # the first pick: the largest gradient embedding among the unlabeled rows (BADGE)
        first_row = seeding.largest_norm(a, mask)
        if native:
            return torch.ops.mpts_fast.select_badge_kmeanspp(q, h, a, mind, first_row, k, u)
        return reference.badge_loop(q, h, a, mind, first_row, k, u)
