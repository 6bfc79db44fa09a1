"""Coreset: greedy k-center on penultimate embeddings with the labeled set as initial centres (ops.kcenter_greedy)."""
import torch

from mpts_fast import distributed, ops
from mpts_fast.strategies.base import SelectionContext, Strategy
from mpts_fast.strategies.registry import register


@register
class CoresetStrategy(Strategy):
    name = "coreset"
    description = "greedy k-center on embeddings, labeled items as centres"

    def select(self, ctx: SelectionContext, budget: int) -> torch.Tensor:
        features = ctx.trained.embeddings(ctx.x_pool).float()
        mask = ctx.labeled_mask().to(features.device)
        return ops.kcenter_greedy(features, budget, labeled=mask).to(ctx.unlabeled.device)

    def select_sharded(self, ctx: SelectionContext, budget: int) -> torch.Tensor:
        # each rank embeds its block of the pool; the greedy k-center runs over all blocks (distributed/coverage.py)
        lo, hi = distributed.shard_bounds(ctx.x_pool.shape[0], align=ctx.trained.eval_batch_size)
        features = ctx.trained.embeddings(ctx.x_pool[lo:hi]).float()
        mask = ctx.labeled_mask()[lo:hi].to(features.device)
        return distributed.kcenter_greedy(features, budget, labeled=mask).to(ctx.unlabeled.device)
