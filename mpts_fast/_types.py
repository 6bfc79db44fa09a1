"""Result types shared by the native ops and the plain-PyTorch reference."""
from typing import NamedTuple

import torch

from mpts_fast import _checks

# Which way each score runs: True where a higher value means a more uncertain item.
HIGHER_IS_MORE_UNCERTAIN = {"entropy": True, "bald": True, "variance": True, "margin": False, "least_confidence": True}


class SnapshotScores(NamedTuple):
    """Per-item posterior summaries of S snapshots, each of shape (N,).

    entropy: entropy of the mean probability (natural log); higher = more uncertain.
    bald: entropy minus the mean snapshot entropy (mutual information, clamped at 0); higher = more uncertain.
    variance: sum over classes of the across-snapshot sample variance (S - 1 denominator); higher = more uncertain.
    margin: mean probability of the top class minus that of the runner-up; LOWER = more uncertain (the
        other way from the rest: rank by uncertainty("margin") or most_uncertain(k, "margin"), not margin.topk).
    least_confidence: 1 - top mean probability; higher = more uncertain.
    """

    entropy: torch.Tensor
    bald: torch.Tensor
    variance: torch.Tensor
    margin: torch.Tensor
    least_confidence: torch.Tensor

    @classmethod
    def from_stacked(cls, scores: torch.Tensor) -> "SnapshotScores":
        """scores: (5, N) in field order."""
        return cls(*scores.unbind(0))

    def uncertainty(self, field: str) -> torch.Tensor:
        """`field` as a score where higher = more uncertain, whatever the field: entropy, bald,
        variance and least_confidence as they are, margin negated (-margin; exact, so the order of
        near-equal margins is kept). (N,)."""
        values = getattr(self, _field(field))
        return values if HIGHER_IS_MORE_UNCERTAIN[field] else -values

    def most_uncertain(self, k: int, field: str = "entropy") -> torch.Tensor:
        """Indices (k,) int64 of the k most uncertain items by `field`, most uncertain first (for
        margin: the smallest margins); ties go to the lowest index. On the scores' device."""
        values = getattr(self, _field(field))
        k = _checks.integer(k, "k", minimum=0, what="a non-negative number of items")
        if k > values.shape[0]:
            raise ValueError(f"k: expected at most the {values.shape[0]} scored items, got {k}")
        order = torch.sort(values, descending=HIGHER_IS_MORE_UNCERTAIN[field], stable=True).indices
        return order[:k]


def _field(field: str) -> str:
    _checks.choice(field, "field", tuple(HIGHER_IS_MORE_UNCERTAIN))
    return field
