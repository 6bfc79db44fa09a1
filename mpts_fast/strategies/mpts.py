"""MPTS (docs/mpts.md): MMD-regularised training, snapshots along the cyclic-LR trajectory, entropy of their mean
softmax."""
from typing import ClassVar

from mpts_fast._types import SnapshotScores
from mpts_fast.strategies.base import Needs, ScoreStrategy, SelectionContext
from mpts_fast.strategies.registry import register
from mpts_fast.training.diversity import scores_with_diversity


@register
class MPTSStrategy(ScoreStrategy):
    name = "mpts"
    description = "entropy of the trajectory-snapshot posterior of an MMD-regularised model (the MPTS method)"
    measures_diversity = True  # scores_with_diversity records ctx.extras["diversity"]
    score_field = "entropy"
    needs: ClassVar[Needs] = Needs(mmd=True, snapshots=True)

    def scores(self, ctx: SelectionContext) -> SnapshotScores:
        return scores_with_diversity(ctx, "snapshots")
