"""MPTS (SPEC §1): MMD-regularised training, snapshots along the cyclic-LR trajectory, entropy of their averaged softmax."""
from typing import ClassVar

from mpts_fast._types import SnapshotScores
from mpts_fast.distributed.group import is_distributed
from mpts_fast.distributed.scoring import sharded_score_select
from mpts_fast.strategies.base import Needs, ScoreStrategy, SelectionContext
from mpts_fast.strategies.registry import register
from mpts_fast.training.diversity import scores_with_diversity


@register
class MPTSStrategy(ScoreStrategy):
    name = "mpts"
    description = "entropy of the trajectory-snapshot posterior of an MMD-regularised model (the MPTS method)"
    measures_diversity: ClassVar[bool] = True  # the loop records ctx.extras["diversity"] every round
    score_field = "entropy"
    needs: ClassVar[Needs] = Needs(mmd=True, snapshots=True)

    def scores(self, ctx: SelectionContext) -> SnapshotScores:
        return scores_with_diversity(ctx, "snapshots")

    def select(self, ctx: SelectionContext, budget: int):
        if is_distributed():  # torchrun: each rank streams its block of the pool through the snapshots
            return sharded_score_select(self, ctx, budget)
        return super().select(ctx, budget)
