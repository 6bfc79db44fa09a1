"""Entropy sampling: top-b of −Σ p log p of the final model (no snapshots)."""
import torch

from mpts_fast.distributed.group import is_distributed
from mpts_fast.distributed.scoring import sharded_score_select
from mpts_fast.strategies.base import ScoreStrategy, SelectionContext
from mpts_fast.strategies.registry import register


@register
class EntropyStrategy(ScoreStrategy):
    name = "entropy"
    description = "predictive entropy of the final model"
    score_field = "entropy"

    def select(self, ctx: SelectionContext, budget: int) -> torch.Tensor:
        if is_distributed():  # torchrun: each rank scores its block of the unlabeled items, exact top-b merge
            return sharded_score_select(self, ctx, budget)
        return super().select(ctx, budget)
