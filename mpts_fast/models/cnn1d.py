"""The small 1-D CNN of the MNIST-1D paper (Greydanus & Kobak, "Scaling down deep learning with MNIST-1D", ICML 2024;
`ConvBase` in its repository's notebooks/models.py), with the embedding / dropout / head split every backbone here has.

Three Conv1d layers of `channels` (25) filters, each followed by ReLU: kernel 5 then 3 and 3, all stride 2, padding 1,
so a 40-sample signal becomes 25 × 5 features; their flattening is the embedding (125-d for MNIST-1D), and a linear
head on it gives the logits, as in ConvBase. Dropout before the head (`dropout`) is ours, as in models/mlp.py: the
paper trains without it (the loop passes 0 to every strategy but BALD, whose MC-dropout passes need it).
"""
from __future__ import annotations

import torch
from torch import nn

from mpts_fast import _checks
from mpts_fast.models.mlp import DEFAULT_DROPOUT, check_dropout

# (kernel, stride, padding) of the three convolutions, from ConvBase
LAYERS = ((5, 2, 1), (3, 2, 1), (3, 2, 1))


def conv_output_length(length: int) -> int:
    """Length of a (length,)-sample signal after the three convolutions (0 when it is too short for them)."""
    for kernel, stride, padding in LAYERS:
        if length + 2 * padding < kernel:
            return 0
        length = (length + 2 * padding - kernel) // stride + 1
    return length


class CNN1D(nn.Module):
    """x: (n, length) or (n, channels, length) float32 → logits (n, num_classes); embed(x) → (n, 25 · L3).

    input_shape: (length,) — one channel, like MNIST-1D's (40,) — or (channels, length). L3 is the length after the
    three stride-2 convolutions (5 for length 40); 25 is `channels`, the filters per convolution.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, channels: int = 25,
                 dropout: float = DEFAULT_DROPOUT) -> None:
        super().__init__()
        shape = tuple(int(s) for s in input_shape)
        if len(shape) not in (1, 2) or min(shape) < 1:
            raise ValueError(f"input_shape: cnn1d needs signals (length,) or (channels, length), got {shape}")
        _checks.int_option(channels, "channels")
        self.in_channels, self.length = (1, shape[0]) if len(shape) == 1 else shape
        out_length = conv_output_length(self.length)
        if out_length < 1:
            raise ValueError(f"input_shape: cnn1d needs signals of at least 3 samples, got length {self.length}")
        layers: list[nn.Module] = []
        c_in = self.in_channels
        for kernel, stride, padding in LAYERS:
            layers += [nn.Conv1d(c_in, channels, kernel, stride=stride, padding=padding), nn.ReLU()]
            c_in = channels
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        self.embedding_dim = channels * out_length
        self.dropout = nn.Dropout(check_dropout(dropout))
        self.classifier = nn.Linear(self.embedding_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # (n, length) signals are one channel; reshape, not view: a batch may be a non-contiguous slice
        return self.encoder(x.reshape(x.shape[0], self.in_channels, self.length))

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
