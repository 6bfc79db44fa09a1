"""Array helpers shared by the readers: uint8 images to normalised float32 without extra full-size copies,
train-statistics standardisation of tabular data, seeded subsets."""
from __future__ import annotations

import numpy as np
import torch

CHUNK = 2048  # images per conversion step: bounds the temporaries to a few MB whatever the data set size


def channel_stats(images: np.ndarray, index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std of uint8 images (N, C, H, W) scaled to [0, 1].

    index: the rows to use (default all). Exact: from per-channel histograms of the 256 byte values, so no float
    accumulation error however many pixels there are.
    """
    _check_u8(images)
    rows = np.arange(len(images)) if index is None else index
    channels = images.shape[1]
    counts = np.zeros((channels, 256), dtype=np.int64)
    for start in range(0, len(rows), CHUNK):
        block = images[rows[start:start + CHUNK]]
        for c in range(channels):
            counts[c] += np.bincount(block[:, c].ravel(), minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    n = counts.sum(1)
    if (n == 0).any():
        raise ValueError("images: no pixels to compute channel statistics from")
    mean = counts @ values / n
    var = counts @ (values ** 2) / n - mean ** 2
    return mean, np.sqrt(np.maximum(var, 0.0))


def to_float_images(images: np.ndarray, mean, std, index: np.ndarray | None = None,
                    out: torch.Tensor | None = None) -> torch.Tensor:
    """(N, C, H, W) uint8 (any strides) -> float32 tensor ((x / 255) - mean) / std, rows `index` (default all).

    Each channel goes through a 256-entry lookup table, so the output is the only full-size allocation.
    out: an existing contiguous float32 (len(index), C, H, W) tensor to fill (e.g. a slice of a larger one).
    """
    _check_u8(images)
    rows = np.arange(len(images)) if index is None else np.asarray(index)
    channels = images.shape[1]
    mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), (channels,))
    std = np.broadcast_to(np.asarray(std, dtype=np.float64), (channels,))
    if not (std > 0).all():
        raise ValueError(f"std: expected positive per-channel values, got {std.tolist()}")
    luts = [((np.arange(256) / 255.0 - mean[c]) / std[c]).astype(np.float32) for c in range(channels)]
    shape = (len(rows), *images.shape[1:])
    if out is None:
        out = torch.empty(shape, dtype=torch.float32)
    elif tuple(out.shape) != shape or out.dtype != torch.float32 or not out.is_contiguous():
        raise ValueError(f"out: expected a contiguous float32 tensor of shape {shape}")
    out_np = out.numpy()
    for start in range(0, len(rows), CHUNK):
        block = images[rows[start:start + CHUNK]]
        for c in range(channels):
            out_np[start:start + len(block), c] = luts[c][block[:, c]]
    return out


def standardize(train: np.ndarray, test: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, d) features -> float32 tensors standardised with the training mean/std (constant columns: std 1)."""
    train = np.asarray(train, dtype=np.float64)
    test = np.asarray(test, dtype=np.float64)
    if not (np.isfinite(train).all() and np.isfinite(test).all()):
        raise ValueError("features: expected finite values (impute missing values before standardising)")
    mu = train.mean(0)
    sd = train.std(0)
    sd[sd == 0] = 1.0
    return (torch.from_numpy(((train - mu) / sd).astype(np.float32)),
            torch.from_numpy(((test - mu) / sd).astype(np.float32)))


def seeded_subset(n: int, k: int, seed: int) -> np.ndarray:
    """Sorted indices of a uniform random k-subset of range(n) (all of them when k >= n)."""
    if k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def _check_u8(images: np.ndarray) -> None:
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images: expected uint8 (N, C, H, W), got {images.dtype} {images.shape}")
