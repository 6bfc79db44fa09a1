"""Loads the compiled kernels and decides, per call, whether the native path serves it.

MPTS_FAST_BACKEND=auto (default) | native | reference. In auto mode a missing _C, or a device
without a native kernel, falls back to mpts_fast.reference with one warning per reason.
"""
from __future__ import annotations

import os
import warnings

import torch

try:
    from mpts_fast import _C  # noqa: F401  (importing registers torch.ops.mpts_fast.*)

    IMPORT_ERROR: Exception | None = None
except ImportError as exc:  # the package still works, on the reference path
    _C = None
    IMPORT_ERROR = exc

_warned: set[str] = set()


BACKENDS = ("auto", "native", "reference")


def backend_setting() -> str:
    """MPTS_FAST_BACKEND, read on every call (case-insensitive; unset means auto). A value outside BACKENDS is a
    ValueError naming the variable: importing the package still works, the ops refuse to guess."""
    raw = os.environ.get("MPTS_FAST_BACKEND", "auto")
    value = raw.strip().lower()
    if value not in BACKENDS:
        raise ValueError(f"MPTS_FAST_BACKEND must be auto, native or reference (unset means auto), got {raw!r}")
    return value


def native_devices() -> list[str]:
    """Device types with native kernels in this build."""
    if _C is None:
        return []
    return ["cpu", "cuda"] if _C.cuda_compiled() else ["cpu"]


def use_native(op: str, device: torch.device) -> bool:
    """True if `op` should run on the native kernel for tensors on `device`."""
    setting = backend_setting()
    if setting == "reference":
        return False
    if device.type in native_devices():
        return True
    if _C is None:
        why = f"mpts_fast._C is not built ({IMPORT_ERROR})"
    else:
        why = f"mpts_fast._C has no {device.type} kernels"
    if setting == "native":
        raise RuntimeError(f"MPTS_FAST_BACKEND=native but {why}; op {op}")
    if why not in _warned:
        _warned.add(why)
        warnings.warn(f"{why}: using the plain-PyTorch reference ops", RuntimeWarning, stacklevel=3)
    return False
