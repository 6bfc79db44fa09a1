"""OpenML-6 (letter) and OpenML-155 (poker-hand) through the `openml` package (optional, imported lazily).

BADGE's loader rules (the MPTS paper uses them): y label-encoded over all rows (sorted distinct values -> 0..K-1),
rows randomly permuted, the first 90% train / last 10% test, and the pool a random subset of the training part
capped at 50,000, redrawn until every class is in the pool (here at most MAX_DRAWS times, then the last draw is
kept: poker-hand's rarest hands may not fit in 50,000 rows). Our additions: the permutation and draws come from a
fixed seed (SPLIT_SEED) so every run and machine sees the same split; nominal features become their category codes;
missing values are imputed with the pool mean; features are standardised with pool statistics.

The openml cache lives in `$OPENML_CACHE_DIR` when set, else `<data dir>/openml`. With download=False the cache
must already hold the data set (`<cache>/org/openml/www/datasets/<id>/`); openml then reads it from there.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import torch

from mpts_fast.data._arrays import standardize
from mpts_fast.data.base import ALDefaults, Availability, Dataset
from mpts_fast.data.download import DataNotFoundError

TEST_FRACTION = 0.1
POOL_CAP = 50_000
SPLIT_SEED = 0
MAX_DRAWS = 10
DEFAULTS = ALDefaults(initial=100, budget=100, rounds=10, epochs=100, lr=1e-4, model="mlp", paper=True)
NAMES = {6: "openml-6", 155: "openml-155"}


def cache_directory(data_dir: Path) -> Path:
    env = os.environ.get("OPENML_CACHE_DIR")
    return Path(env).expanduser() if env else Path(data_dir) / "openml"


def dataset_cache(cache: Path, did: int) -> Path:
    return cache / "org" / "openml" / "www" / "datasets" / str(did)


def _is_cached(cache: Path, did: int) -> bool:
    d = dataset_cache(cache, did)
    has_data = any(d.glob("*.pq")) or any(d.glob("*.arff")) or any(d.glob("*.pkl.py3"))
    return (d / "description.xml").exists() and has_data


def _openml():
    try:
        return importlib.import_module("openml")
    except ImportError as exc:
        raise ImportError("the OpenML data sets need the optional `openml` package: pip install openml") from exc


def _fetch(did: int, cache: Path, download: bool) -> tuple[object, object]:
    name = NAMES.get(did, f"openml-{did}")
    if not download and not _is_cached(cache, did):
        raise DataNotFoundError(
            f"{name}: OpenML data set {did} is not in the openml cache {cache} (download=False: the network is not "
            f"used). Fetch it once online (mpts-fast datasets --download {name}), or copy an openml cache holding "
            f"{dataset_cache(cache, did)} there, or set OPENML_CACHE_DIR to a cache that has it.")
    openml = _openml()
    cache.mkdir(parents=True, exist_ok=True)
    if hasattr(openml.config, "set_root_cache_directory"):
        openml.config.set_root_cache_directory(str(cache))
    else:  # openml < 0.14
        openml.config.cache_directory = str(cache)
    try:
        ds = openml.datasets.get_dataset(did, download_data=True, download_qualities=False,
                                         download_features_meta_data=False)
        x, y, _, _ = ds.get_data(target=ds.default_target_attribute)
    except (ImportError, ValueError, TypeError):
        raise
    except Exception as exc:  # openml raises its own server/connection errors; the message must say what to do
        raise DataNotFoundError(
            f"{name}: could not get OpenML data set {did} into the cache {cache} ({type(exc).__name__}: {exc}). "
            f"Run once with network access, or copy an openml cache holding {dataset_cache(cache, did)} there "
            "(or set OPENML_CACHE_DIR).") from exc
    return x, y


def _features(x) -> np.ndarray:
    """(n, d) float64 from openml's DataFrame (nominal columns -> category codes, missing -> NaN) or an array."""
    if hasattr(x, "columns"):
        cols = []
        for col in x.columns:
            s = x[col]
            if hasattr(s, "cat"):
                codes = s.cat.codes.to_numpy().astype(np.float64)
                codes[codes < 0] = np.nan
                cols.append(codes)
            else:
                cols.append(s.to_numpy(dtype=np.float64, na_value=np.nan))
        return np.stack(cols, axis=1) if cols else np.empty((len(x), 0))
    return np.asarray(x, dtype=np.float64)


def badge_split(y: np.ndarray, num_classes: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(pool rows, test rows) by BADGE's rules: permute, 90/10, pool ≤ POOL_CAP redrawn until all classes appear."""
    rng = np.random.default_rng(seed)
    n = len(y)
    perm = rng.permutation(n)
    split = int((1.0 - TEST_FRACTION) * n)
    train, test = perm[:split], perm[split:]
    for _ in range(MAX_DRAWS):
        pool = train[rng.permutation(split)[:POOL_CAP]]
        if len(np.unique(y[pool])) == num_classes:
            break
    return pool, test


def load_openml(did: int, data_dir: Path, download: bool = True, progress: bool = True) -> Dataset:
    """An OpenML classification data set by id, split and standardised as described in the module docstring."""
    name = NAMES.get(did, f"openml-{did}")
    x_raw, y_raw = _fetch(did, cache_directory(Path(data_dir)), download)
    x = _features(x_raw)
    y_values = np.asarray(y_raw)
    if y_values.ndim != 1 or len(y_values) != len(x):
        raise ValueError(f"{name}: expected one target per row, got targets {y_values.shape} for {len(x)} rows")
    if len(y_values) == 0:
        raise ValueError(f"{name}: the data set is empty")
    classes, y = np.unique(y_values.astype(str) if y_values.dtype == object else y_values, return_inverse=True)
    pool, test = badge_split(y, len(classes))
    x_pool, x_test = x[pool], x[test]
    fill = np.nanmean(x_pool, axis=0) if x_pool.size else np.zeros(x.shape[1])
    fill = np.where(np.isnan(fill), 0.0, fill)  # a column missing everywhere in the pool
    for part in (x_pool, x_test):
        rows, cols = np.nonzero(np.isnan(part))
        part[rows, cols] = fill[cols]
    x_train_t, x_test_t = standardize(x_pool, x_test)
    return Dataset(name, x_train_t, torch.from_numpy(y[pool].astype(np.int64)), x_test_t,
                   torch.from_numpy(y[test].astype(np.int64)), num_classes=len(classes), defaults=DEFAULTS)


def load_letter(data_dir: Path, download: bool = True, progress: bool = True) -> Dataset:
    """OpenML 6 (letter): 20,000 × 16, 26 classes -> pool 18,000, test 2,000."""
    return load_openml(6, data_dir, download, progress)


def load_poker_hand(data_dir: Path, download: bool = True, progress: bool = True) -> Dataset:
    """OpenML 155 (poker-hand): 10 features, pool capped at 50,000, test the last 10% of the permuted rows."""
    return load_openml(155, data_dir, download, progress)


def availability(did: int, data_dir: Path) -> Availability:
    cache = cache_directory(Path(data_dir))
    if _is_cached(cache, did):
        return Availability("present", dataset_cache(cache, did))
    return Availability("missing", dataset_cache(cache, did), ("openml cache entry (needs `openml`)",))
