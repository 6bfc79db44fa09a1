"""MNIST-1D (Greydanus & Kobak, "Scaling down deep learning with MNIST-1D", ICML 2024), generated offline.

The optional `mnist1d` package (Apache-2.0; `pip install mnist1d` or `pip install mpts-fast[mnist1d]`) turns ten 1-D
digit templates into 40-sample signals (random padding, scaling, translation, correlated and i.i.d. noise, shear); no
file is downloaded. Its `make_dataset` is deterministic given the seed, so the arrays are generated once and cached in
the data directory (`<data dir>/mnist1d/<entry>.npz`); later loads read the cache and need neither the package nor the
generation time. A cached set loads even where `mnist1d` is not installed.

Two entries, both with the package's default generator settings (GENERATOR_ARGS, seed 42):
- `mnist1d`: the published split, 4,000 train / 1,000 test (5,000 samples, train_split 0.8). These are the arrays of
  the paper's frozen `mnist1d_data.pkl` (equal in float32; labels identical).
- `mnist1d-large`: 24,000 samples from the same generator, split 20,000 pool / 4,000 test: a larger pool to select
  from with the same difficulty.
The signals are as the package returns them (standardised over the whole generated set by the generator itself);
x: (n, 40) float32, y: (n,) int64 in 0..9.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import random
import tempfile
import types
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mpts_fast.data.base import ALDefaults, Availability, Dataset
from mpts_fast.data.download import DataNotFoundError

INSTALL_HINT = "pip install mnist1d (or pip install mpts-fast[mnist1d])"
CACHE_SUBDIR = "mnist1d"
NUM_CLASSES = 10
LENGTH = 40
SEED = 42

# get_dataset_args() of mnist1d 0.0.2 without its sample count, split and download URL: pinned here so that a cache
# file means one thing whatever package version generated it (tests/test_mnist1d.py checks them against the package).
GENERATOR_ARGS = {
    "template_len": 12, "padding": [36, 60], "scale_coeff": 0.4, "max_translation": 48, "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2, "shear_scale": 0.75, "shuffle_seq": False, "final_seq_length": LENGTH,
}

# Our active-learning defaults (no MPTS Table 1 row exists for MNIST-1D); docs/datasets.md gives the reasons:
# - cnn1d, Adam lr 1e-2, batch 100: the MNIST-1D paper's CNN and its training setup (its CNN reaches ~94% test accuracy
#   with all 4,000 labels);
# - 100 initial + 100 per round, 10 evaluated rounds (100 → 1,000 labels), MPTS Table 1's protocol for its image
#   sets: MNIST-1D is hard enough that accuracy still climbs steeply there, where strategies can differ;
# - 100 epochs (from scratch each round): the CNN fits every labeled set of the run (training accuracy 1.0).
DEFAULTS = ALDefaults(initial=100, budget=100, rounds=10, epochs=100, lr=1e-2, batch_size=100, model="cnn1d")


@dataclass(frozen=True)
class Variant:
    """One registered entry: `train` + `test` samples from the generator with `seed`, split at `train`."""

    name: str
    train: int
    test: int
    seed: int = SEED

    @property
    def cache_file(self) -> str:
        return f"{self.name}.npz"


PUBLISHED = Variant("mnist1d", 4_000, 1_000)
LARGE = Variant("mnist1d-large", 20_000, 4_000)


def cache_directory(data_dir: Path) -> Path:
    return Path(data_dir) / CACHE_SUBDIR


def _missing_message(variant: Variant, cache: Path) -> str:
    return (f"{variant.name}: generating MNIST-1D needs the optional package mnist1d, which is not installed, and no "
            f"cached copy is at {cache}. Install it: {INSTALL_HINT}. (It generates the data locally; nothing is "
            f"downloaded.)")


def _make_dataset():
    """The package's generator function; ImportError when the package is absent."""
    return importlib.import_module("mnist1d.data").make_dataset


def generate(variant: Variant) -> dict[str, np.ndarray]:
    """The variant's arrays from mnist1d's make_dataset: x_train (train, 40) float32, y_train (train,) int64, x_test,
    y_test. Raises ImportError when the package is absent.

    make_dataset reseeds Python's and NumPy's global generators; their states are restored afterwards, so loading
    the data never changes what other code draws from them.
    """
    total = variant.train + variant.test
    if variant.train < 1 or variant.test < 1 or total % NUM_CLASSES:
        raise ValueError(f"{variant.name}: train and test must be positive and sum to a multiple of {NUM_CLASSES} "
                         f"(the generator makes the same number of samples per class), got {variant.train} + "
                         f"{variant.test}")
    make_dataset = _make_dataset()
    # int(total · train_split) must be exactly `train`; half a sample of slack absorbs the float rounding
    # (0.8 exactly for the published 4,000 / 1,000, as in the package's defaults)
    split = 0.8 if (variant.train, variant.test) == (4_000, 1_000) else (variant.train + 0.5) / total
    args = types.SimpleNamespace(**GENERATOR_ARGS, num_samples=total, train_split=split, seed=variant.seed)
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        raw = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    out = {"x_train": np.asarray(raw["x"], dtype=np.float32), "y_train": np.asarray(raw["y"], dtype=np.int64),
           "x_test": np.asarray(raw["x_test"], dtype=np.float32), "y_test": np.asarray(raw["y_test"], dtype=np.int64)}
    problem = _check_arrays(out, variant)
    if problem:
        raise RuntimeError(f"{variant.name}: the mnist1d package returned unexpected arrays ({problem})")
    return out


def _check_arrays(arrays: dict[str, np.ndarray], variant: Variant) -> str:
    """'' when the arrays have the variant's shapes, dtypes and labels; else what is wrong."""
    for part, n in (("train", variant.train), ("test", variant.test)):
        x, y = arrays.get(f"x_{part}"), arrays.get(f"y_{part}")
        if x is None or y is None:
            return f"no x_{part} / y_{part}"
        if x.shape != (n, LENGTH) or x.dtype != np.float32:
            return f"x_{part} is {x.dtype} {x.shape}, expected float32 ({n}, {LENGTH})"
        if y.shape != (n,) or y.dtype != np.int64:
            return f"y_{part} is {y.dtype} {y.shape}, expected int64 ({n},)"
        if y.min() < 0 or y.max() >= NUM_CLASSES:
            return f"y_{part} holds labels outside 0..{NUM_CLASSES - 1}"
        if not np.isfinite(x).all():
            return f"x_{part} holds non-finite values"
    return ""


def _metadata(variant: Variant) -> str:
    return json.dumps({"name": variant.name, "train": variant.train, "test": variant.test, "seed": variant.seed,
                       "generator_args": GENERATOR_ARGS}, sort_keys=True)


def _read_cache(path: Path, variant: Variant) -> dict[str, np.ndarray] | str:
    """The cached arrays, or why the file cannot be used."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # truncated or not an .npz
        return f"unreadable ({type(exc).__name__}: {exc})"
    meta = arrays.pop("metadata", None)
    if meta is None or str(meta) != _metadata(variant):
        return "written for other generator settings"
    return _check_arrays(arrays, variant) or arrays


def _write_cache(path: Path, arrays: dict[str, np.ndarray], variant: Variant) -> None:
    """Atomic: a temporary file renamed into place, so an interrupted write never leaves a file that looks complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; a data cache is usually shared
        with os.fdopen(fd, "wb") as f:
            np.savez(f, metadata=np.array(_metadata(variant)), **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_arrays(variant: Variant, data_dir: Path) -> dict[str, np.ndarray]:
    """The variant's arrays from the cache, generating (and caching) them when absent or unusable."""
    path = cache_directory(data_dir) / variant.cache_file
    problem = ""
    if path.exists():
        cached = _read_cache(path, variant)
        if isinstance(cached, dict):
            return cached
        problem = cached
    try:
        arrays = generate(variant)
    except ImportError:
        if problem:
            raise DataNotFoundError(f"{variant.name}: the cached copy {path} is {problem}, and regenerating it needs "
                                    f"the optional package mnist1d: {INSTALL_HINT}") from None
        raise DataNotFoundError(_missing_message(variant, path)) from None
    if problem:
        warnings.warn(f"{variant.name}: the cached copy {path} was {problem}; regenerated it", stacklevel=3)
    try:
        _write_cache(path, arrays, variant)
    except OSError as exc:  # a read-only data directory: the run goes on with the generated arrays
        warnings.warn(f"{variant.name}: could not cache the generated arrays in {path} ({exc}); they will be "
                      f"generated again next time", stacklevel=3)
    return arrays


def _dataset(variant: Variant, data_dir: Path) -> Dataset:
    a = load_arrays(variant, Path(data_dir))
    return Dataset(variant.name, torch.from_numpy(a["x_train"]), torch.from_numpy(a["y_train"]),
                   torch.from_numpy(a["x_test"]), torch.from_numpy(a["y_test"]), num_classes=NUM_CLASSES,
                   defaults=DEFAULTS)


def load_mnist1d(data_dir: Path, download: bool = True, progress: bool = True) -> Dataset:
    """MNIST-1D's published split: 4,000 train / 1,000 test signals of 40 samples, 10 classes (generated, cached).

    download is accepted like every reader's and has no effect: nothing is downloaded.
    """
    return _dataset(PUBLISHED, data_dir)


def load_mnist1d_large(data_dir: Path, download: bool = True, progress: bool = True) -> Dataset:
    """MNIST-1D from the same generator with more samples: 20,000 pool / 4,000 test (generated, cached)."""
    return _dataset(LARGE, data_dir)


def package_available() -> bool:
    return importlib.util.find_spec("mnist1d") is not None


def availability(variant: Variant, data_dir: Path) -> Availability:
    """present: cached in the data directory; generated: not cached but the generator is installed (made on first load);
    missing: neither (the one thing to add is the mnist1d package)."""
    directory = cache_directory(Path(data_dir))
    if (directory / variant.cache_file).exists():
        return Availability("present", directory)
    if package_available():
        return Availability("generated")
    return Availability("missing", directory, (f"package mnist1d to generate it: {INSTALL_HINT}",))
