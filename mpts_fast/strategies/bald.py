"""BALD with MC dropout: T stochastic passes (dropout on, BatchNorm in eval); H[mean p] − mean H[p]."""
from typing import ClassVar

from mpts_fast._types import SnapshotScores
from mpts_fast.strategies.base import Needs, ScoreStrategy, SelectionContext
from mpts_fast.strategies.registry import register
from mpts_fast.training.diversity import scores_with_diversity


@register
class BaldStrategy(ScoreStrategy):
    name = "bald"
    description = "mutual information over T MC-dropout passes (default T=10)"
    measures_diversity: ClassVar[bool] = True  # the loop records ctx.extras["diversity"] every round
    score_field = "bald"
    # MC-dropout passes need dropout before the head; the reference code (ALFA-Mix, BADGE) trains every other
    # strategy without it
    needs: ClassVar[Needs] = Needs(dropout=0.3)

    def __init__(self, passes: int = 10) -> None:
        if int(passes) < 1:
            raise ValueError(f"passes: expected a positive number of MC-dropout passes, got {passes!r}")
        self.passes = int(passes)

    def scores(self, ctx: SelectionContext) -> SnapshotScores:
        return scores_with_diversity(ctx, "mc_dropout", passes=self.passes)
