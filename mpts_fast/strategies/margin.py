"""Margin sampling: the smallest gap between the top two probabilities of the final model."""
from mpts_fast.strategies.base import ScoreStrategy
from mpts_fast.strategies.registry import register


@register
class MarginStrategy(ScoreStrategy):
    name = "margin"
    description = "smallest top-1 minus top-2 probability of the final model"
    score_field = "margin"
    largest = False
