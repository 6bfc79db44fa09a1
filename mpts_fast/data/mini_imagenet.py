"""Mini-ImageNet from the standard Ravi & Larochelle 84×84 pickles `mini-imagenet-cache-{train,val,test}.pkl`.

Each pickle is a dict: "image_data" (n, 84, 84, 3) uint8 and "class_dict" {wnid: [row indices]}; together the
three files hold 100 classes × 600 images. The few-shot split is not what active learning needs, so the MPTS
protocol pools all 100 classes: per class (wnids sorted, labels 0..99 in that order) the first 80% of its rows in
`class_dict` order (480 of 600) go to the pool and the rest (120) to the test set, giving a 48,000-image pool and a
12,000-image test set, the same on every machine.

Images come back as float32 (N, 3, 84, 84) normalised with the ImageNet statistics (mean (0.485, 0.456, 0.406),
std (0.229, 0.224, 0.225)), because the default backbone is an ImageNet-pre-trained ViT-Small that expects them.
At float32 the pool is 4.1 GB and the test set 1.0 GB; the uint8 caches (1.3 GB) are read one file at a time.
There is no official download (the pickles circulate on the few-shot papers' drives): place the files by hand.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mpts_fast.data._arrays import to_float_images
from mpts_fast.data._pickle import load_data_pickle
from mpts_fast.data.base import ALDefaults, Availability, Dataset
from mpts_fast.data.download import RemoteFile, ensure, presence

SPLITS = ("train", "val", "test")
FILES = tuple(RemoteFile(f"mini-imagenet-cache-{s}.pkl") for s in SPLITS)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TRAIN_FRACTION = 0.8
# the paper fine-tunes the pre-trained ViT for 1000 epochs per round (Sec. 4.2), not the 100 of the MLP/CNN runs
DEFAULTS = ALDefaults(initial=1000, budget=1000, rounds=10, epochs=1000, lr=1e-3, model="vit_small", pretrained=True,
                      paper=True)


def _directories(root: Path) -> list[Path]:
    return [root / "mini-imagenet", root]


def _read(path: Path) -> tuple[np.ndarray, dict[str, list[int]]]:
    with open(path, "rb") as f:
        cache = load_data_pickle(f, encoding="latin1")
    if not isinstance(cache, dict) or "image_data" not in cache or "class_dict" not in cache:
        raise ValueError(f"mini-imagenet: {path} is not a cache pickle with 'image_data' and 'class_dict'")
    images = np.asarray(cache["image_data"])
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"mini-imagenet: {path} image_data is {images.shape} {images.dtype}; expected "
                         "(n, 84, 84, 3) uint8")
    classes = {str(k): [int(i) for i in v] for k, v in cache["class_dict"].items()}
    for wnid, rows in classes.items():
        if rows and (min(rows) < 0 or max(rows) >= len(images)):
            raise ValueError(f"mini-imagenet: {path} class {wnid} indexes rows outside 0..{len(images) - 1}")
    return images, classes


def load_mini_imagenet(data_dir: Path, download: bool = True, progress: bool = True) -> Dataset:
    """Mini-ImageNet, all 100 classes: pool (48,000, 3, 84, 84), test (12,000, 3, 84, 84)."""
    paths = ensure("mini-imagenet", FILES, _directories(Path(data_dir)), download=download, progress=progress)
    # All three uint8 caches (1.3 GB) are held at once so that the float32 outputs can be allocated exactly once
    # (converting per file and concatenating would hold the float32 data twice).
    caches = [_read(p) for p in paths]
    owner: dict[str, int] = {}
    for i, (_, classes) in enumerate(caches):
        for wnid in classes:
            if wnid in owner:
                raise ValueError(f"mini-imagenet: class {wnid} appears in both {paths[owner[wnid]].name} and "
                                 f"{paths[i].name}")
            owner[wnid] = i
    wnids = sorted(owner)
    parts = []  # (label, cache index, train rows, test rows)
    for label, wnid in enumerate(wnids):
        rows = caches[owner[wnid]][1][wnid]
        n_train = round(TRAIN_FRACTION * len(rows))
        parts.append((label, owner[wnid], np.asarray(rows[:n_train], np.int64), np.asarray(rows[n_train:], np.int64)))
    h, w = caches[0][0].shape[1:3]
    if any(c[0].shape[1:3] != (h, w) for c in caches):
        raise ValueError("mini-imagenet: the cache files hold images of different sizes")
    splits = []
    for which in (2, 3):
        total = sum(len(p[which]) for p in parts)
        x = torch.empty((total, 3, h, w), dtype=torch.float32)
        y = torch.empty(total, dtype=torch.int64)
        pos = 0
        for part in parts:
            rows = part[which]
            nchw = caches[part[1]][0].transpose(0, 3, 1, 2)
            to_float_images(nchw, IMAGENET_MEAN, IMAGENET_STD, rows, out=x[pos:pos + len(rows)])
            y[pos:pos + len(rows)] = part[0]
            pos += len(rows)
        splits.append((x, y))
    del caches
    (x_train, y_train), (x_test, y_test) = splits
    return Dataset("mini-imagenet", x_train, y_train, x_test, y_test, num_classes=len(wnids), defaults=DEFAULTS)


def availability(data_dir: Path) -> Availability:
    return presence(FILES, _directories(Path(data_dir)))
