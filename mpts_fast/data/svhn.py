"""SVHN (cropped digits) from `train_32x32.mat` and `test_32x32.mat` (MATLAB files, read with scipy.io.loadmat).

Each file holds X (32, 32, 3, N) uint8 and y (N, 1) with labels 1..10, where 10 means the digit 0; labels come back
as 0..9. Images come back as float32 (N, 3, 32, 32) normalised with the pool's per-channel mean/std, computed from
the file (the commonly quoted full-training-set values are (0.438, 0.444, 0.473) / (0.198, 0.201, 0.197)).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mpts_fast.data._arrays import channel_stats, seeded_subset, to_float_images
from mpts_fast.data.base import ALDefaults, Availability, Dataset
from mpts_fast.data.download import RemoteFile, ensure, presence

_URL = "http://ufldl.stanford.edu/housenumbers/"
FILES = (RemoteFile("train_32x32.mat", (_URL + "train_32x32.mat",), md5="e26dedcc434d2e4c54c9b2d4a06d8373"),
         RemoteFile("test_32x32.mat", (_URL + "test_32x32.mat",), md5="eb5a983be6a315427106f1b164d9cef3"))
# MPTS Table 1: a 50,000-image pool, here a seeded subset of the 73,257 training images (the rest is unused).
POOL = 50_000
POOL_SEED = 0
DEFAULTS = ALDefaults(initial=100, budget=100, rounds=10, epochs=100, lr=1e-3, model="resnet18", paper=True)


def _directories(root: Path) -> list[Path]:
    return [root / "svhn", root]


def read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, 32, 32) uint8 view and (N,) int64 labels 0..9 (10 -> 0) of one SVHN .mat file."""
    from scipy.io import loadmat

    mat = loadmat(path)
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"svhn: {path} has no X / y variables (found {sorted(k for k in mat if not k.startswith('_'))})")
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise ValueError(f"svhn: {path} has X {x.shape} {x.dtype} and {len(y)} labels; expected (32, 32, 3, N) "
                         "uint8 and N labels")
    labels = y.astype(np.int64)
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise ValueError(f"svhn: {path} has labels outside 1..10")
    labels[labels == 10] = 0
    return x.transpose(3, 2, 0, 1), labels  # X[h, w, c, n] -> [n, c, h, w], no copy


def load_svhn(data_dir: Path, download: bool = True, progress: bool = True) -> Dataset:
    """SVHN: pool (50,000, 3, 32, 32) seeded subset of the training file, test (26,032, 3, 32, 32), 10 classes."""
    train_path, test_path = ensure("svhn", FILES, _directories(Path(data_dir)), download=download, progress=progress)
    x_tr, y_tr = read_mat(train_path)
    keep = seeded_subset(len(y_tr), POOL, POOL_SEED)
    mean, std = channel_stats(x_tr, keep)
    x_train = to_float_images(x_tr, mean, std, keep)
    y_train = torch.from_numpy(y_tr[keep])
    del x_tr
    x_te, y_te = read_mat(test_path)
    return Dataset("svhn", x_train, y_train, to_float_images(x_te, mean, std), torch.from_numpy(y_te),
                   num_classes=10, defaults=DEFAULTS)


def availability(data_dir: Path) -> Availability:
    return presence(FILES, _directories(Path(data_dir)))
