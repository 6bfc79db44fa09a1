"""The initial labeled set of an active-learning run: stratified, so that a small set never starts with every item
from one class (docs/cli.md, "The initial labeled set")."""
from __future__ import annotations

import torch

# Recorded per run in results.json ("initial_rule"); runs stored without it were drawn uniformly (earlier versions)
# and keep their stored initial sets on resume.
INITIAL_RULE = "stratified"


def stratified_initial(y: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """`size` distinct pool indices: one item of each class the pool holds first (one uniform draw per class; when
    `size` is below the number of classes, a uniform draw of `size` classes), then the rest uniformly from the
    remaining pool. Deterministic for a given generator state; O(N) time and memory.

    y: (N,) int64 class ids of the pool (0..K-1). Returns (size,) int64, the per-class items first.
    """
    n = y.shape[0]
    if not 0 <= size <= n:
        raise ValueError(f"size must be in [0, {n}] (the pool size), got {size}")
    perm = torch.randperm(n, generator=generator)
    y_perm = y.cpu()[perm]
    k = int(y_perm.max()) + 1 if n else 0
    # the first position of each class in the permutation: a uniformly drawn item of that class
    first = torch.full((k,), n, dtype=torch.int64).scatter_reduce_(0, y_perm, torch.arange(n), reduce="amin")
    present = (first < n).nonzero().squeeze(1)
    class_order = present[torch.randperm(present.numel(), generator=generator)][:size]
    positions = first[class_order]
    taken = torch.zeros(n, dtype=torch.bool)
    taken[positions] = True
    rest = (~taken).nonzero().squeeze(1)[: size - positions.numel()]  # permutation order: a uniform draw
    return perm[torch.cat([positions, rest])]
