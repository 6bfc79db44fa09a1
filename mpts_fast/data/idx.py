"""MNIST and Fashion-MNIST from their IDX files (`train-images-idx3-ubyte.gz` etc.; gzip or uncompressed).

IDX: two zero bytes, a type code, the number of dimensions, one big-endian uint32 per dimension, then the data in
row-major order. Images come back as float32 (N, 1, 28, 28) normalised with the training pool's mean/std.
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from mpts_fast.data._arrays import channel_stats, seeded_subset, to_float_images
from mpts_fast.data.base import ALDefaults, Availability, Dataset
from mpts_fast.data.download import RemoteFile, ensure, presence

_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
          0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
FASHION_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/")
_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# The published md5 of each .gz (the torchvision / dataset-page values).
MNIST_MD5 = ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
             "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")
FASHION_MD5 = ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
               "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")

# MPTS Table 1: a 50,000-image MNIST pool (a seeded subset of the 60,000 training images; the rest is unused).
MNIST_POOL = 50_000
POOL_SEED = 0
IMAGE_DEFAULTS = ALDefaults(initial=100, budget=100, rounds=10, epochs=100, lr=1e-3, model="mlp", paper=True)
# Fashion-MNIST is not in the paper: the same settings, ours
FASHION_DEFAULTS = ALDefaults(initial=100, budget=100, rounds=10, epochs=100, lr=1e-3, model="mlp")


def _remote(base_urls: tuple[str, ...], md5s: tuple[str, ...]) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(n + ".gz", tuple(u + n + ".gz" for u in base_urls), md5=m, alternatives=(n,))
                 for n, m in zip(_NAMES, md5s))


MNIST_FILES = _remote(MNIST_URLS, MNIST_MD5)
FASHION_FILES = _remote(FASHION_URLS, FASHION_MD5)


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in one IDX file (`.gz` decompressed on the fly); raises ValueError on a malformed file."""
    path = Path(path)
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic {data[:4].hex()})")
    dtype, ndim = _TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    count = int(np.prod(dims, dtype=np.int64))
    if len(data) != header + count * dtype.itemsize:
        raise ValueError(f"{path}: IDX header says {dims} of {dtype} ({header + count * dtype.itemsize} bytes), "
                         f"file has {len(data)} bytes")
    return np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)


def _directories(root: Path, name: str, torchvision_name: str) -> list[Path]:
    # our layout first (downloads go there), then torchvision's, which many users already have
    return [root / name, root / torchvision_name / "raw"]


def _load(name: str, files: tuple[RemoteFile, ...], dirs: list[Path], pool: int | None, download: bool,
          progress: bool) -> Dataset:
    paths = ensure(name, files, dirs, download=download, progress=progress)
    x_tr, y_tr, x_te, y_te = (read_idx(p) for p in paths)
    for images, labels, split in ((x_tr, y_tr, "train"), (x_te, y_te, "test")):
        if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{name}: {split} images {images.shape} {images.dtype} and labels {labels.shape} do not "
                             "form an (N, H, W) uint8 / (N,) pair")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise ValueError(f"{name}: {split} labels outside 0..9")
    keep = seeded_subset(len(x_tr), pool, POOL_SEED) if pool else None
    x_tr, x_te = x_tr[:, None], x_te[:, None]  # (N, 1, 28, 28) views
    mean, std = channel_stats(x_tr, keep)
    y_pool = y_tr if keep is None else y_tr[keep]
    return Dataset(name, to_float_images(x_tr, mean, std, keep), torch.from_numpy(y_pool.astype(np.int64)),
                   to_float_images(x_te, mean, std), torch.from_numpy(y_te.astype(np.int64)), num_classes=10,
                   defaults=IMAGE_DEFAULTS if name == "mnist" else FASHION_DEFAULTS)


def load_mnist(data_dir: Path, download: bool = True, progress: bool = True) -> Dataset:
    """MNIST: pool (50,000, 1, 28, 28) seeded subset of the training images, test (10,000, 1, 28, 28)."""
    return _load("mnist", MNIST_FILES, _directories(Path(data_dir), "mnist", "MNIST"), MNIST_POOL, download, progress)


def load_fashion_mnist(data_dir: Path, download: bool = True, progress: bool = True) -> Dataset:
    """Fashion-MNIST: the full (60,000, 1, 28, 28) training split as the pool, test (10,000, 1, 28, 28)."""
    return _load("fashion-mnist", FASHION_FILES, _directories(Path(data_dir), "fashion-mnist", "FashionMNIST"),
                 None, download, progress)


def mnist_availability(data_dir: Path) -> Availability:
    return presence(MNIST_FILES, _directories(Path(data_dir), "mnist", "MNIST"))


def fashion_availability(data_dir: Path) -> Availability:
    return presence(FASHION_FILES, _directories(Path(data_dir), "fashion-mnist", "FashionMNIST"))
