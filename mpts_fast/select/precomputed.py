"""Your model's outputs seen as a trained model, so the registered strategies select from them unchanged.

The selection context's pool is then the column of row numbers (N, 1): a strategy asking the "model" for the
embeddings or probabilities of some pool rows gets those rows of your arrays."""
from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from mpts_fast.training.posterior import TrainedModel

# What each strategy reads from the trained model; strategies not listed need the backbone itself (its head, input
# gradients), which precomputed outputs cannot give.
NEEDS_OUTPUTS: dict[str, set[str]] = {
    "random": set(),
    "entropy": {"probs"}, "margin": {"probs"}, "least_confidence": {"probs"},
    "coreset": {"embeddings"},
    "badge": {"probs", "embeddings"}, "cdal": {"probs"}, "cdal_hellinger": {"probs"},
    "mpts": {"samples"}, "bald": {"samples"}, "ensemble_variance": {"samples"},
}
SAMPLES_NOTE = {"mpts": "your trajectory snapshots", "bald": "your MC-dropout passes",
                "ensemble_variance": "your ensemble members"}


def row_pool(n: int) -> torch.Tensor:
    """(n, 1) int64: row i holds i, the stand-in pool of a precomputed selection."""
    return torch.arange(n, dtype=torch.int64).unsqueeze(1)


class PrecomputedModel(TrainedModel):
    """embeddings: (N, D) or None; probs: (N, C), or (S, N, C) posterior samples (snapshots, MC-dropout passes,
    ensemble members), or None. Rows are addressed through row_pool(N)."""

    def __init__(self, embeddings: torch.Tensor | None, probs: torch.Tensor | None) -> None:
        super().__init__(model=nn.Identity(), snapshots=[], members=[])
        self._emb = embeddings
        self._samples = probs if probs is None or probs.dim() == 3 else probs.unsqueeze(0)
        # the "final model" of a posterior is its mean: what entropy / margin / least confidence rank by
        self._mean = None if self._samples is None else self._samples.double().mean(0).float()

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @staticmethod
    def _rows(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1).long()

    @staticmethod
    def _log(p: torch.Tensor) -> torch.Tensor:
        # softmax(log p) = p; zero probabilities get the smallest normal float (log 0 = -inf would poison the scores)
        return p.clamp_min(torch.finfo(torch.float32).tiny).log()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._log(self._mean[self._rows(x)])

    def probs(self, x: torch.Tensor) -> torch.Tensor:
        return self._mean[self._rows(x)]

    def embeddings(self, x: torch.Tensor) -> torch.Tensor:
        return self._emb[self._rows(x)]

    def posterior_logits(self, x: torch.Tensor, source: str, passes: int = 10, seed: int = 0,
                         block_of: tuple[int, int] | None = None) -> Iterator[torch.Tensor]:
        # block_of is TrainedModel's (a block's MC-dropout masks); the given samples are per row, so it changes nothing
        rows = self._rows(x)
        for sample in self._samples:
            yield self._log(sample[rows])
