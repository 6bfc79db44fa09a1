"""Coreset: greedy k-center on penultimate embeddings with the labeled set as initial centres (ops.kcenter_greedy)."""
import torch

from mpts_fast import ops
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
