"""Your own data set: an `.npz` file or a directory of `.npy` files with x_train, y_train, x_test, y_test (and
optionally class_names), memory-mapped so that a pool larger than RAM is read in batches.

Memory mapping: `.npy` files and the members of an uncompressed `.npz` (np.savez) are mapped, not read; a compressed
`.npz` (np.savez_compressed) cannot be mapped and is read into memory. float32 features are used in place (zero
copies); other numeric dtypes are converted to float32 in chunks (one float32 copy in memory); uint8 images
(N, C, H, W) or (N, H, W, C) are scaled to [0, 1] and normalised per channel with the training statistics, as the
registered image sets are. Features are otherwise used as given (standardise them yourself).

Labels: class ids 0..K-1, or any other integers (e.g. {3, 7, 9}, {-1, 1}, {0, 5000}) when no class_names are given:
those are read as classes 0..K-1 in increasing order of their values, the values becoming the class names, and said
so (a LabelsRemappedWarning, and a line of :func:`summary`), so that a binary set labelled {0, 5000} trains a 2-way
head, not a 5001-way one.

Every bad input is a ValueError naming the file, the key and what was expected; the AL defaults (initial, budget,
rounds, model) are inferred from the pool size, the classes and the input shape (:func:`infer_defaults`).
"""
from __future__ import annotations

import json
import os
import struct
import warnings
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from mpts_fast import _checks
from mpts_fast.data._arrays import CHUNK, channel_stats, to_float_images
from mpts_fast.data.base import ALDefaults, Dataset

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
NAMES_KEY = "class_names"
_LOCAL_HEADER = struct.Struct("<4s5H3I2H")  # a zip member's local file header (30 bytes)


def is_own_dataset(spec: str | os.PathLike) -> bool:
    """Whether a --dataset value names a file or directory rather than a registered set: it ends in .npz or .npy,
    holds a path separator, or is an existing directory whose name is not a registered set's (a folder called
    `mnist` in the working directory does not hide the registered mnist; write ./mnist for the folder)."""
    s = os.fspath(spec)
    if s.endswith((".npz", ".npy")) or os.sep in s or "/" in s:
        return True
    from mpts_fast.data import REGISTRY  # here: the registry module imports this one

    key = s.strip().lower().replace("_", "-")
    if key in {name.lower().replace("_", "-") for name in REGISTRY}:
        return False
    return Path(s).expanduser().is_dir()


# ------------------------------------------------------------------------------------------------------ reading

def _memmap_npy_at(path: Path, offset: int, what: str) -> np.ndarray:
    """The .npy array starting at byte `offset` of `path` (a .npy file, or a stored member of an .npz), mapped."""
    with open(path, "rb") as f:
        f.seek(offset)
        try:
            version = np.lib.format.read_magic(f)
            shape, fortran, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                     else np.lib.format.read_array_header_2_0(f))
        except ValueError as e:
            raise ValueError(f"{what}: not a valid .npy array ({e})") from None
        data_start = f.tell()
    if dtype.hasobject:
        raise ValueError(f"{what}: holds Python objects (dtype {dtype}); expected a numeric array")
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype=dtype)
    # mode "c" (copy-on-write): nothing is written back, and torch.from_numpy gets a writable array without a copy
    return np.memmap(path, dtype=dtype, mode="c", offset=data_start, shape=shape, order="F" if fortran else "C")


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz: stored (uncompressed) members mapped in place, compressed ones read into memory."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError(f"dataset: {path} is not a valid .npz file (not a zip archive; written by np.savez?)") \
            from None
    arrays: dict[str, np.ndarray] = {}
    with archive:
        loaded = None
        for member in archive.infolist():
            if not member.filename.endswith(".npy"):
                continue
            key = member.filename[: -len(".npy")]
            what = f"{path}[{key!r}]"
            if member.compress_type == zipfile.ZIP_STORED:
                with open(path, "rb") as f:
                    f.seek(member.header_offset)
                    header = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
                name_len, extra_len = header[-2], header[-1]
                arrays[key] = _memmap_npy_at(path, member.header_offset + _LOCAL_HEADER.size + name_len + extra_len,
                                             what)
            else:  # np.savez_compressed: no way to map a deflated member
                if loaded is None:
                    loaded = np.load(path, allow_pickle=False)
                try:
                    arrays[key] = loaded[key]
                except ValueError as e:  # object arrays need pickles, which are never loaded
                    raise ValueError(f"{what}: cannot be read without pickle ({e}); expected a numeric array") from None
    return arrays


def _dir_arrays(path: Path) -> dict[str, np.ndarray]:
    """The .npy files of a directory, mapped, by file stem; class_names may also be class_names.txt / .json."""
    arrays = {}
    for file in sorted(path.glob("*.npy")):
        arrays[file.stem] = _memmap_npy_at(file, 0, str(file))
    for suffix in (".txt", ".json"):
        names_file = path / (NAMES_KEY + suffix)
        if names_file.is_file() and NAMES_KEY not in arrays:
            text = names_file.read_text(encoding="utf-8")
            if suffix == ".txt":
                arrays[NAMES_KEY] = np.array([line.strip() for line in text.splitlines() if line.strip()])
            else:
                try:
                    arrays[NAMES_KEY] = np.array(json.loads(text))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{names_file}: not valid JSON ({e}); expected a list of class names") from None
    return arrays


def open_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an .npz file, a .npy file (key "x") or a directory of .npy files, memory-mapped where the
    format allows (see the module docstring)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"dataset: {path} does not exist; expected an .npz file or a directory of .npy files")
    if path.is_dir():
        return _dir_arrays(path)
    if path.suffix == ".npy":
        return {"x": _memmap_npy_at(path, 0, str(path))}
    return _npz_arrays(path)


# --------------------------------------------------------------------------------------------------- validation

def _numeric(array: np.ndarray, what: str) -> None:
    if array.dtype.kind not in "fiu":
        kind = {"U": "strings", "S": "bytes", "O": "Python objects", "b": "booleans", "c": "complex numbers",
                "M": "dates", "m": "time deltas", "V": "records"}.get(array.dtype.kind, array.dtype.kind)
        raise ValueError(f"{what}: expected a numeric array (integers or floats), got dtype {array.dtype} ({kind})")


def class_ids(y: np.ndarray, what: str) -> np.ndarray:
    """(n,) integer class ids as int64 (integer-valued floats accepted); a ValueError naming `what` otherwise."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D array of class ids, got shape {y.shape}")
    _numeric(y, what)
    y = np.asarray(y)
    if y.dtype.kind == "f":
        bad = ~(np.isfinite(y) & (y == np.round(y)))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{what}: expected integer class ids, got {y[i].item()!r} at row {i}")
    return y.astype(np.int64)


def check_labels(y: np.ndarray, num_classes: int, what: str, classes_from: str) -> None:
    if y.size == 0:
        return
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{what}: label {int(y[i])} at row {i} is out of range; expected class ids "
                         f"0..{num_classes - 1}"
                         f" ({classes_from})")


class LabelsRemappedWarning(UserWarning):
    """Labels that are not 0..K-1 were read as classes 0..K-1 (their values became the class names)."""


def remap_labels(y_train: np.ndarray, y_test: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, ...] | None]:
    """(y_train, y_test, values): labels that are exactly 0..K-1 over both splits come back as they are (values None);
    any other integer labels become 0..K-1 in increasing order of value, `values` holding the original value of each
    class (class k was labelled values[k])."""
    values = np.union1d(y_train, y_test)  # sorted, unique
    if values.size == 0 or (values[0] == 0 and values[-1] == values.size - 1):
        return y_train, y_test, None
    return (np.searchsorted(values, y_train).astype(np.int64), np.searchsorted(values, y_test).astype(np.int64),
            tuple(int(v) for v in values))


def _listed(values: tuple[int, ...], most: int = 6) -> str:
    """'3, 7, 9', or '1, 2, 3, ..., 100 (100 values)' for long lists."""
    if len(values) <= most:
        return ", ".join(map(str, values))
    return f"{', '.join(map(str, values[:3]))}, ..., {values[-1]} ({len(values)} values)"


def remap_note(values: tuple[int, ...]) -> str:
    """The one line that says labels were read as 0..K-1."""
    k = len(values)
    return (f"labels {_listed(values)} are not 0..{k - 1}: read as classes 0..{k - 1} in that order, named by their "
            f"values (give class_names to name them)")


def _class_names(names: np.ndarray, what: str) -> tuple[str, ...]:
    if names.ndim != 1 or names.dtype.kind not in "USO" or names.size == 0:
        raise ValueError(f"{what}: expected a non-empty 1-D array of class names (strings), got dtype {names.dtype} "
                         f"shape {names.shape}")
    out = tuple(str(n) for n in names.tolist())
    if len(set(out)) != len(out):
        dup = sorted({n for n in out if out.count(n) > 1})
        raise ValueError(f"{what}: class names must be unique, {', '.join(map(repr, dup))} repeats")
    return out


def channels_last(x: np.ndarray) -> bool:
    """(N, H, W, C) images: 4-D with 1, 3 or 4 channels last and not first."""
    return x.ndim == 4 and x.shape[3] in (1, 3, 4) and x.shape[1] not in (1, 3, 4)


# -------------------------------------------------------------------------------------------------- conversion

def _float_features(x: np.ndarray) -> torch.Tensor:
    """float32 used in place (memory-mapped); other dtypes converted in chunks. Channels-last images are returned
    as a (N, C, H, W) view."""
    if x.dtype == np.float32 and (x.flags.c_contiguous or x.flags.f_contiguous):
        t = torch.from_numpy(x) if x.flags.c_contiguous else torch.from_numpy(x.T).T
    else:
        t = torch.empty(x.shape, dtype=torch.float32)
        out = t.numpy()
        for start in range(0, len(x), CHUNK):
            out[start:start + CHUNK] = x[start:start + CHUNK]
    return t.permute(0, 3, 1, 2) if channels_last(x) else t


def _images_u8(train: np.ndarray, test: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images → float32 (N, C, H, W), [0, 1] then normalised per channel with the training statistics."""
    if channels_last(train):
        train, test = train.transpose(0, 3, 1, 2), test.transpose(0, 3, 1, 2)
    mean, std = channel_stats(train)
    std = np.where(std > 0, std, 1.0)
    return to_float_images(train, mean, std), to_float_images(test, mean, std)


# ---------------------------------------------------------------------------------------------------- defaults

def infer_defaults(n_pool: int, num_classes: int, input_shape: tuple[int, ...]) -> ALDefaults:
    """The AL settings a run on an own data set uses unless overridden: 10 rounds; initial set and budget of 2 % of
    the pool (at least one item per class where the pool allows, at most 1,000), so that every round fits in the
    pool; ResNet-18 for (C, H, W) images, the MLP otherwise; 100 epochs, Adam 1e-3, batches of 64."""
    rounds = 10 if n_pool >= 20 else max(1, n_pool // 2)
    per = min(max(n_pool // 50, num_classes, 1), 1000, max(1, n_pool // rounds))
    model = "resnet18" if len(input_shape) == 3 else "mlp"
    return ALDefaults(initial=per, budget=per, rounds=rounds, epochs=100, lr=1e-3, batch_size=64, model=model)


# -------------------------------------------------------------------------------------------------------- load

@lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int, size: int) -> Dataset:  # noqa: ARG001  (the key: a changed file reloads)
    return _load(Path(path))


def load_own_dataset(path: str | os.PathLike) -> Dataset:
    """Your own classification data set from an .npz file or a directory of .npy files (module docstring).

    Returns a Dataset named after the file (its absolute path, so results and resumes find it from anywhere) with
    x_train (N, *shape) float32, memory-mapped where possible, y_train (N,) int64, the same for the test split,
    num_classes (len(class_names), else the number of distinct labels: labels that are not 0..K-1 are read as
    0..K-1 with a LabelsRemappedWarning, module docstring) and inferred defaults. Loading the same unchanged file
    again returns the same object (no second validation pass, no second warning)."""
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise FileNotFoundError(f"dataset: {p} does not exist; expected an .npz file or a directory of .npy files "
                                f"holding {', '.join(REQUIRED)}")
    st = p.stat()
    return _load_cached(str(p), st.st_mtime_ns, st.st_size)


def _load(path: Path) -> Dataset:
    if path.is_file() and path.suffix == ".npy":
        raise ValueError(f"dataset: {path} is a single .npy array; a data set is an .npz file or a directory of .npy "
                         f"files holding {', '.join(REQUIRED)}")
    arrays = open_arrays(path)
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        found = ", ".join(sorted(arrays)) or "no arrays"
        raise ValueError(f"dataset: {path} lacks {', '.join(missing)} (found {found}); expected "
                         f"{', '.join(REQUIRED)}, and optionally {NAMES_KEY}")
    where = (lambda k: f"{path}[{k!r}]") if path.is_file() else (lambda k: str(path / f"{k}.npy"))
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    for key, x in (("x_train", x_train), ("x_test", x_test)):
        _numeric(x, where(key))
        if x.ndim < 2:
            raise ValueError(f"{where(key)}: expected (n, features) or (n, *shape) with one row per item, got shape "
                             f"{x.shape}")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"{where('x_test')}: rows of shape {x_test.shape[1:]} do not match x_train's "
                         f"{x_train.shape[1:]}")
    if len(x_train) == 0 or len(x_test) == 0:
        empty = "x_train" if len(x_train) == 0 else "x_test"
        raise ValueError(f"{where(empty)}: holds no rows; expected at least one item")
    y_train, y_test = class_ids(arrays["y_train"], where("y_train")), class_ids(arrays["y_test"], where("y_test"))
    for x_key, x, y_key, y in (("x_train", x_train, "y_train", y_train), ("x_test", x_test, "y_test", y_test)):
        if len(y) != len(x):
            raise ValueError(f"{where(y_key)}: holds {len(y)} labels but {x_key} has {len(x)} rows; expected one "
                             f"label per row")
    names = _class_names(arrays[NAMES_KEY], where(NAMES_KEY)) if NAMES_KEY in arrays else None
    label_values = None
    if names is not None:  # the names fix K: labels must be 0..K-1 (a class may have no label yet)
        num_classes, source = len(names), f"{NAMES_KEY} holds {len(names)} names"
    else:
        y_train, y_test, label_values = remap_labels(y_train, y_test)
        if label_values is not None:
            names = tuple(str(v) for v in label_values)
            warnings.warn(f"{path}: {remap_note(label_values)}", LabelsRemappedWarning, stacklevel=2)
        num_classes, source = int(max(y_train.max(), y_test.max())) + 1, "no class_names given"
    check_labels(y_train, num_classes, where("y_train"), source)
    check_labels(y_test, num_classes, where("y_test"), source)
    if num_classes < 2:
        raise ValueError(f"{where('y_train')}: a classification set needs at least 2 classes, got {num_classes}")
    _checks.finite(x_train, where("x_train"))
    _checks.finite(x_test, where("x_test"))
    if x_train.dtype == np.uint8 and x_train.ndim == 4 and x_test.dtype == np.uint8:
        xt, xs = _images_u8(x_train, x_test)
    else:
        xt, xs = _float_features(x_train), _float_features(x_test)
    return OwnDataset(name=str(path), x_train=xt, y_train=torch.from_numpy(y_train), x_test=xs,
                      y_test=torch.from_numpy(y_test), num_classes=num_classes,
                      defaults=infer_defaults(len(y_train), num_classes, tuple(xt.shape[1:])), class_names=names,
                      label_values=label_values)


@dataclass(frozen=True)
class OwnDataset(Dataset):
    """A Dataset read from your files; class_names when the files hold them (None otherwise). label_values: the
    original label of each class when the labels were not 0..K-1 and were read as 0..K-1 (class_names are then
    these values as text); None when the labels were used as they are."""

    class_names: tuple[str, ...] | None = None
    label_values: tuple[int, ...] | None = None


def label(path: str | os.PathLike) -> str:
    """A short name for a data set path (default output directories): the file or directory name without .npz."""
    p = Path(os.fspath(path).rstrip("/\\"))
    return p.stem if p.suffix in (".npz", ".npy") else p.name


def summary(ds: Dataset) -> str:
    """One line: sizes, classes, input shape and the inferred defaults (printed when a run starts on your data); a
    second when the labels were read as 0..K-1 (remap_note)."""
    d = ds.defaults
    line = (f"{ds.name}: {len(ds.y_train):,} pool / {len(ds.y_test):,} test items, {ds.num_classes} classes, input "
            f"{tuple(ds.input_shape)}; inferred defaults: initial {d.initial}, budget {d.budget}, rounds {d.rounds}, "
            f"model {d.model}, epochs {d.epochs}, lr {d.lr:g} (options override them)")
    values = getattr(ds, "label_values", None)
    return line if values is None else f"{line}\n{ds.name}: {remap_note(values)}"
