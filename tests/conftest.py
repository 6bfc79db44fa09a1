"""Fixtures for the mpts_fast suite.

- `device`: the devices parametrisation: every test taking `device` runs on "cpu" and on
  "cuda"; the cuda cases SKIP cleanly unless torch.cuda.is_available() and
  mpts_fast._native.native_devices() has "cuda" (mpts_testutil.DEVICES / requires_cuda).
- `devices`: the list of those device names usable here (for tests that loop over them).
- `set_backend`: forces MPTS_FAST_BACKEND for one test (monkeypatch.setenv; the package reads
  the variable on every call). Every test starts with the variable unset.
- `gen`: a torch.Generator seeded from the test's node id (plus MPTS_TEST_SEED if set): fresh
  random data per test and parameter set, yet reproducible from run to run.

Nothing here imports faiss or openml (the suite must run without them).
"""
from __future__ import annotations

import os

# GNU OpenMP threads spin while waiting by default; on a 2-core machine shared with another
# process that makes the native kernels' parallel regions ~4x slower. Passive waiting changes
# timing only, never results (export OMP_WAIT_POLICY to override). Must precede `import torch`.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import zlib  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from mpts_testutil import DEVICES, cuda_native  # noqa: E402


@pytest.fixture(autouse=True)
def _default_backend(monkeypatch):
    # The ambient environment must not change what the tests exercise.
    monkeypatch.delenv("MPTS_FAST_BACKEND", raising=False)


@pytest.fixture
def set_backend(monkeypatch):
    def _set(value: str) -> None:
        monkeypatch.setenv("MPTS_FAST_BACKEND", value)

    return _set


@pytest.fixture(params=["native", "reference"])
def backend(request, set_backend) -> str:
    """Runs a test once on the native kernels (skipped when _C is not built) and once on plain PyTorch."""
    from mpts_fast import ops

    if request.param == "native" and not ops._native.native_devices():
        pytest.skip("mpts_fast._C is not built")
    set_backend(request.param)
    return request.param


@pytest.fixture
def gen(request) -> torch.Generator:
    # MPTS_TEST_SEED (any string) re-draws every test's data, e.g. to probe robustness.
    seed = zlib.crc32((request.node.nodeid + os.environ.get("MPTS_TEST_SEED", "")).encode())
    return torch.Generator().manual_seed(seed)


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


@pytest.fixture
def devices() -> list[str]:
    return ["cpu", "cuda"] if cuda_native() else ["cpu"]
