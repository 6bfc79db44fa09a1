"""Result types shared by the native ops and the plain-PyTorch reference."""
from typing import NamedTuple

import torch


class SnapshotScores(NamedTuple):
    """Per-item posterior summaries of S snapshots, each of shape (N,).

    entropy: entropy of the mean probability (natural log); higher = more uncertain.
    bald: entropy minus the mean snapshot entropy (mutual information, clamped at 0).
    variance: sum over classes of the across-snapshot sample variance (S - 1 denominator).
    margin: mean probability of the top class minus that of the runner-up; lower = more uncertain.
    least_confidence: 1 - top mean probability.
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
