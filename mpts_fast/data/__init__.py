"""The data-set registry: `load_dataset(name)` returns a :class:`Dataset`; `dataset_names()` lists them.

Readers for downloadable sets live in their own modules and register here; bundled sets (scikit-learn) and the
generated sine need no files. `digits` is the embedded default that works offline.
"""
from __future__ import annotations

import os
from pathlib import Path

from mpts_fast.data import bundled
from mpts_fast.data.base import ALDefaults, Dataset, DatasetInfo, Task

DEFAULT_DATASET = "digits"

REGISTRY: dict[str, DatasetInfo] = {}


def register(info: DatasetInfo) -> DatasetInfo:
    REGISTRY[info.name] = info
    return info


for _name, _fn, _task, _desc in [
    ("digits", bundled.load_digits, "classification", "8×8 handwritten digits, 1,797 images, 10 classes (scikit-learn)"),
    ("iris", bundled.load_iris, "classification", "Iris, 150×4, 3 classes (scikit-learn)"),
    ("wine", bundled.load_wine, "classification", "Wine, 178×13, 3 classes (scikit-learn)"),
    ("breast-cancer", bundled.load_breast_cancer, "classification", "Breast cancer Wisconsin, 569×30, 2 classes (scikit-learn)"),
    ("sine", bundled.load_sine, "regression", "y = sin(2πx) + N(0, 0.1²), 500 points (generated)"),
]:
    register(DatasetInfo(_name, _fn, _desc, task=_task, bundled=True))


def default_data_dir() -> Path:
    """`$MPTS_FAST_DATA` if set, else the user cache (`$XDG_CACHE_HOME/mpts-fast/data`)."""
    env = os.environ.get("MPTS_FAST_DATA")
    if env:
        return Path(env).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "mpts-fast" / "data"


def dataset_names() -> list[str]:
    return sorted(REGISTRY)


def get_info(name: str) -> DatasetInfo:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"dataset: unknown data set {name!r}; expected one of {', '.join(dataset_names())}") from None


def load_dataset(name: str, data_dir: str | Path | None = None, *, download: bool = True,
                 progress: bool = True) -> Dataset:
    """Load a registered data set by name.

    data_dir: where downloaded files live (default :func:`default_data_dir`); download: fetch missing files
    (offline, a missing file raises FileNotFoundError naming the file and where to place it).
    """
    info = get_info(name)
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    return info.loader(root, download=download, progress=progress)


__all__ = ["ALDefaults", "Dataset", "DatasetInfo", "Task", "DEFAULT_DATASET", "REGISTRY", "register",
           "default_data_dir", "dataset_names", "get_info", "load_dataset"]
