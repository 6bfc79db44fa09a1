"""Replicated training under torchrun: every rank trains the same model with the same seed on the (small) labeled
set, then rank 0's weights are broadcast so the ranks agree exactly even where kernels are not bit-reproducible
across processes (cuDNN/cuBLAS algorithm choice, atomics). On the CPU with the same threads per process the weights
are equal already and the broadcast changes nothing."""
from __future__ import annotations

from typing import Iterable

import torch
import torch.distributed as dist
from torch import nn

from mpts_fast.distributed.comm import _guard
from mpts_fast.distributed.group import comm_device, is_distributed


def _tensors(trained) -> Iterable[torch.Tensor]:
    seen: set[int] = set()
    modules: list[nn.Module] = [trained.model, *trained.members]
    if trained.swa_model is not None:
        modules.append(trained.swa_model)
    for module in modules:
        for t in [*module.parameters(), *module.buffers()]:
            if id(t) not in seen:
                seen.add(id(t))
                yield t
    for state in trained.snapshots:
        for t in state.values():
            if isinstance(t, torch.Tensor) and id(t) not in seen:
                seen.add(id(t))
                yield t


@torch.no_grad()
def sync_trained(trained, group=None) -> None:
    """Overwrite every rank's trained weights (model, ensemble members, SWA model, snapshot state dicts) with rank
    0's, in place. A no-op in one process."""
    if not is_distributed(group):
        return
    device = comm_device(group)
    for t in _tensors(trained):
        buf = t.detach().to(device)
        _guard("sharing rank 0's trained weights", lambda: dist.broadcast(buf, src=0, group=group), group)
        if buf.data_ptr() != t.data_ptr():
            t.copy_(buf)
