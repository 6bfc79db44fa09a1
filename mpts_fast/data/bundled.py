"""Data sets that need no download: the ones shipped inside scikit-learn, and the generated sine."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mpts_fast.data.base import ALDefaults, Dataset

# Small tabular sets: the paper's 100/100 protocol would label the whole pool in a round or two, so the
# defaults scale the initial set and budget to the pool (ours, documented in `mpts-fast datasets`).
_SMALL_TABULAR = ALDefaults(initial=20, budget=20, rounds=6, epochs=60, lr=1e-3, model="mlp")


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int, stratify: bool):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=test_fraction, random_state=seed,
                            stratify=y if stratify else None)


def _sklearn_classification(name: str, bunch, defaults: ALDefaults) -> Dataset:
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = _split(x, y, 0.25, seed=0, stratify=True)
    # standardise with training statistics only
    mu, sd = x_tr.mean(0), x_tr.std(0)
    sd[sd == 0] = 1.0
    as_t = lambda a: torch.from_numpy(((a - mu) / sd).astype(np.float32))  # noqa: E731
    return Dataset(name, as_t(x_tr), torch.from_numpy(y_tr), as_t(x_te), torch.from_numpy(y_te),
                   num_classes=int(y.max()) + 1, defaults=defaults)


def load_digits(data_dir: Path | None = None, download: bool = True, progress: bool = True) -> Dataset:
    from sklearn.datasets import load_digits as sk

    return _sklearn_classification("digits", sk(), ALDefaults(initial=20, budget=20, rounds=10, epochs=100, lr=1e-3))


def load_iris(data_dir: Path | None = None, download: bool = True, progress: bool = True) -> Dataset:
    from sklearn.datasets import load_iris as sk

    return _sklearn_classification("iris", sk(), ALDefaults(initial=9, budget=9, rounds=5, epochs=100, lr=1e-2))


def load_wine(data_dir: Path | None = None, download: bool = True, progress: bool = True) -> Dataset:
    from sklearn.datasets import load_wine as sk

    return _sklearn_classification("wine", sk(), ALDefaults(initial=9, budget=9, rounds=5, epochs=100, lr=1e-2))


def load_breast_cancer(data_dir: Path | None = None, download: bool = True, progress: bool = True) -> Dataset:
    from sklearn.datasets import load_breast_cancer as sk

    return _sklearn_classification("breast-cancer", sk(), _SMALL_TABULAR)


def load_sine(data_dir: Path | None = None, download: bool = True, progress: bool = True,
              n: int = 500, noise: float = 0.1, seed: int = 0) -> Dataset:
    """y = sin(2πx) + N(0, noise²), x ~ U[0, 1] (docs/study.md); a fixed 80/20 split."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(n, 1))
    y = np.sin(2 * np.pi * x[:, 0]) + rng.normal(0.0, noise, size=n)
    x_tr, x_te, y_tr, y_te = _split(x, y, 0.2, seed=0, stratify=False)
    f32 = lambda a: torch.from_numpy(a.astype(np.float32))  # noqa: E731
    return Dataset("sine", f32(x_tr), f32(y_tr), f32(x_te), f32(y_te), num_classes=0, task="regression",
                   defaults=ALDefaults(initial=40, budget=20, rounds=5, epochs=100, lr=1e-2))
