"""Beyond one process: torch.distributed (torchrun; nccl on GPUs, gloo on CPUs) for pool scoring and selection.

Public API (every function also works without a process group, as one process):
- ``kcenter_greedy``, ``kmeanspp``, ``badge_select``: each rank passes its contiguous shard of the pool (rank order =
  global order); every rank gets the same (k,) global indices, equal to the single-process mpts_fast.ops picks.
- ``merged_top_k``: exact top-b over sharded scores (ties to the lowest global index, as in one process).
- ``setup`` / ``teardown`` / ``rank`` / ``world_size`` / ``is_primary`` / ``shard_bounds``: the process group.
- ``PeerFailedError``: a collective failed because another rank failed, was killed or timed out.

docs/scaling-out.md describes the launch, what is sharded and replicated, and the measured figures.
"""
from mpts_fast.distributed.comm import PeerFailedError
from mpts_fast.distributed.group import (is_distributed, is_primary, launched, rank, setup, shard_bounds, teardown,
                                         world_size)
from mpts_fast.distributed.scoring import merged_top_k
from mpts_fast.distributed.coverage import badge_select, kcenter_greedy, kmeanspp

__all__ = ["kcenter_greedy", "kmeanspp", "badge_select", "merged_top_k", "setup", "teardown", "rank", "world_size",
           "is_primary", "is_distributed", "launched", "shard_bounds", "PeerFailedError"]
