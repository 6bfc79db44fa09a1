"""The MLP of the BADGE / ALFA-Mix / MPTS setups: `Linear(d, 256) → ReLU` is the embedding, dropout, then a linear head."""
from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Module):
    """x: (n, *input_shape) float32 → logits (n, num_classes); embed(x) → (n, hidden)."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: int = 256, dropout: float = 0.3) -> None:
        super().__init__()
        self.in_features = int(math.prod(input_shape))
        self.embedding_dim = hidden
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(self.in_features, hidden), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
