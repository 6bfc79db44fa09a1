"""First picks and random draws of the selection loops, all in memory linear in N.

Row statistics are accumulated in float64 chunk by chunk (a float64 copy of the whole pool
would cost twice its size); ties go to the lowest index (torch.argmax returns the first).
"""
from __future__ import annotations

import torch

_CHUNK_ELEMS = 1 << 22


def _row_chunks(x: torch.Tensor):
    step = max(1, _CHUNK_ELEMS // x.shape[1])
    for s in range(0, x.shape[0], step):
        yield s, x[s : s + step]


def farthest_from_mean(x: torch.Tensor, *, native: bool = False) -> int:
    """Index of the row farthest (Euclidean) from the mean of all rows; mean and distances in float64.

    native: x is a contiguous CPU tensor and the native kernels are in use: one pass of the
    native op instead of float64 copies of the pool (k-center at N = 8,000, d = 512, k = 40:
    29-49 ms per call before, 9.4 ms after)."""
    if native and x.device.type == "cpu":
        return int(torch.ops.mpts_fast.select_farthest_from_mean(x))
    total = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    for _, c in _row_chunks(x):
        total += c.sum(0, dtype=torch.float64)
    mean = total / x.shape[0]
    dist = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
    for s, c in _row_chunks(x):
        dist[s : s + c.shape[0]] = (c.double() - mean).pow_(2).sum(1)
    return int(dist.argmax())


def largest_norm(sqnorm: torch.Tensor, mask: torch.Tensor | None) -> int:
    """Index of the largest entry of `sqnorm` (N,) outside the labeled `mask`."""
    if mask is not None:
        sqnorm = sqnorm.masked_fill(mask, -1.0)
    return int(sqnorm.argmax())


def row_sqnorms(x: torch.Tensor) -> torch.Tensor:
    """||x_i||^2 in float64, (N,)."""
    out = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
    for s, c in _row_chunks(x):
        out[s : s + c.shape[0]] = c.double().pow(2).sum(1)  # not pow_: c.double() may be x itself
    return out


def uniform_row(u0: float, n: int, mask: torch.Tensor | None) -> int:
    """The floor(u0 * m)-th of the m rows outside `mask` (a uniform draw given u0 in [0, 1))."""
    free = n if mask is None else n - int(mask.sum())
    j = min(int(u0 * free), free - 1)
    if mask is None:
        return j
    return int((~mask).nonzero()[j, 0])


def uniforms(k: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """k float64 uniforms in [0, 1), drawn up front from `generator` (on the generator's own
    device, so the same generator gives the same uniforms on CPU and CUDA), moved to `device`.

    The same uniforms do not make the picks bit-identical across devices: the kernels sum
    distances in different orders, so a near-tie within float32 rounding may be drawn or taken
    differently and the sequences part from there (docs/coverage.md)."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(k, dtype=torch.float64, generator=generator, device=gen_device)
    return u.to(device)
