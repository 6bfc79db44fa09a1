"""Reading and checking the inputs of an annotation round: the pool, your model's embeddings / probabilities, and the
labels gathered so far (CSV or JSON of pool index → label). Every problem is an InputError naming the argument, the
file and what was expected."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from mpts_fast import _checks
from mpts_fast.data import own
from mpts_fast.data._arrays import channel_stats, to_float_images

POOL_KEYS = ("x", "x_pool", "pool", "x_train")


class InputError(ValueError):
    """A bad input of select_next; `field` names the argument (the CLI maps it to its option)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def read_array(value, field: str, keys: tuple[str, ...] = ()) -> tuple[np.ndarray | torch.Tensor, str]:
    """An array argument: an array / tensor as given, or a .npy / .npz file memory-mapped (an .npz holding one array,
    or one of `keys`). Returns (array, a description for messages and settings)."""
    if not _is_path(value):
        if isinstance(value, torch.Tensor):
            return value.detach().cpu(), f"a tensor {tuple(value.shape)}"
        if isinstance(value, np.ndarray):
            return value, f"an array {value.shape}"
        raise InputError(field, f"expected an array, a tensor or a path to a .npy / .npz file, got "
                                f"{type(value).__name__}")
    path = Path(value).expanduser()
    if not path.is_file():
        raise InputError(field, f"{path} does not exist or is not a file; expected a .npy or .npz file")
    try:
        arrays = own.open_arrays(path)
    except ValueError as e:
        raise InputError(field, str(e).removeprefix("dataset: ")) from None
    if len(arrays) == 1:
        return next(iter(arrays.values())), str(path)
    for key in keys:
        if key in arrays:
            return arrays[key], f"{path}[{key!r}]"
    raise InputError(field, f"{path} holds {', '.join(sorted(arrays)) or 'no arrays'}; expected one array"
                            + (f" or one named {', '.join(keys)}" if keys else ""))


def _numeric(array, field: str, where: str) -> None:
    kind = array.dtype.kind if isinstance(array, np.ndarray) else ("f" if array.is_floating_point() else "i")
    if isinstance(array, torch.Tensor) and array.dtype == torch.bool:
        kind = "b"
    if kind not in "fiu":
        raise InputError(field, f"{where}: expected a numeric array, got dtype {array.dtype}")


def _finite(array, field: str, where: str) -> None:
    try:
        _checks.finite(array, where)
    except ValueError as e:
        raise InputError(field, str(e)) from None


def pool_tensor(value, field: str = "pool") -> tuple[torch.Tensor, str]:
    """The pool as float32 (N, *shape): float32 files memory-mapped in place, other numbers converted in chunks,
    uint8 images (N, C, H, W) or (N, H, W, C) scaled and normalised per channel with the pool's statistics."""
    array, where = read_array(value, field, POOL_KEYS)
    _numeric(array, field, where)
    if array.ndim < 2 or array.shape[0] == 0:
        raise InputError(field, f"{where}: expected one row per item, (N, features) or (N, *shape) with N >= 1, got "
                                f"shape {tuple(array.shape)}")
    if isinstance(array, torch.Tensor):
        _finite(array, field, where)
        return array.float(), where
    if array.dtype == np.uint8 and array.ndim == 4:
        images = array.transpose(0, 3, 1, 2) if own.channels_last(array) else array
        mean, std = channel_stats(images)
        return to_float_images(images, mean, np.where(std > 0, std, 1.0)), where
    _finite(array, field, where)
    return own._float_features(array), where


def matrix(value, field: str, dims: tuple[int, ...], keys: tuple[str, ...] = ()) -> tuple[torch.Tensor, str]:
    """A float32 tensor of one of the ranks in `dims` (embeddings (N, D); probabilities (N, C) or (S, N, C))."""
    array, where = read_array(value, field, keys)
    _numeric(array, field, where)
    if array.ndim not in dims:
        shapes = " or ".join({2: "(N, D)" if field == "embeddings" else "(N, C)", 3: "(S, N, C)"}[d] for d in dims)
        raise InputError(field, f"{where}: expected shape {shapes}, got {tuple(array.shape)}")
    _finite(array, field, where)
    t = array.float() if isinstance(array, torch.Tensor) else torch.from_numpy(np.asarray(array, dtype=np.float32))
    return t, where


def check_probs(probs: torch.Tensor, where: str, tol: float = 1e-3) -> None:
    """Probabilities: non-negative, each row summing to 1 (within `tol`): logits passed by mistake are caught."""
    flat = probs.reshape(-1, probs.shape[-1])
    if probs.shape[-1] < 2:
        raise InputError("probs", f"{where}: expected at least 2 classes (last dimension), got shape "
                                  f"{tuple(probs.shape)}")
    negative = (flat < 0).any(1)
    off = (flat.double().sum(1) - 1).abs() > tol
    bad = negative | off
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        row = "holds a negative value" if bool(negative[i]) else f"sums to {float(flat[i].double().sum()):.6g}"
        raise InputError("probs", f"{where}: row {i % probs.shape[-2]} {row}; expected probabilities (softmax outputs, "
                                  f"non-negative, rows summing to 1), not logits")


# ------------------------------------------------------------------------------------------------------- labels

def _parse_json(path: Path, text: str, argument: str) -> Any:
    """json.loads of a file's text; a syntax error is an InputError naming the argument and the file."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(argument, f"{path} is not valid JSON ({e})") from None


def _read_label_file(path: Path) -> list[tuple[Any, Any, str]]:
    """(index, label, where) triples from a CSV (index,label columns; a header row is optional) or a JSON object
    {index: label}, a list of [index, label] pairs or a list of {"index": ..., "label": ...}."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        data = _parse_json(path, text, "labeled")
        if isinstance(data, dict):
            return [(k, v, f"{path} key {k!r}") for k, v in data.items()]
        if isinstance(data, list):
            out = []
            for i, item in enumerate(data):
                if isinstance(item, dict) and {"index", "label"} <= set(item):
                    out.append((item["index"], item["label"], f"{path} item {i}"))
                elif isinstance(item, (list, tuple)) and len(item) == 2:
                    out.append((item[0], item[1], f"{path} item {i}"))
                else:
                    raise InputError("labeled", f"{path} item {i} is {item!r}; expected [index, label] or "
                                                f"{{\"index\": ..., \"label\": ...}}")
            return out
        raise InputError("labeled", f"{path}: expected a JSON object {{index: label}} or a list of pairs, got "
                                    f"{type(data).__name__}")
    if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
        raise InputError("labeled", f"{path}: expected a .csv or .json file of pool index → label")
    rows = list(csv.reader(text.splitlines(), delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    rows = [(r, n + 1) for n, r in enumerate(rows) if any(cell.strip() for cell in r)]
    if rows and not rows[0][0][0].strip().lstrip("-").isdigit():
        header = [c.strip().lower() for c in rows[0][0]]
        rows = rows[1:]
        cols = (header.index("index") if "index" in header else 0, header.index("label") if "label" in header else 1)
    else:
        cols = (0, 1)
    out = []
    for r, line in rows:
        if len(r) <= max(cols):
            raise InputError("labeled", f"{path} line {line}: expected index,label, got {','.join(r)!r}")
        out.append((r[cols[0]].strip(), r[cols[1]].strip(), f"{path} line {line}"))
    return out


def _as_int(value, what: str, where: str) -> int:
    if isinstance(value, bool):
        raise InputError("labeled", f"{where}: {what} {value!r} is not an integer")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise InputError("labeled", f"{where}: {what} {value!r} is not an integer")


def read_labels(labeled, n_pool: int, num_classes: int | None,
                class_names: tuple[str, ...] | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The labels so far → ((n_L,) pool indices ascending, (n_L,) class ids, description).

    labeled: a path to a CSV / JSON file, a mapping {index: label}, or a pair (indices, labels). Labels are class ids,
    or class names when `class_names` is given. An index outside the pool, a repeated index, or a label outside
    0..num_classes-1 is an InputError naming the line or key."""
    if _is_path(labeled):
        path = Path(labeled).expanduser()
        if not path.is_file():
            raise InputError("labeled", f"{path} does not exist; expected a CSV or JSON file of pool index → label")
        triples, source = _read_label_file(path), str(path)
    elif isinstance(labeled, Mapping):
        triples, source = [(k, v, f"key {k!r}") for k, v in labeled.items()], f"a mapping of {len(labeled)} labels"
    elif isinstance(labeled, (tuple, list)) and len(labeled) == 2:
        idx, lab = (np.asarray(v.cpu() if isinstance(v, torch.Tensor) else v).reshape(-1).tolist() for v in labeled)
        if len(idx) != len(lab):
            raise InputError("labeled", f"{len(idx)} indices but {len(lab)} labels; expected one label per index")
        triples, source = [(i, v, f"item {n}") for n, (i, v) in enumerate(zip(idx, lab))], f"{len(idx)} labels"
    elif labeled is None:
        triples, source = [], "no labels"
    else:
        raise InputError("labeled", f"expected a CSV / JSON path, a mapping {{index: label}} or (indices, labels), "
                                    f"got {type(labeled).__name__}")
    by_name = {n: i for i, n in enumerate(class_names)} if class_names else None
    seen: dict[int, str] = {}
    indices, labels = [], []
    for index, label, where in triples:
        i = _as_int(index, "pool index", where)
        if not 0 <= i < n_pool:
            raise InputError("labeled", f"{where}: pool index {i} is outside the pool (0..{n_pool - 1})")
        if i in seen:
            raise InputError("labeled", f"{where}: pool index {i} is labeled twice (first at {seen[i]})")
        seen[i] = where
        if by_name is not None and str(label).strip() in by_name:
            y = by_name[str(label).strip()]
        else:
            try:
                y = _as_int(label, "label", where)
            except InputError:
                hint = (f"one of the class names {', '.join(class_names)}" if class_names else
                        "a class id; pass class_names (--class-names) to label by name")
                raise InputError("labeled", f"{where}: label {label!r} is not {hint}") from None
        if y < 0 or (num_classes is not None and y >= num_classes):
            top = "" if num_classes is None else f"..{num_classes - 1}"
            raise InputError("labeled", f"{where}: label {y} is out of range; expected class ids 0{top}")
        indices.append(i)
        labels.append(y)
    order = np.argsort(indices, kind="stable")
    idx = torch.tensor(indices, dtype=torch.int64)[order]
    lab = torch.tensor(labels, dtype=torch.int64)[order]
    return idx, lab, source


def read_class_names(value) -> tuple[str, ...] | None:
    """Class names: a sequence, or a .txt (one per line) / .json (a list) file; None stays None."""
    if value is None:
        return None
    if _is_path(value):
        path = Path(value).expanduser()
        if not path.is_file():
            raise InputError("class_names", f"{path} does not exist; expected a .txt (one name per line) or .json list")
        text = path.read_text(encoding="utf-8-sig")
        if path.suffix.lower() == ".json":
            value = _parse_json(path, text, "class_names")
        else:
            value = [line.strip() for line in text.splitlines() if line.strip()]
    names = tuple(str(v) for v in value)
    if len(names) < 2 or len(set(names)) != len(names):
        raise InputError("class_names", f"expected at least 2 unique class names, got {list(names)!r}")
    return names
