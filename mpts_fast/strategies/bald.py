"""BALD with MC dropout: T stochastic passes (dropout on, BatchNorm in eval); H[mean p] − mean H[p]."""
from typing import ClassVar

from mpts_fast._types import SnapshotScores
from mpts_fast.strategies.base import Needs, ScoreStrategy, SelectionContext
from mpts_fast.strategies.options import StrategyOption
from mpts_fast.strategies.registry import register
from mpts_fast.training.diversity import scores_with_diversity

PASSES = StrategyOption("--mc-passes", "passes", int, default=10, minimum=1, help="MC-dropout passes.")


@register
class BaldStrategy(ScoreStrategy):
    name = "bald"
    description = "mutual information over T MC-dropout passes (default T=10)"
    measures_diversity = True  # scores_with_diversity records ctx.extras["diversity"]
    score_field = "bald"
    # MC-dropout passes need dropout before the head; the reference code (ALFA-Mix, BADGE) trains every other
    # strategy without it
    needs: ClassVar[Needs] = Needs(dropout=0.3)
    cli_options = (PASSES,)

    def __init__(self, passes: int = 10) -> None:
        self.passes = PASSES.validate(passes)

    def scores(self, ctx: SelectionContext) -> SnapshotScores:
        return scores_with_diversity(ctx, "mc_dropout", passes=self.passes)
