"""The study's view of a data set: train and test concatenated, stratified 80/20 trial splits, 5-fold CV
inside the 80%, and [−1, 1] scaling from a split's training part only.

Everything is expressed as index arrays into one shared (N, I) tensor, so many trials can share memory:
a trial's scaling is an affine map (a, c) applied to a batch when it is gathered.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

STRATA_BINS = 5  # regression targets are stratified by quantile bins of y


@dataclass(frozen=True)
class StudyData:
    """x (N, I) float32 raw features; y (N,) int64 classes or float32 targets; strata (N,) int64."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    task: str
    num_classes: int
    strata: np.ndarray

    @property
    def outputs(self) -> int:
        return self.num_classes if self.task == "classification" else 1


def strata_of(y: np.ndarray, task: str, bins: int = STRATA_BINS) -> np.ndarray:
    """Class ids for classification; quantile-bin ids of y for regression (so splits keep y's spread)."""
    if task == "classification":
        return y.astype(np.int64)
    edges = np.quantile(y, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, y, side="right").astype(np.int64)


def from_dataset(ds) -> StudyData:
    """Concatenate a registry :class:`~mpts_fast.data.Dataset`'s train and test splits (features flattened)."""
    x = torch.cat([ds.x_train.reshape(len(ds.x_train), -1), ds.x_test.reshape(len(ds.x_test), -1)]).float()
    y = torch.cat([ds.y_train, ds.y_test])
    if ds.task == "regression":
        if y.dim() == 2:
            if y.shape[1] != 1:
                raise ValueError(f"dataset {ds.name!r}: the study fits one regression target, got y of shape "
                                 f"{tuple(y.shape)}")
            y = y[:, 0]
        y = y.float()
    else:
        y = y.long()
    return StudyData(ds.name, x.contiguous(), y, ds.task, int(ds.num_classes),
                     strata_of(y.numpy(), ds.task))


def load(name: str, data_dir=None) -> StudyData:
    from mpts_fast.data import load_dataset

    return from_dataset(load_dataset(name, data_dir, progress=False))


def trial_split(data: StudyData, seed: int, test_size: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """A stratified (train_idx, test_idx) split; sorted index arrays."""
    from sklearn.model_selection import StratifiedShuffleSplit

    sss = StratifiedShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    tr, te = next(sss.split(np.zeros(len(data.strata)), data.strata))
    return np.sort(tr), np.sort(te)


def cv_folds(data: StudyData, train_idx: np.ndarray, seed: int, k: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """k stratified (fit_idx, val_idx) folds of `train_idx` (global indices)."""
    from sklearn.model_selection import StratifiedKFold

    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(train_idx[a], train_idx[b]) for a, b in skf.split(np.zeros(len(train_idx)), data.strata[train_idx])]


def initial_set(data: StudyData, train_idx: np.ndarray, seed: int) -> np.ndarray:
    """The uncertainty-sampling start: max(10, ⌈n/10⌉) patterns of the training split, stratified."""
    from sklearn.model_selection import train_test_split

    n = len(train_idx)
    n0 = min(n, max(10, math.ceil(n / 10)))
    if n0 == n:
        return train_idx.copy()
    strata = data.strata[train_idx]
    # stratification needs every stratum at least twice and n0 ≥ number of strata
    ok = np.bincount(strata).min(initial=2) >= 2 and n0 >= len(np.unique(strata))
    part, _ = train_test_split(train_idx, train_size=n0, random_state=seed, stratify=strata if ok else None)
    return np.sort(part)


def scaler(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, c) with a·x + c mapping each feature's [min, max] over `x` to [−1, 1]; constant features map to 0."""
    lo, hi = x.min(0).values.double(), x.max(0).values.double()
    span = hi - lo
    a = torch.where(span > 0, 2.0 / span.clamp_min(1e-300), torch.zeros_like(span))
    c = torch.where(span > 0, -1.0 - a * lo, torch.zeros_like(span))
    return a.float(), c.float()
