"""Argument validation with errors that name the argument and say what was expected."""
from __future__ import annotations

import math
import operator

import numpy as np
import torch

_FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def tensor(value, name: str, dim: int | None = None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dtype not in _FLOATS:
        raise TypeError(f"{name} must be a floating tensor (float32, float64, float16, bfloat16), got {value.dtype}")
    if dim is not None and value.dim() != dim:
        raise ValueError(f"{name} must be {dim}-D, got shape {tuple(value.shape)}")
    return value


def same_device(**tensors: torch.Tensor) -> torch.device:
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{k} on {v}" for k, v in devices.items())
        raise ValueError(f"all inputs must be on one device, got {listing}")
    return next(iter(devices.values()))


def common_dtype(**tensors: torch.Tensor) -> torch.dtype:
    dtypes = {t.dtype for t in tensors.values()}
    if len(dtypes) > 1:
        listing = ", ".join(f"{k}: {t.dtype}" for k, t in tensors.items())
        raise TypeError(f"all inputs must share one dtype, got {listing}")
    return dtypes.pop()


def finite(t: torch.Tensor, name: str) -> None:
    # A NaN or inf anywhere makes the sum non-finite, and one reduction to a scalar is 10-35x cheaper than
    # isfinite(t).all() (no bool tensor). A finite sum proves every element finite; a non-finite one may be
    # overflow of large finite values, so the exact check decides.
    if t.numel() == 0 or math.isfinite(float(t.detach().sum())):
        return
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def choice(value, name: str, options) -> None:
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")


def integer(value, name: str, minimum: int | None = None, what: str = "") -> int:
    """`value` as an int: a Python int, a numpy integer or a 0-dim integer tensor are accepted
    alike (every op takes counts and sizes this way); bools, floats and other tensors are
    refused. `what` words the range error ("a positive number of picks"); without it the error
    says ">= minimum"."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got bool {value!r}")
    if isinstance(value, torch.Tensor):
        if value.dim() != 0 or value.dtype == torch.bool or value.dtype.is_floating_point or value.dtype.is_complex:
            raise TypeError(
                f"{name} must be an int (or a 0-dim integer tensor), got a {value.dtype} tensor of shape {tuple(value.shape)}"
            )
        value = int(value)
    else:
        try:
            value = operator.index(value)
        except TypeError:
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {what}, got {value}" if what else f"{name} must be >= {minimum}, got {value}")
    return value
