"""Entropy sampling: top-b of −Σ p log p of the final model (no snapshots)."""
from mpts_fast.strategies.base import ScoreStrategy
from mpts_fast.strategies.registry import register


@register
class EntropyStrategy(ScoreStrategy):
    name = "entropy"
    description = "predictive entropy of the final model"
    score_field = "entropy"
