"""Shared helpers for the mpts_fast test suite: device list, float64 oracles written
independently of mpts_fast.reference, and the accuracy assertions.

The oracles deliberately use different math from both the kernels and mpts_fast.reference:
MMD from explicit pairwise differences (not the ||a||^2 + ||b||^2 - 2ab expansion) summed block
by block; snapshot scores from an explicit max-shifted softmax and a sort for the top two;
sensitivity from an autograd Jacobian of the network (and an explicit einsum for cross-checks).
"""
from __future__ import annotations

import math
from typing import Sequence

import pytest
import torch

from mpts_fast import _native

F64 = torch.float64
NAN = float("nan")
INF = float("inf")
SCORE_FIELDS = ("entropy", "bald", "variance", "margin", "least_confidence")


# ----------------------------------------------------------------------------- devices


def cuda_native() -> bool:
    """True when CUDA tensors run on native CUDA kernels in this build and machine."""
    return torch.cuda.is_available() and "cuda" in _native.native_devices()


requires_cuda = pytest.mark.skipif(
    not cuda_native(), reason="needs a CUDA device and mpts_fast._C built with CUDA kernels"
)

# Parametrisation helper: `@pytest.mark.parametrize("device", DEVICES)`; the cuda entry
# SKIPs cleanly (it is still collected) on machines without a GPU / a CUDA build.
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=requires_cuda),
]


# ----------------------------------------------------------------------------- random data


def randn(gen: torch.Generator, *shape, dtype=torch.float32, device="cpu", scale=1.0, shift=0.0):
    """Normal samples drawn on the CPU from `gen` (reproducible on every device), then moved."""
    t = torch.randn(*shape, generator=gen, dtype=F64) * scale + shift
    return t.to(dtype=dtype, device=device)


def permutations(gen: torch.Generator, n: int, k: int) -> list[torch.Tensor]:
    """The identity and k - 1 random permutations of range(n)."""
    return [torch.arange(n)] + [torch.randperm(n, generator=gen) for _ in range(k - 1)]


# ----------------------------------------------------------------------------- MMD oracle


def pairwise_sq_dists(a: torch.Tensor, b: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """||a_i - b_j||^2 from explicit differences, in row chunks (memory chunk * len(b) * d)."""
    rows = [((a[i : i + chunk, None, :] - b[None, :, :]) ** 2).sum(-1) for i in range(0, a.shape[0], chunk)]
    return torch.cat(rows) if rows else a.new_zeros((0, b.shape[0]))


def oracle_mmd2(x: torch.Tensor, y: torch.Tensor, sigmas: Sequence[float], estimator: str = "biased") -> torch.Tensor:
    """Float64 MMD^2, k(a, b) = sum_q exp(-||a-b||^2 / (2 sigma_q^2)), three explicit blocks.
    Differentiable in x and y (for gradient oracles)."""
    x, y = x.to(F64), y.to(F64)
    n, m = x.shape[0], y.shape[0]

    def kernel(a, b):
        D = pairwise_sq_dists(a, b)
        return sum(torch.exp(-D / (2.0 * float(s) ** 2)) for s in sigmas)

    blocks = {}
    for name, (a, b) in {"xx": (x, x), "yy": (y, y), "xy": (x, y)}.items():
        blocks[name] = kernel(a, b)
    if estimator == "biased":
        return blocks["xx"].sum() / (n * n) + blocks["yy"].sum() / (m * m) - 2.0 * blocks["xy"].sum() / (n * m)
    off_xx = blocks["xx"].sum() - torch.diagonal(blocks["xx"]).sum()
    off_yy = blocks["yy"].sum() - torch.diagonal(blocks["yy"]).sum()
    return off_xx / (n * (n - 1)) + off_yy / (m * (m - 1)) - 2.0 * blocks["xy"].sum() / (n * m)


def oracle_mean_sq_dist(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean ||z_a - z_b||^2 over ordered pairs a != b of z = [x; y], by explicit differences."""
    z = torch.cat([x, y]).to(F64)
    N = z.shape[0]
    if N < 2:
        return 0.0
    D = pairwise_sq_dists(z, z)
    return float((D.sum() - torch.diagonal(D).sum()) / (N * (N - 1)))


def oracle_bandwidths(x: torch.Tensor, y: torch.Tensor, num: int = 5, mul: float = 2.0) -> list[float]:
    h = oracle_mean_sq_dist(x, y)
    if h == 0.0:
        h = 1.0
    return [math.sqrt(h * mul ** (q - num // 2) / 2.0) for q in range(num)]


# ----------------------------------------------------------------------------- snapshot oracle


def oracle_snapshot(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Float64 snapshot scores from an explicit max-shifted softmax. logits (S, N, C)."""
    l = logits.detach().to("cpu", F64)
    S, N, C = l.shape
    e = torch.exp(l - l.max(dim=-1, keepdim=True).values)
    p = e / e.sum(-1, keepdim=True)  # (S, N, C)
    pbar = p.sum(0) / S

    def ent(q):
        safe = torch.where(q > 0, q, torch.ones_like(q))
        return -(torch.where(q > 0, q * torch.log(safe), torch.zeros_like(q))).sum(-1)

    entropy = ent(pbar)
    mean_snapshot_entropy = ent(p).sum(0) / S
    bald = torch.clamp(entropy - mean_snapshot_entropy, min=0.0)
    if S > 1:
        variance = ((p - pbar) ** 2).sum(0).sum(-1) / (S - 1)
    else:
        variance = torch.zeros(N, dtype=F64)
    srt = torch.sort(pbar, dim=-1, descending=True).values
    top1 = srt[:, 0]
    top2 = srt[:, 1] if C > 1 else torch.zeros(N, dtype=F64)
    return {
        "entropy": entropy,
        "bald": bald,
        "variance": variance,
        "margin": top1 - top2,
        "least_confidence": 1.0 - top1,
    }


# ----------------------------------------------------------------------------- sensitivity oracle


def _net(V, b_v, W, b_w, output):
    def f(xp):  # one pattern (I,) -> outputs (K,)
        y = torch.sigmoid(V @ xp + b_v)
        net = W @ y + b_w
        return torch.sigmoid(net) if output == "sigmoid" else net

    return f


def oracle_sensitivity_matrix(x, V, b_v, W, b_w, output="sigmoid") -> torch.Tensor:
    """S[p, k, i] = d o_k / d x_i at pattern p, float64, via an autograd Jacobian (vmap)."""
    args = [t.detach().to("cpu", F64) for t in (x, V, b_v, W, b_w)]
    x64, rest = args[0], args[1:]
    if x64.shape[0] == 0:
        return x64.new_zeros((0, rest[2].shape[0], x64.shape[1]))
    return torch.func.vmap(torch.func.jacrev(_net(*rest, output)))(x64)


def einsum_sensitivity_matrix(x, V, b_v, W, b_w, output="sigmoid") -> torch.Tensor:
    """The same S written out from the formula in sensitivity.h, float64."""
    x, V, b_v, W, b_w = [t.detach().to("cpu", F64) for t in (x, V, b_v, W, b_w)]
    y = 1.0 / (1.0 + torch.exp(-(torch.einsum("pi,ji->pj", x, V) + b_v)))
    net = torch.einsum("pj,kj->pk", y, W) + b_w
    if output == "sigmoid":
        o = 1.0 / (1.0 + torch.exp(-net))
        a = o * (1.0 - o)
    else:
        a = torch.ones_like(net)
    return torch.einsum("pk,kj,pj,ji->pki", a, W, y * (1.0 - y), V)


NORM_ORD = {"l1": 1, "l2": 2, "inf": INF}


def oracle_sensitivity(x, V, b_v, W, b_w, norm="l1", output="sigmoid") -> torch.Tensor:
    S = oracle_sensitivity_matrix(x, V, b_v, W, b_w, output)
    if S.shape[0] == 0:
        return S.new_zeros((0,))
    return torch.linalg.vector_norm(S, ord=NORM_ORD[norm], dim=-1).amax(-1)


# ----------------------------------------------------------------------------- assertions


def max_err(a: torch.Tensor, ref64: torch.Tensor) -> float:
    """Max absolute difference, computed in float64 on the CPU (NaN counts as infinite)."""
    a = torch.as_tensor(a).detach().to("cpu", F64)
    ref64 = torch.as_tensor(ref64).detach().to("cpu", F64)
    assert a.shape == ref64.shape, (a.shape, ref64.shape)
    if a.numel() == 0:
        return 0.0
    d = (a - ref64).abs()
    d = torch.where(torch.isnan(d), torch.full_like(d, INF), d)
    return float(d.max())


def assert_flash_rule(native, baseline32, ref64, *, atol: float = 1e-7, factor: float = 2.0, what: str = "") -> None:
    """Flash-attention accuracy rule: err(native, ref64) <= factor * err(baseline32, ref64) + atol.

    native / baseline32 may be single tensors or lists of tensors (results on equivalent inputs,
    e.g. row permutations); the max error over the list is used on both sides, so one lucky
    rounding in the plain-PyTorch baseline cannot shrink the bound to nothing.
    """
    natives = native if isinstance(native, (list, tuple)) else [native]
    bases = baseline32 if isinstance(baseline32, (list, tuple)) else [baseline32]
    for t in natives:
        t = torch.as_tensor(t)
        assert bool(torch.isfinite(t).all()), f"{what}: non-finite native output"
    e_native = max(max_err(t, ref64) for t in natives)
    e_base = max(max_err(t, ref64) for t in bases)
    assert e_native <= factor * e_base + atol, (
        f"{what}: native float32 error {e_native:.3e} > {factor} x plain-PyTorch float32 error "
        f"{e_base:.3e} + {atol:.1e}"
    )


def assert_close64(actual, ref64, *, rtol: float = 1e-10, atol: float = 1e-13, what: str = "") -> None:
    """float64 native vs float64 oracle: ~1e-10 relative (atol covers values that cancel to ~0)."""
    actual = torch.as_tensor(actual).detach().to("cpu", F64)
    ref64 = torch.as_tensor(ref64).detach().to("cpu", F64)
    assert bool(torch.isfinite(actual).all()), f"{what}: non-finite output"
    torch.testing.assert_close(actual, ref64, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


def poison_allocator(numel: int, dtype: torch.dtype, device) -> None:
    """Best effort: hand the allocator a NaN-filled block of `numel` elements back, so that an
    output allocated right after (same size) is likely to reuse NaN memory.

    Reliable on CUDA (the caching allocator returns the same block for the same size). On the
    CPU it only works for sizes below glibc's mmap threshold (~128 KiB), where the freed chunk
    is recycled; larger blocks come back from mmap zeroed, so there it catches nothing and the
    completeness check rests on comparing every element with the oracle.
    """
    scratch = torch.empty(max(int(numel), 1), dtype=dtype, device=device).fill_(NAN)
    del scratch
