"""How different the models of a posterior are on the pool: the figures every snapshot / MC-dropout / ensemble strategy
records each round, computed from the logits the strategy streams anyway (no extra pass over the samples)."""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch

from mpts_fast import ops
from mpts_fast._types import SnapshotScores


@dataclass(frozen=True)
class PosteriorDiversity:
    """models: posterior samples S. disagreement: mean over items of the fraction of model pairs whose argmax differs
    (0 when S = 1). mutual_information: mean BALD score (nats). entropy_spearman: Spearman correlation between the
    averaged posterior's entropy and the final model's entropy over the items (None when undefined: < 2 items or a
    constant ranking). items: how many items the figures are over."""

    models: int
    items: int
    disagreement: float
    mutual_information: float
    entropy_spearman: float | None

    def to_record(self) -> dict:
        return asdict(self)


class DiversityAccumulator:
    """Streams (n, C) logits one posterior sample at a time: the SnapshotAccumulator's scores plus argmax vote counts.

    acc = DiversityAccumulator(n, C, device); for logits in samples: acc.update(logits); acc.result(final_logits)
    """

    def __init__(self, n: int, num_classes: int, device: torch.device | str | None = None) -> None:
        self.scores_acc = ops.SnapshotAccumulator(n, num_classes, device=device)
        self.votes = torch.zeros(n, num_classes, dtype=torch.int32, device=device)
        self.n = n

    def update(self, logits: torch.Tensor) -> None:
        """logits: (n, C) of one posterior sample."""
        self.scores_acc.update(logits.float())
        if self.n:
            self.votes.scatter_add_(1, logits.argmax(1, keepdim=True),
                                    torch.ones(self.n, 1, dtype=torch.int32, device=self.votes.device))

    @property
    def count(self) -> int:
        return self.scores_acc.count

    def result(self, final_logits: torch.Tensor) -> tuple[SnapshotScores, PosteriorDiversity]:
        """final_logits: (n, C) of the final (deterministic) model, the reference of the entropy ranking."""
        scores = self.scores_acc.scores()
        s = self.count
        if s > 1 and self.n:
            v = self.votes.double()
            agreeing = (v * (v - 1)).sum(1) / (s * (s - 1))  # fraction of ordered model pairs with the same argmax
            disagreement = float((1 - agreeing).mean())
        else:
            disagreement = 0.0
        mi = float(scores.bald.double().mean()) if self.n else 0.0
        final_entropy = ops.snapshot_uncertainty(final_logits.float().unsqueeze(0)).entropy
        return scores, PosteriorDiversity(models=s, items=self.n, disagreement=disagreement, mutual_information=mi,
                                          entropy_spearman=entropy_spearman(scores.entropy, final_entropy))


def entropy_spearman(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """Spearman rank correlation of two (n,) score vectors (scipy.stats.spearmanr); None when it is undefined."""
    from scipy.stats import spearmanr

    if a.numel() < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant input warns and gives nan: recorded as None
        rho = spearmanr(a.double().cpu().numpy(), b.double().cpu().numpy()).statistic
    return float(rho) if np.isfinite(rho) else None


def scores_with_diversity(ctx, source: str, passes: int = 10) -> SnapshotScores:
    """A strategy's posterior scores over ctx's unlabeled items; the round's diversity figures go to
    ctx.extras["diversity"], which the loop writes into the round's record."""
    scores, diversity = ctx.trained.posterior_summary(ctx.x_unlabeled, source, passes=passes, seed=ctx.seed,
                                                      block_of=ctx.block_of)
    ctx.extras["diversity"] = {"source": source, **diversity.to_record()}
    return scores
