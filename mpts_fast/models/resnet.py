"""ResNet-18 with the CIFAR stem (3×3 stride-1 first convolution, no max-pool), as in the MPTS/BADGE CIFAR and SVHN runs.

The embedding is the 512-d global-average-pooled feature; `dropout` sits before the linear head (see models/mlp.py for
its per-strategy value: BALD's MC dropout needs it, the reference code trains without).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mpts_fast.models.mlp import DEFAULT_DROPOUT, check_dropout


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """x: (n, c, h, w) float32 → logits (n, num_classes); embed(x) → (n, 512)."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, dropout: float = DEFAULT_DROPOUT,
                 width: int = 64) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"input_shape: ResNet18 needs images (c, h, w), got {tuple(input_shape)}")
        c = input_shape[0]
        self.stem = nn.Sequential(nn.Conv2d(c, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers, c_in = [], width
        for i, blocks in enumerate((2, 2, 2, 2)):
            c_out, stride = width * 2**i, 1 if i == 0 else 2
            for b in range(blocks):
                layers.append(BasicBlock(c_in, c_out, stride if b == 0 else 1))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.embedding_dim = c_in
        self.dropout = nn.Dropout(check_dropout(dropout))
        self.classifier = nn.Linear(c_in, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1)

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
