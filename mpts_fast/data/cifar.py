"""CIFAR-10 from the official python pickle batches: `cifar-10-python.tar.gz`, read in place, or its extracted
`cifar-10-batches-py/` directory.

Each batch is a pickled dict with "data" (n, 3072) uint8 (1024 red, 1024 green, 1024 blue values, each a 32×32
row-major image) and "labels" (n ints 0..9); five training batches, one test batch. Images come back as float32
(N, 3, 32, 32) normalised with the training set's per-channel mean/std, computed from the files (the commonly
quoted values for the official files are (0.491, 0.482, 0.447) / (0.247, 0.243, 0.262)).
"""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import torch

from mpts_fast.data._arrays import channel_stats, to_float_images
from mpts_fast.data._pickle import load_data_pickle
from mpts_fast.data.base import ALDefaults, Availability, Dataset
from mpts_fast.data.download import RemoteFile, ensure, presence

ARCHIVE = RemoteFile("cifar-10-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                     md5="c58f30108f718f92721af3b95e74349a", alternatives=("cifar-10-batches-py",))
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
DEFAULTS = ALDefaults(initial=100, budget=100, rounds=10, epochs=100, lr=1e-3, model="resnet18", paper=True)


def _directories(root: Path) -> list[Path]:
    return [root / "cifar10", root]


def _raw_batches(path: Path) -> dict[str, bytes]:
    """The six batch pickles as bytes, from the extracted directory or in one sequential pass over the archive
    (looking members up by name would decompress the 170 MB archive again for each one)."""
    wanted = set(TRAIN_BATCHES + TEST_BATCHES)
    raw: dict[str, bytes] = {}
    if path.is_dir():
        for name in sorted(wanted):
            if not (path / name).exists():
                raise FileNotFoundError(f"cifar10: {path / name} is missing from the extracted batches directory")
            raw[name] = (path / name).read_bytes()
        return raw
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            name = member.name.rsplit("/", 1)[-1]
            if member.isfile() and name in wanted and member.name.startswith("cifar-10-batches-py/"):
                f = tar.extractfile(member)
                raw[name] = f.read() if f is not None else b""
    missing = sorted(wanted - set(raw))
    if missing:
        raise ValueError(f"cifar10: {path} has no cifar-10-batches-py/{', '.join(missing)}")
    return raw


def _stack(raw: dict[str, bytes], names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in names:
        batch = load_data_pickle(io.BytesIO(raw.pop(name)), encoding="latin1")
        if not isinstance(batch, dict):
            raise ValueError(f"cifar10: batch {name} is not a dict")
        data = np.asarray(batch.get("data", batch.get(b"data")))
        y = np.asarray(batch.get("labels", batch.get(b"labels")), dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(y) != len(data):
            raise ValueError(f"cifar10: batch {name} has data {data.shape} {data.dtype} and {len(y)} labels; "
                             "expected (n, 3072) uint8 and n labels")
        if y.size and (y.min() < 0 or y.max() > 9):
            raise ValueError(f"cifar10: batch {name} has labels outside 0..9")
        images.append(data)
        labels.append(y)
    return np.concatenate(images).reshape(-1, 3, 32, 32), np.concatenate(labels)


def load_cifar10(data_dir: Path, download: bool = True, progress: bool = True) -> Dataset:
    """CIFAR-10: pool (50,000, 3, 32, 32), test (10,000, 3, 32, 32), 10 classes."""
    (path,) = ensure("cifar10", (ARCHIVE,), _directories(Path(data_dir)), download=download, progress=progress)
    raw = _raw_batches(path)
    x_tr, y_tr = _stack(raw, TRAIN_BATCHES)
    x_te, y_te = _stack(raw, TEST_BATCHES)
    mean, std = channel_stats(x_tr)
    x_train = to_float_images(x_tr, mean, std)
    del x_tr  # the uint8 copy goes before the test conversion allocates
    return Dataset("cifar10", x_train, torch.from_numpy(y_tr), to_float_images(x_te, mean, std),
                   torch.from_numpy(y_te), num_classes=10, defaults=DEFAULTS)


def availability(data_dir: Path) -> Availability:
    return presence((ARCHIVE,), _directories(Path(data_dir)))
