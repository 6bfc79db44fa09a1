"""The snapshot scores read nothing to the host unless a check is asked for: on a GPU a host read
waits for every queued kernel, and a scoring loop of small calls becomes host-bound.

CPU: every Python-level way to read a tensor's value (item, tolist, bool, float, int, numpy)
is made to fail while the op runs. CUDA: torch's sync debug mode makes any synchronising call
raise."""
from __future__ import annotations

import pytest
import torch

from mpts_fast import ops
from mpts_fast.ops import SnapshotAccumulator
from mpts_testutil import randn, requires_cuda

READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy")


@pytest.fixture
def no_host_reads(monkeypatch):
    """Within the test, reading any tensor to the host raises; counts the attempts."""
    attempts: list[str] = []

    def refuse(name):
        def read(self, *args, **kwargs):
            attempts.append(name)
            raise AssertionError(f"host read through Tensor.{name} in the scoring path")

        return read

    def arm():
        for name in READS:
            monkeypatch.setattr(torch.Tensor, name, refuse(name))

    return arm, attempts


@pytest.mark.parametrize("S", [1, 4])
def test_snapshot_uncertainty_reads_nothing_to_the_host(backend, S, gen, no_host_reads):
    logits = randn(gen, S, 300, 7)
    logits[0, 5, 2] = float("nan")  # a poisoned item needs no read either
    arm, attempts = no_host_reads
    arm()
    out = ops.snapshot_uncertainty(logits)
    assert attempts == []
    assert out.entropy.shape == (300,)


def test_accumulator_reads_nothing_to_the_host(backend, gen, no_host_reads):
    logits = randn(gen, 3, 300, 7)
    acc = SnapshotAccumulator(300, 7)
    arm, attempts = no_host_reads
    arm()
    for s in range(3):
        acc.update(logits[s])
    scores = acc.scores()
    assert attempts == []
    assert scores.bald.shape == (300,)


def test_the_check_is_one_read(backend, gen, monkeypatch):
    logits = randn(gen, 3, 300, 7)
    calls = []
    real = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist", lambda self: calls.append(1) or real(self))
    ops.snapshot_uncertainty(logits, check_finite=True)
    SnapshotAccumulator(300, 7).update(logits).scores(check_finite=True)
    assert len(calls) == 2


@requires_cuda
def test_cuda_scoring_never_synchronises(gen):
    logits = randn(gen, 4, 5000, 10).cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        ops.snapshot_uncertainty(logits)
        acc = SnapshotAccumulator(5000, 10, device="cuda")
        for s in range(4):
            acc.update(logits[s])
        acc.scores()
    finally:
        torch.cuda.set_sync_debug_mode("default")
