"""Which path serves an op call, and in which dtype: shared by every op family.

Each op runs the native kernel (C++/OpenMP on CPU, CUDA on GPU) when one serves the tensors'
device and dtype, and the plain-PyTorch version in :mod:`mpts_fast.reference` otherwise (see
:mod:`mpts_fast._native` for MPTS_FAST_BACKEND). Also the registration helpers: fakes and
autograd are registered only where the compiled library defines the op.
"""
from __future__ import annotations

from typing import Callable

import torch

from mpts_fast import _native

HALF = (torch.float16, torch.bfloat16)
FLOATS = (torch.float32, torch.float64, *HALF)

# Read once: whether this build has CUDA kernels cannot change in a process, and the call into _C
# (a pybind function) would break a torch.compile graph on every op call.
CUDA_KERNELS = _native._C is not None and bool(_native._C.cuda_compiled())


def compute_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """The dtype the native kernels run in for inputs of `dtype` on `device`."""
    if dtype in HALF:
        return torch.float32
    return dtype


def native_for(op: str, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the native kernel serves `op` for tensors of `dtype` on `device` (else the reference)."""
    if device.type == "cuda" and dtype == torch.float64:
        return False  # CUDA kernels are fp32; the float64 reference is the exact path there
    if _native._C is not None and (device.type in ("cpu", "meta") or (device.type == "cuda" and CUDA_KERNELS)):
        # a kernel serves this device (meta: the registered fake computes shapes and dtypes)
        return _native.backend_setting() != "reference"
    return _native.use_native(op, device)  # no kernel here: fall back with a warning, or refuse


def _defined(op: str) -> bool:
    return _native._C is not None and hasattr(torch.ops.mpts_fast, op)


def register_fake(op: str) -> Callable:
    """torch.library.register_fake for mpts_fast::`op`; a no-op where the extension is not built."""
    if not _defined(op):
        return lambda fn: fn
    return torch.library.register_fake("mpts_fast::" + op)


def register_autograd(op: str, backward: Callable, *, setup_context: Callable) -> None:
    """torch.library.register_autograd for mpts_fast::`op`; a no-op where the extension is not built."""
    if _defined(op):
        torch.library.register_autograd("mpts_fast::" + op, backward, setup_context=setup_context)
