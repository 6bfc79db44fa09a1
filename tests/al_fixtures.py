"""Small data sets for the AL-engine tests: fast enough to train many times per test."""
from __future__ import annotations

import torch

from mpts_fast.data import ALDefaults, Dataset, load_dataset


def tiny_digits(n_train: int = 240, n_test: int = 90) -> Dataset:
    """A slice of scikit-learn digits (all 10 classes present), with short default AL settings."""
    d = load_dataset("digits")
    return Dataset("digits", d.x_train[:n_train].clone(), d.y_train[:n_train].clone(), d.x_test[:n_test].clone(),
                   d.y_test[:n_test].clone(), num_classes=10,
                   defaults=ALDefaults(initial=20, budget=10, rounds=3, epochs=4, lr=1e-3))


def blobs(n: int = 60, d: int = 5, classes: int = 3, seed: int = 0) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, d, generator=g) * 3
    y = torch.arange(n) % classes
    x = centres[y] + torch.randn(n, d, generator=g)
    return Dataset("blobs", x[: n * 2 // 3], y[: n * 2 // 3], x[n * 2 // 3:], y[n * 2 // 3:], num_classes=classes,
                   defaults=ALDefaults(initial=6, budget=4, rounds=3, epochs=3, lr=1e-2))


def interrupt_after_rounds(monkeypatch, n: int) -> None:
    """Ctrl-C once `n` rounds have been trained (raised from the trainer, as a real KeyboardInterrupt would be)."""
    from mpts_fast.training import Trainer

    real_fit, calls = Trainer.fit_many, []

    def fit_many(self, x_pool, labeled, *a, **k):  # one call trains a round of each seed at that round
        if len(calls) >= n:
            raise KeyboardInterrupt
        calls.extend([1] * len(labeled))
        return real_fit(self, x_pool, labeled, *a, **k)

    monkeypatch.setattr(Trainer, "fit_many", fit_many)
