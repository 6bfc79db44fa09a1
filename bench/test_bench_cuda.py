"""CUDA float32 benchmarks: every case of bench/cases.py with CUDA sizes; skipped without a GPU (or
without mpts_fast's CUDA kernels, where the op would only run its reference).

    pytest bench/test_bench_cuda.py --benchmark-only
    MPTS_BENCH_QUICK=1 pytest bench/test_bench_cuda.py --benchmark-only

Every benchmarked call ends with torch.cuda.synchronize(), so pytest-benchmark's wall-clock timer
sees the whole GPU work (bench/run.py --device cuda times with CUDA events instead). A plain version
that runs out of GPU memory is skipped.

Precision: every case runs FP32 matmuls. Our ops force full FP32 inside (tests/test_cuda_bindings.py
checks that the global TF32 switches are ignored), so TF32 is switched off for the plain versions
too: a TF32 plain version would be faster for a precision we do not offer.
"""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("pytest_benchmark")

import harness  # noqa: E402
import suite  # noqa: E402
from mpts_fast import _native  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif("cuda" not in _native.native_devices(), reason="mpts_fast was built without CUDA kernels"),
]


@pytest.fixture(autouse=True)
def fp32_matmul():
    """Every case with TF32 off (see the module docstring), restored afterwards."""
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = prev


def _synced(fn):
    def run():
        out = fn()
        torch.cuda.synchronize()
        return out

    return run


def _before():
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    _before.base = torch.cuda.memory_allocated()


def _after(benchmark):
    benchmark.extra_info["peak_extra_mb"] = (torch.cuda.max_memory_allocated() - _before.base) / 1e6


@pytest.mark.parametrize("case,impl", suite.params("cuda"))
def test_cuda(benchmark, case, impl):
    try:
        suite.run(benchmark, "cuda", case, impl, wrap=_synced, before=_before, after=_after)
    except harness.OOM_ERRORS as exc:
        torch.cuda.empty_cache()
        pytest.skip(f"out of GPU memory: {str(exc).splitlines()[0]}")
