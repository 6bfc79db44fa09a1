"""Argument checks of the selection ops, worded as every check in :mod:`mpts_fast._checks`:
"<name>: expected <what>, got <value>"."""
from __future__ import annotations

import torch

from mpts_fast import _checks

_INTEGER_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16, torch.uint32, torch.uint64)


def features(x, name: str = "features") -> torch.Tensor:
    _checks.tensor(x, name, 2)
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name}: expected at least one row and one column, got shape {tuple(x.shape)}")
    _checks.finite(x, name)
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
                f"{name}: expected a bool mask or row indices (tensor, numpy array or list), got {type(labeled).__name__}"
            ) from None
    if labeled.numel() == 0:
        if labeled.dim() > 1:
            raise ValueError(f"{name}: expected a 1-D bool mask of {n} rows or row indices, got shape {tuple(labeled.shape)}")
        return None  # [] / empty array / empty tensor of any dtype: nothing labeled
    if labeled.dim() != 1:
        raise ValueError(f"{name}: expected a 1-D bool mask of {n} rows or row indices, got shape {tuple(labeled.shape)}")
    if labeled.dtype == torch.bool:
        if labeled.shape[0] != n:
            raise ValueError(f"{name}: expected a bool mask of {n} entries (one per row), got {labeled.shape[0]}")
        mask = labeled.to(device)
        return mask if bool(mask.any()) else None
    if labeled.dtype == torch.uint8:
        raise TypeError(
            f"{name}: expected a bool mask or integer row indices, got dtype uint8 (torch reads it as a mask, "
            f"numpy as indices); pass {name}.bool() for a mask or {name}.long() for row indices"
        )
    if labeled.dtype.is_floating_point or labeled.dtype.is_complex or labeled.dtype not in _INTEGER_DTYPES:
        raise TypeError(f"{name}: expected a bool mask or integer row indices, got dtype {labeled.dtype}")
    idx = labeled.to(dtype=torch.long)
    lo, hi = (int(v) for v in torch.aminmax(idx))  # one pass for both bounds
    if lo < 0 or hi >= n:
        raise ValueError(f"{name}: expected row indices in [0, {n}), got values from {lo} to {hi}")
    if idx.shape[0] == n and hi <= 1:
        raise ValueError(
            f"{name}: expected a bool mask or row indices, got one entry per row ({n}) holding only 0s and 1s, "
            f"which could be either: pass {name}.bool() for a mask (for indices, a bool mask with those rows True)"
        )
    mask = torch.zeros(n, dtype=torch.bool, device=device)
    mask[idx.to(device)] = True
    return mask


def enough_rows(k: int, n: int, mask: torch.Tensor | None) -> None:
    free = n - (int(mask.sum()) if mask is not None else 0)
    if k > free:
        what = "unlabeled rows" if mask is not None else "rows"
        raise ValueError(f"k: expected at most the {free} {what} that can be picked, got {k}")


def generator(gen) -> torch.Generator | None:
    if gen is not None and not isinstance(gen, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(gen).__name__}")
    return gen


def probs_and_embeddings(probs, embeddings) -> None:
    _checks.tensor(probs, "probs", 2)
    _checks.tensor(embeddings, "embeddings", 2)
    _checks.same_device(probs=probs, embeddings=embeddings)
    if probs.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"embeddings: expected one row per row of probs ({probs.shape[0]}), got shape {tuple(embeddings.shape)}"
        )
    if probs.shape[0] < 1 or probs.shape[1] < 1:
        raise ValueError(f"probs: expected at least one row and one class, got shape {tuple(probs.shape)}")
    if embeddings.shape[1] < 1:
        raise ValueError(f"embeddings: expected at least one column, got shape {tuple(embeddings.shape)}")
    _checks.finite(probs, "probs")
    _checks.finite(embeddings, "embeddings")
    if bool((probs < 0).any()):
        raise ValueError("probs: expected a distribution per row (softmax outputs), got negative entries")
    tol = 1e-2 if probs.dtype in (torch.float16, torch.bfloat16) else 1e-3
    sums = probs.sum(1, dtype=torch.float64)
    worst = float((sums - 1).abs().max())
    if worst > tol:
        raise ValueError(
            f"probs: expected a distribution per row (softmax outputs, rows summing to 1 within {tol}), "
            f"got a row summing to {float(sums[(sums - 1).abs().argmax()]):.6g}"
        )
