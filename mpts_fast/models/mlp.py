"""The MLP of the BADGE / ALFA-Mix / MPTS setups: `Linear(d, 256) → ReLU` is the embedding, dropout, then a linear head.

Dropout before the head (`dropout`, every backbone takes it): the reference code trains without it (its --dropout
defaults to 0); BALD's MC-dropout passes need it. The active-learning loop passes each strategy's value
(a strategy's `needs.dropout`: 0.3 for BALD, 0 for every other strategy); DEFAULT_DROPOUT applies
to a backbone built by hand without the argument, so that MC dropout works on it.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from mpts_fast import _checks


DEFAULT_DROPOUT = 0.3


def check_dropout(p) -> float:
    return _checks.number_option(p, "dropout", at_least=0, below=1, what="a probability in [0, 1)")


class MLP(nn.Module):
    """x: (n, *input_shape) float32 → logits (n, num_classes); embed(x) → (n, hidden)."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: int = 256,
                 dropout: float = DEFAULT_DROPOUT) -> None:
        super().__init__()
        self.in_features = int(math.prod(input_shape))
        self.embedding_dim = hidden
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(self.in_features, hidden), nn.ReLU())
        self.dropout = nn.Dropout(check_dropout(dropout))
        self.classifier = nn.Linear(hidden, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
