"""Argument checks of the selection ops: every error names the argument and what was expected."""
from __future__ import annotations

import torch

from mpts_fast import _checks

_INTEGER_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16, torch.uint32, torch.uint64)


def finite(x: torch.Tensor, name: str) -> None:
    """NaN/inf check as one reduction: torch.aminmax propagates NaN, and a pool is finite iff its
    minimum and maximum are. (torch.isfinite(x).all() builds a pool-sized mask: ten times the
    time, more than the k-center loop itself at N = 8,000, d = 512, k = 40.) x: non-empty."""
    lo, hi = torch.aminmax(x)
    if not bool(torch.isfinite(torch.stack([lo, hi])).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def features(x, name: str = "features") -> torch.Tensor:
    _checks.tensor(x, name, 2)
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must have at least one row and one column, got shape {tuple(x.shape)}")
    finite(x, name)
    return x


def count(k, name: str = "k") -> int:
    return _checks.integer(k, name, minimum=1, what="a positive number of picks")


def labeled_mask(labeled, n: int, device: torch.device, name: str = "labeled") -> torch.Tensor | None:
    """`labeled` -> bool mask (n,) on `device`, or None when no row is labeled.

    Accepted: None; a bool tensor / numpy array / list of bools of length n (a mask); an integer
    tensor / array / list of row indices in [0, n) (repeats allowed); an empty sequence of any
    dtype (nothing labeled). Refused, never guessed:
    - an integer sequence of length n holding only 0s and 1s: it reads as a 0/1 mask and as
      indices alike (e.g. mask.long()); pass mask.bool() for a mask. Indices that happen to look
      like that (n <= 2, or repeated 0s and 1s) are refused too: pass them as a bool mask.
    - uint8: torch indexes with uint8 as a (deprecated) mask, numpy as indices;
    - floating, complex or any other dtype.
    """
    if labeled is None:
        return None
    if not isinstance(labeled, torch.Tensor):
        try:
            labeled = torch.as_tensor(labeled)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"{name} must be a bool mask or row indices (tensor, numpy array or list), got {type(labeled).__name__}"
            ) from None
    if labeled.numel() == 0:
        if labeled.dim() > 1:
            raise ValueError(f"{name} must be 1-D (a bool mask of {n} rows or row indices), got shape {tuple(labeled.shape)}")
        return None  # [] / empty array / empty tensor of any dtype: nothing labeled
    if labeled.dim() != 1:
        raise ValueError(f"{name} must be 1-D (a bool mask of {n} rows or row indices), got shape {tuple(labeled.shape)}")
    if labeled.dtype == torch.bool:
        if labeled.shape[0] != n:
            raise ValueError(f"{name} as a bool mask must have {n} entries (one per row), got {labeled.shape[0]}")
        mask = labeled.to(device)
        return mask if bool(mask.any()) else None
    if labeled.dtype == torch.uint8:
        raise TypeError(
            f"{name} has dtype uint8, which torch reads as a mask and numpy as indices; "
            f"pass {name}.bool() for a mask or {name}.long() for row indices"
        )
    if labeled.dtype.is_floating_point or labeled.dtype.is_complex or labeled.dtype not in _INTEGER_DTYPES:
        raise TypeError(f"{name} must be a bool mask or an integer index sequence, got dtype {labeled.dtype}")
    idx = labeled.to(dtype=torch.long)
    lo, hi = (int(v) for v in torch.aminmax(idx))  # one pass for both bounds
    if lo < 0 or hi >= n:
        raise ValueError(f"{name} indices must be in [0, {n}), got values from {lo} to {hi}")
    if idx.shape[0] == n and hi <= 1:
        raise ValueError(
            f"{name} has one entry per row ({n}) and holds only 0s and 1s, so it could be a 0/1 mask or row "
            f"indices: pass {name}.bool() for a mask (for indices, a bool mask with those rows True)"
        )
    mask = torch.zeros(n, dtype=torch.bool, device=device)
    mask[idx.to(device)] = True
    return mask


def enough_rows(k: int, n: int, mask: torch.Tensor | None) -> None:
    free = n - (int(mask.sum()) if mask is not None else 0)
    if k > free:
        what = "unlabeled rows" if mask is not None else "rows"
        raise ValueError(f"k = {k} exceeds the {free} {what} that can be picked")


def generator(gen) -> torch.Generator | None:
    if gen is not None and not isinstance(gen, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(gen).__name__}")
    return gen


def probs_and_embeddings(probs, embeddings) -> None:
    _checks.tensor(probs, "probs", 2)
    _checks.tensor(embeddings, "embeddings", 2)
    _checks.same_device(probs=probs, embeddings=embeddings)
    if probs.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"probs and embeddings must have the same number of rows, got probs {tuple(probs.shape)} "
            f"and embeddings {tuple(embeddings.shape)}"
        )
    if probs.shape[0] < 1 or probs.shape[1] < 1:
        raise ValueError(f"probs must have at least one row and one class, got shape {tuple(probs.shape)}")
    if embeddings.shape[1] < 1:
        raise ValueError(f"embeddings must have at least one column, got shape {tuple(embeddings.shape)}")
    finite(probs, "probs")
    finite(embeddings, "embeddings")
    if bool((probs < 0).any()):
        raise ValueError("probs must be a distribution per row (softmax outputs): it has negative entries")
    tol = 1e-2 if probs.dtype in (torch.float16, torch.bfloat16) else 1e-3
    sums = probs.sum(1, dtype=torch.float64)
    worst = float((sums - 1).abs().max())
    if worst > tol:
        raise ValueError(
            f"probs must be a distribution per row (softmax outputs): row sums must be 1 within {tol}, "
            f"got a row summing to {float(sums[(sums - 1).abs().argmax()]):.6g}"
        )
