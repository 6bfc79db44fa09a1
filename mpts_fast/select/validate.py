"""Argument checks of the selection ops: every error names the argument and what was expected."""
from __future__ import annotations

import operator

import torch

from mpts_fast import _checks


def features(x, name: str = "features") -> torch.Tensor:
    _checks.tensor(x, name, 2)
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must have at least one row and one column, got shape {tuple(x.shape)}")
    _checks.finite(x, name)
    return x


def count(k, name: str = "k") -> int:
    if isinstance(k, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        k = operator.index(k)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(k).__name__}") from None
    if k <= 0:
        raise ValueError(f"{name} must be a positive number of picks, got {k}")
    return k


def labeled_mask(labeled, n: int, device: torch.device) -> torch.Tensor | None:
    """labeled: None, a bool mask (n,) or a 1-D integer index tensor -> bool mask (n,) on
    `device`, or None when no row is labeled."""
    if labeled is None:
        return None
    if not isinstance(labeled, torch.Tensor):
        try:
            labeled = torch.as_tensor(labeled)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"labeled must be a bool mask or an index tensor, got {type(labeled).__name__}") from None
    if labeled.dim() != 1:
        raise ValueError(f"labeled must be 1-D (a bool mask of {n} rows or row indices), got shape {tuple(labeled.shape)}")
    if labeled.dtype == torch.bool:
        if labeled.shape[0] != n:
            raise ValueError(f"labeled as a bool mask must have {n} entries (one per row of features), got {labeled.shape[0]}")
        mask = labeled.to(device)
    elif not labeled.dtype.is_floating_point and not labeled.dtype.is_complex:
        if labeled.numel() and (int(labeled.min()) < 0 or int(labeled.max()) >= n):
            raise ValueError(
                f"labeled indices must be in [0, {n}), got values from {int(labeled.min())} to {int(labeled.max())}"
            )
        mask = torch.zeros(n, dtype=torch.bool, device=device)
        mask[labeled.to(device=device, dtype=torch.long)] = True
    else:
        raise TypeError(f"labeled must be a bool mask or an integer index tensor, got dtype {labeled.dtype}")
    return mask if bool(mask.any()) else None


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
    _checks.finite(probs, "probs")
    _checks.finite(embeddings, "embeddings")
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
