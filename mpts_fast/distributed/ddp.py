"""`--ddp`: data-parallel training with torch.nn.parallel.DistributedDataParallel for large labeled sets.

Batch semantics: `batch_size` stays the GLOBAL batch. An epoch still has steps = ⌈|L| / min(batch_size, |L|)⌉
optimiser steps (so the trajectory plan, its cycles and snapshot steps are those of one process); a
torch.utils.data.DistributedSampler gives every rank its ⌈|L| / W⌉ share of the epoch's permutation (padded by
repeating its first items when W does not divide |L|, the sampler's default) and each rank cuts its share into the
same `steps` parts, so step k's global batch is the union of the ranks' k-th parts, every rank holding the same
number of items. DDP averages the ranks' gradients of their mean losses: that is the gradient of the mean loss over
the global batch (up to float summation order).

The MPTS MMD term is computed per rank: each rank draws its own reference batch from L ∪ U (as many items as its
labeled part, from a rank-specific generator) and the gradients of the W per-rank MMD² estimates are averaged; the
MMD² of a global batch is not this average (the cross-rank pairs are missing), so an MPTS --ddp run is not the
single-process run split across ranks.

BatchNorm: per-rank statistics (DDP's default), not SyncBatchNorm: torch's SyncBatchNorm has no CPU path (it raises
for non-GPU inputs), so gloo runs could not use it and the CPU tests could not check it. Each rank normalises with
its own b/W items; DDP broadcasts rank 0's running statistics at every forward, and `broadcast_buffers` does the same
before a snapshot is taken and after the last step, so snapshots and the final model are identical on every rank.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from mpts_fast.distributed.comm import _guard
from mpts_fast.distributed.group import is_distributed


def under_launcher() -> bool:
    """Started by torchrun (or another env:// launcher), with any number of ranks, 1 included."""
    return "TORCHELASTIC_RUN_ID" in os.environ or "WORLD_SIZE" in os.environ


def launcher_world_size() -> int:
    """The world size the launcher announced (1 without one), known before the process group is joined."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def check_ddp_sizes(n_labeled: int, batch_size: int, world: int) -> None:
    """Every rank needs at least one item in each of an epoch's parts: |L| ≥ W and batch_size ≥ W."""
    if world > 1 and min(n_labeled, batch_size) < world:
        what = "batch_size" if batch_size < world else "labeled"
        raise ValueError(f"{what}: --ddp on {world} ranks needs a global batch of at least one item per rank, got "
                         f"batch_size {batch_size} and {n_labeled} labeled items; raise the batch size or train "
                         f"replicated (without --ddp)")


def epoch_parts(n_labeled: int, steps: int, epoch: int, seed: int, rank: int, world: int) -> list[torch.Tensor]:
    """This rank's parts of epoch `epoch`: `steps` (m_k,) int64 tensors of positions in L (0..n_labeled−1), m_k the
    same on every rank; step k's global batch is the concatenation of the ranks' k-th parts."""
    sampler = DistributedSampler(range(n_labeled), num_replicas=world, rank=rank, shuffle=True,
                                 seed=seed % (2 ** 62), drop_last=False)
    sampler.set_epoch(epoch)
    share = torch.tensor(list(sampler), dtype=torch.int64)
    if share.numel() < steps:
        raise ValueError(f"steps: {steps} parts of a {share.numel()}-item share would leave a rank an empty batch")
    return list(torch.tensor_split(share, steps))


class TrainStep(nn.Module):
    """The trainer's forward as one module, so that DDP sees it: DDP synchronises gradients only for computations
    that went through its own forward (calling `embed`/`head` on the inner model would bypass the reducer).

    forward(x) → logits (cross-entropy only); forward(x, n_labeled) → (logits of the first n_labeled rows, their
    embeddings, the embeddings of the remaining rows): one pass over the labeled batch and the MMD reference batch."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, n_labeled: int | None = None):
        if n_labeled is None:
            return self.model(x)
        z = self.model.embed(x)
        return self.model.head(z[:n_labeled]), z[:n_labeled], z[n_labeled:]


def wrap(step: TrainStep, device: torch.device) -> DistributedDataParallel:
    """DDP around the step (rank 0's initial weights and buffers are broadcast on construction; by DDP's default
    rank 0's buffers are also broadcast at every forward)."""
    ids = [device] if device.type == "cuda" else None
    return DistributedDataParallel(step, device_ids=ids)


@torch.no_grad()
def broadcast_buffers(model: nn.Module, group=None) -> None:
    """Rank 0's buffers (BatchNorm running statistics) onto every rank, as DDP does at each forward. Parameters are
    equal already (DDP applies the same averaged gradient everywhere)."""
    if not is_distributed(group):
        return
    for b in model.buffers():
        _guard("sharing rank 0's BatchNorm statistics", lambda b=b: dist.broadcast(b, src=0, group=group), group)
