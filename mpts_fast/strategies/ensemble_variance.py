"""Ensemble variance: M independently initialised members; Σ_c Var_m p_c of their softmax outputs."""
from typing import ClassVar

from mpts_fast._types import SnapshotScores
from mpts_fast.strategies.base import Needs, ScoreStrategy, SelectionContext
from mpts_fast.strategies.registry import register
from mpts_fast.training.diversity import scores_with_diversity


@register
class EnsembleVarianceStrategy(ScoreStrategy):
    name = "ensemble_variance"
    description = "summed class-probability variance across 5 ensemble members"
    measures_diversity = True  # scores_with_diversity records ctx.extras["diversity"]
    score_field = "variance"
    needs: ClassVar[Needs] = Needs(ensemble_size=5)

    def scores(self, ctx: SelectionContext) -> SnapshotScores:
        return scores_with_diversity(ctx, "ensemble")
