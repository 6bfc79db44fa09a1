"""Argument checks, one wording for every error: "<name>: expected <what>, got <value>".

The name comes first so a caller can put it in its own words (the CLI turns "epochs: ..." into
"--epochs: ..."). Op arguments (tensors, counts) raise TypeError for a value of the wrong type
and ValueError for a value out of range. Options (a strategy's or a model's constructor options,
which reach us from the command line or a config file) raise ValueError for both, so one
`except ValueError` turns any of them into a usage error.
"""
from __future__ import annotations

import math
import operator

import numpy as np
import torch

_FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)

# Rows per block when a numpy array (possibly memory-mapped) is checked for NaN/inf: bounds the
# temporaries to a few MB whatever the data set's size.
_FINITE_CHUNK = 2048


def tensor(value, name: str, dim: int | None = None) -> torch.Tensor:
    """`value` as a floating torch.Tensor, of `dim` dimensions when given."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if value.dtype not in _FLOATS:
        raise TypeError(f"{name}: expected a floating tensor (float32, float64, float16, bfloat16), got {value.dtype}")
    if dim is not None and value.dim() != dim:
        raise ValueError(f"{name}: expected a {dim}-D tensor, got shape {tuple(value.shape)}")
    return value


def same_device(**tensors: torch.Tensor) -> torch.device:
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{k} on {v}" for k, v in devices.items())
        raise ValueError(f"{', '.join(devices)}: expected tensors on one device, got {listing}")
    return next(iter(devices.values()))


def common_dtype(**tensors: torch.Tensor) -> torch.dtype:
    dtypes = {t.dtype for t in tensors.values()}
    if len(dtypes) > 1:
        listing = ", ".join(f"{k} {t.dtype}" for k, t in tensors.items())
        raise TypeError(f"{', '.join(tensors)}: expected tensors of one dtype, got {listing}")
    return dtypes.pop()


def finite(x, name: str) -> None:
    """ValueError naming `name` and the first row holding NaN or infinity. x: a torch tensor or a numpy array
    (numpy: read in blocks of rows, so a memory-mapped file is never loaded whole; non-float dtypes pass).

    A tensor is checked with one sum: a NaN or inf anywhere makes the sum non-finite, and one reduction to a scalar
    is 10-35x cheaper than isfinite(t).all() (no bool tensor the size of t). A finite sum proves every element
    finite; a non-finite one may be the overflow of large finite values, so the exact check decides."""
    if isinstance(x, np.ndarray):
        _finite_array(x, name)
        return
    if x.numel() == 0 or math.isfinite(float(x.detach().sum())):
        return
    bad = ~torch.isfinite(x.detach())
    if bool(bad.any()):
        where = bad.reshape(x.shape[0], -1).any(1) if x.dim() > 0 else bad.reshape(1)
        raise ValueError(f"{name}: expected finite values, got NaN or infinity{_at(x.dim(), int(where.int().argmax()))}")


def _finite_array(x: np.ndarray, name: str) -> None:
    if x.dtype.kind != "f":
        return
    if x.ndim == 0:
        if not np.isfinite(x):
            raise ValueError(f"{name}: expected finite values, got {x.item()!r}")
        return
    for start in range(0, len(x), _FINITE_CHUNK):
        block = np.asarray(x[start:start + _FINITE_CHUNK]).reshape(min(_FINITE_CHUNK, len(x) - start), -1)
        bad = ~np.isfinite(block).all(axis=1)
        if bad.any():
            raise ValueError(f"{name}: expected finite values, got NaN or infinity{_at(x.ndim, start + int(np.argmax(bad)))}")


def _at(ndim: int, i: int) -> str:
    return "" if ndim == 0 else (f" at index {i}" if ndim == 1 else f" in row {i}")


def choice(value, name: str, options) -> None:
    if value not in options:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, options))}, got {value!r}")


def integer(value, name: str, minimum: int | None = None, what: str = "", maximum: int | None = None) -> int:
    """`value` as an int: a Python int, a numpy integer or a 0-dim integer tensor are accepted
    alike (every op takes counts and sizes this way); bools, floats and other tensors are
    refused (TypeError). `what` words the range ("a positive number of picks"); without it the
    error states the bounds."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected an int, got bool {value!r}")
    if isinstance(value, torch.Tensor):
        if value.dim() != 0 or value.dtype == torch.bool or value.dtype.is_floating_point or value.dtype.is_complex:
            raise TypeError(
                f"{name}: expected an int (or a 0-dim integer tensor), got a {value.dtype} tensor of shape {tuple(value.shape)}"
            )
        value = int(value)
    else:
        try:
            value = operator.index(value)
        except TypeError:
            raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name}: expected {what or _int_range(minimum, maximum)}, got {value}")
    return value


def _int_range(minimum: int | None, maximum: int | None) -> str:
    if maximum is None:
        return f"an int >= {minimum}"
    return f"an int <= {maximum}" if minimum is None else f"an int in [{minimum}, {maximum}]"


# ----------------------------------------------------------------------------- options


def int_option(value, name: str, *, minimum: int | None = 1, maximum: int | None = None,
               allow_none: bool = False, what: str = "") -> int | None:
    """An integer option (a Python or numpy int; bools refused: True is an int in Python) in
    [minimum, maximum]; ValueError otherwise, worded with `what` when given."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or (
            minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if what:
            expected = what
        elif minimum == 1 and maximum is None:
            expected = "a positive integer"
        else:
            expected = _int_range(minimum, maximum).replace("an int", "an integer")
        raise ValueError(f"{name}: expected {expected}{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


def number_option(value, name: str, *, above: float | None = None, at_least: float | None = None,
                  below: float | None = None, at_most: float | None = None, what: str = "") -> float:
    """A real option (int or float, bools and NaN refused) within the given bounds (above/below
    exclusive, at_least/at_most inclusive); ValueError otherwise. Returns it as a float."""
    ok = not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))
    if ok:
        v = float(value)
        ok = not math.isnan(v) and (above is None or v > above) and (at_least is None or v >= at_least) and (
            below is None or v < below) and (at_most is None or v <= at_most)
    if not ok:
        raise ValueError(f"{name}: expected {what or _number_range(above, at_least, below, at_most)}, got {value!r}")
    return float(value)


def _number_range(above, at_least, below, at_most) -> str:
    low = f"({above:g}" if above is not None else (f"[{at_least:g}" if at_least is not None else None)
    high = f"{below:g})" if below is not None else (f"{at_most:g}]" if at_most is not None else None)
    if low and high:
        return f"a number in {low}, {high}"
    if low:
        return "a positive number" if above == 0 else f"a number {'>' if above is not None else '>='} {low[1:]}"
    if high:
        return f"a number {'<' if below is not None else '<='} {high[:-1]}"
    return "a number"


def positive_int(value, name: str, *, allow_none: bool = False) -> int | None:
    return int_option(value, name, minimum=1, allow_none=allow_none)


def positive_float(value, name: str) -> float:
    return number_option(value, name, above=0)
