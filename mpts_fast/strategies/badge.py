"""BADGE: k-means++ seeding over gradient embeddings (p − e_ŷ) ⊗ h, in factored form (ops.badge_select)."""
import torch

from mpts_fast import distributed, ops
from mpts_fast.strategies.base import SelectionContext, Strategy
from mpts_fast.strategies.registry import register


@register
class BadgeStrategy(Strategy):
    name = "badge"
    description = "k-means++ over factored gradient embeddings (largest norm first)"

    def select(self, ctx: SelectionContext, budget: int) -> torch.Tensor:
        x_u = ctx.x_unlabeled
        probs = ctx.trained.probs(x_u)
        emb = ctx.trained.embeddings(x_u).float()
        picks = ops.badge_select(probs, emb, budget, generator=ctx.generator)
        return ctx.unlabeled[picks.to(ctx.unlabeled.device)]

    def select_sharded(self, ctx: SelectionContext, budget: int) -> torch.Tensor:
        # each rank embeds its block of the unlabeled items; k-means++ runs over all blocks (distributed/coverage.py)
        lo, hi = distributed.shard_bounds(ctx.unlabeled.numel(), align=ctx.trained.eval_batch_size)
        x_u = ctx.x_pool[ctx.unlabeled[lo:hi]]
        picks = distributed.badge_select(ctx.trained.probs(x_u), ctx.trained.embeddings(x_u).float(), budget,
                                         generator=ctx.generator)
        return ctx.unlabeled[picks.to(ctx.unlabeled.device)]
