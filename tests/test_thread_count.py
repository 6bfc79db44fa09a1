"""Native CPU kernels give bitwise the same results whatever torch.set_num_threads says: 1, 2
(this machine's cores) and 5 (more threads than cores). The kernels run in torch's own OpenMP
pool (one libgomp in the process), so torch.set_num_threads is what sizes their regions.

Sizes cross several work blocks (snapshot runs of 8 blocks of 64 items, selection blocks,
sensitivity chunks of 32 patterns) so that a dynamic schedule really hands blocks to different
threads.
"""
from __future__ import annotations

import pytest
import torch

from mpts_fast import ops
from mpts_fast import _native

THREADS = (1, 2, 5)

pytestmark = pytest.mark.skipif(not _native.native_devices(), reason="mpts_fast._C is not built")


@pytest.fixture
def threads():
    saved = torch.get_num_threads()

    def run_with_each(fn):
        outs = []
        for n in THREADS:
            torch.set_num_threads(n)
            outs.append(fn())
        return outs

    yield run_with_each
    torch.set_num_threads(saved)


def _assert_all_identical(outs):
    first = outs[0]
    for n, out in zip(THREADS[1:], outs[1:]):
        for a, b in zip(first if isinstance(first, tuple) else (first,), out if isinstance(out, tuple) else (out,)):
            assert torch.equal(a, b), f"result with {n} threads differs from 1 thread"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_snapshot_scores_and_accumulator(threads, gen, dtype):
    logits = torch.randn(3, 5000, 7, generator=gen, dtype=dtype) * 3  # 79 blocks, 10 runs
    logits[:, ::11, 2] = float("-inf")  # masked classes take the same path at every count

    def run():
        acc = ops.SnapshotAccumulator(5000, 7, dtype=dtype).update(logits)
        return tuple(torch.stack(ops.snapshot_uncertainty(logits))) + tuple(torch.stack(acc.scores()))

    _assert_all_identical(threads(run))


@pytest.mark.parametrize("norm", ["l1", "l2", "inf"])
def test_sensitivity(threads, gen, norm):
    P, I, J, K = 700, 40, 24, 5  # 22 chunks of 32 patterns, the last partial
    x = torch.randn(P, I, generator=gen)
    V, b_v = torch.randn(J, I, generator=gen), torch.randn(J, generator=gen)
    W, b_w = torch.randn(K, J, generator=gen), torch.randn(K, generator=gen)
    _assert_all_identical(threads(lambda: ops.sensitivity(x, V, b_v, W, b_w, norm=norm)))


def test_kcenter_kmeanspp_badge(threads, gen):
    feats = torch.randn(5000, 16, generator=gen)
    probs = torch.softmax(torch.randn(3000, 6, generator=gen), -1)
    emb = torch.randn(3000, 12, generator=gen)

    def run():
        return (
            ops.kcenter_greedy(feats, 40),
            ops.kcenter_greedy(feats, 25, labeled=torch.arange(0, 5000, 97)),
            ops.kmeanspp(feats, 30, generator=torch.Generator().manual_seed(3)),
            ops.badge_select(probs, emb, 20, generator=torch.Generator().manual_seed(4)),
        )

    _assert_all_identical(threads(run))


def test_lower_mind(threads, gen):
    x = torch.randn(3000, 40, generator=gen)  # 47 tiles of 64 rows
    centres = torch.randint(3000, (70,), generator=gen)

    def run():
        mind = torch.full((3000,), float("inf"))
        mind[::13] = -1
        torch.ops.mpts_fast.select_lower_mind(x, centres, mind)
        return mind

    _assert_all_identical(threads(run))


def test_farthest_from_mean(threads, gen):
    x = torch.randn(70_000, 3, generator=gen)  # 64 partial sums of 1,094 rows, 137 blocks of 512
    x[[5, 60_000]] = 40.0  # an exact tie: the lower index in every run
    _assert_all_identical(threads(lambda: torch.ops.mpts_fast.select_farthest_from_mean(x)))


def test_rbf_mmd2(threads, gen):
    x, y = torch.randn(300, 8, generator=gen), torch.randn(260, 8, generator=gen)
    _assert_all_identical(threads(lambda: ops.rbf_mmd2(x, y)))
