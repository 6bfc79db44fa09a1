"""Least confidence: top-b of 1 − max p of the final model."""
from mpts_fast.strategies.base import ScoreStrategy
from mpts_fast.strategies.registry import register


@register
class LeastConfidenceStrategy(ScoreStrategy):
    name = "least_confidence"
    description = "1 - max probability of the final model"
    score_field = "least_confidence"
