"""The data-set registry: `load_dataset(name)` returns a :class:`Dataset`; `dataset_names()` lists them.

Readers for downloadable sets live in their own modules (one per format) and register here; bundled sets
(scikit-learn) and the generated sine need no files. `digits` is the embedded default that works offline.
`availability(name, data_dir)` says, without the network, whether a set can be loaded and which files are missing.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path

from mpts_fast.data import bundled, cifar, idx, mini_imagenet, openml_sets, own, regression, svhn
from mpts_fast.data.base import ALDefaults, Availability, Dataset, DatasetInfo, Task
from mpts_fast.data.download import ChecksumError, DataNotFoundError

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
    register(DatasetInfo(_name, _fn, _desc, task=_task, bundled=True, source="scikit-learn" if _name != "sine"
                         else "generated"))

_IDX = tuple(f.name for f in idx.MNIST_FILES)
for _info in [
    DatasetInfo("mnist", idx.load_mnist, "MNIST handwritten digits, 28×28 grey, 10 classes (IDX files)",
                files=_IDX, num_classes=10, sizes=(idx.MNIST_POOL, 10_000), defaults=idx.IMAGE_DEFAULTS,
                source=idx.MNIST_URLS[0], availability=idx.mnist_availability),
    DatasetInfo("fashion-mnist", idx.load_fashion_mnist, "Fashion-MNIST clothing, 28×28 grey, 10 classes (IDX files)",
                files=_IDX, num_classes=10, sizes=(60_000, 10_000), defaults=idx.IMAGE_DEFAULTS,
                source=idx.FASHION_URLS[0], availability=idx.fashion_availability),
    DatasetInfo("cifar10", cifar.load_cifar10, "CIFAR-10, 32×32 colour, 10 classes (python pickle batches)",
                files=(cifar.ARCHIVE.name,), num_classes=10, sizes=(50_000, 10_000), defaults=cifar.DEFAULTS,
                source=cifar.ARCHIVE.urls[0], availability=cifar.availability),
    DatasetInfo("svhn", svhn.load_svhn, "SVHN cropped house-number digits, 32×32 colour, 10 classes (.mat)",
                files=tuple(f.name for f in svhn.FILES), num_classes=10, sizes=(svhn.POOL, 26_032),
                defaults=svhn.DEFAULTS, source="http://ufldl.stanford.edu/housenumbers/",
                availability=svhn.availability),
    DatasetInfo("mini-imagenet", mini_imagenet.load_mini_imagenet,
                "Mini-ImageNet (Ravi & Larochelle pickles), 84×84 colour, all 100 classes",
                files=tuple(f.name for f in mini_imagenet.FILES), num_classes=100, sizes=(48_000, 12_000),
                defaults=mini_imagenet.DEFAULTS, source="Ravi & Larochelle 2017 split (no official download)",
                availability=mini_imagenet.availability),
    DatasetInfo("openml-6", openml_sets.load_letter, "OpenML 6 letter: 20,000×16, 26 classes (openml package)",
                files=("openml cache: data set 6",), num_classes=26, sizes=(18_000, 2_000),
                defaults=openml_sets.DEFAULTS, source="https://www.openml.org/d/6",
                availability=lambda d: openml_sets.availability(6, d)),
    DatasetInfo("openml-155", openml_sets.load_poker_hand, "OpenML 155 poker-hand: 10 features, pool capped at "
                "50,000; classes from its labels (9 present in the MPTS paper) (openml package)",
                files=("openml cache: data set 155",), num_classes=None, sizes=(openml_sets.POOL_CAP, None), defaults=openml_sets.DEFAULTS, source="https://www.openml.org/d/155",
                availability=lambda d: openml_sets.availability(155, d)),
    DatasetInfo("california-housing", regression.load_california_housing,
                "California housing: 20,640×8, median house value (scikit-learn fetcher)", task="regression",
                files=(regression.CALIFORNIA_FILE,), num_classes=0, sizes=(16_512, 4_128),
                defaults=regression.CALIFORNIA_DEFAULTS, source="scikit-learn fetch_california_housing",
                availability=regression.california_availability),
    DatasetInfo("energy-efficiency", regression.load_energy_efficiency,
                "Energy efficiency (UCI ENB2012): 768×8, target Y1 heating load", task="regression",
                files=(regression.ENERGY_FILE.name,), num_classes=0, sizes=(614, 154),
                defaults=regression.ENERGY_DEFAULTS, source=regression.ENERGY_FILE.urls[0],
                availability=regression.energy_availability),
    DatasetInfo("energy-efficiency-y2", regression.load_energy_efficiency_y2,
                "Energy efficiency (UCI ENB2012): 768×8, target Y2 cooling load", task="regression",
                files=(regression.ENERGY_FILE.name,), num_classes=0, sizes=(614, 154),
                defaults=regression.ENERGY_DEFAULTS, source=regression.ENERGY_FILE.urls[0],
                availability=regression.energy_availability),
]:
    register(_info)


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


def _root(data_dir: str | Path | None) -> Path:
    return Path(data_dir).expanduser() if data_dir is not None else default_data_dir()


def load_dataset(name: str, data_dir: str | Path | None = None, *, download: bool = True,
                 progress: bool = True, **options) -> Dataset:
    """Load a registered data set by name, or your own from a path (an .npz file or a directory of .npy files, see
    :mod:`mpts_fast.data.own`).

    data_dir: where downloaded files live (default :func:`default_data_dir`); download: fetch missing files with a
    progress bar and checksum check (False never touches the network). A missing file raises DataNotFoundError (a
    FileNotFoundError) naming the file, where to place it and its URL; a corrupt one raises ChecksumError (a
    ValueError). options: reader-specific keywords, e.g. target="Y2" for energy-efficiency.
    """
    if own.is_own_dataset(name):  # your own .npz / directory of .npy files (mpts_fast/data/own.py)
        if options:
            raise ValueError(f"options: your own data set {name} takes no options, got {', '.join(sorted(options))}")
        return own.load_own_dataset(name)
    info = get_info(name)
    if options:
        accepted = [p for p in inspect.signature(info.loader).parameters if p not in ("data_dir", "download",
                                                                                     "progress")]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ValueError(f"options: {name} does not take {', '.join(unknown)}; it takes "
                             f"{', '.join(accepted) or 'no options'}")
    return info.loader(_root(data_dir), download=download, progress=progress, **options)


def availability(name: str, data_dir: str | Path | None = None) -> Availability:
    """Whether `name` can be loaded from `data_dir` without the network (file names only; checksums are checked on
    load)."""
    if own.is_own_dataset(name):
        path = Path(name).expanduser()
        return Availability("present" if path.exists() else "missing", path.parent, () if path.exists() else (path.name,))
    info = get_info(name)
    if info.bundled or info.availability is None:
        return Availability("bundled")
    return info.availability(_root(data_dir))


__all__ = ["ALDefaults", "Availability", "ChecksumError", "DataNotFoundError", "Dataset", "DatasetInfo", "Task",
           "DEFAULT_DATASET", "REGISTRY", "availability", "register", "default_data_dir", "dataset_names", "get_info",
           "load_dataset"]
