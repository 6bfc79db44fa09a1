"""CPU benchmarks of the selection ops next to the dense baselines (bench/select_baselines.py).

    pytest bench/test_bench_select.py --benchmark-only                      # N = 20,000 (minutes)
    MPTS_BENCH_QUICK=1 pytest bench/test_bench_select.py --benchmark-only   # N = 4,000

One benchmark group per op. The slow baselines run with fewer picks (k_baseline, recorded in
extra_info); bench/select_run.py extrapolates them to the full k and records floors and the
million-row cases. Nothing about speed is asserted; the dense k-center's picks are checked
against ours.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("pytest_benchmark")

import harness  # noqa: E402
import select_baselines as sb  # noqa: E402
from mpts_fast import ops  # noqa: E402

QUICK = harness.quick_from_env()
N, D, C, K, L = (4000, 128, 10, 200, 200) if QUICK else (20_000, 512, 10, 1000, 1000)
K_DENSE = 50 if QUICK else 100  # picks the dense baselines run (their per-pick cost is seconds at full size)


def _bench(benchmark, fn, group, rounds, **extra):
    benchmark.group = group
    benchmark.extra_info.update(extra)
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1 if rounds > 1 else 0)


@pytest.fixture(scope="module")
def pool():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=g)
    mask = torch.zeros(N, dtype=torch.bool)
    mask[torch.randperm(N, generator=g)[:L]] = True
    return x, mask


@pytest.fixture(scope="module")
def badge_inputs():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(N, D, generator=g).relu_()
    probs = torch.randn(N, C, generator=g).mul_(2).softmax(1)
    return probs, emb


KC_GROUP = f"kcenter_greedy N={N} d={D} labeled={L} cpu float32"


def test_kcenter_ours(benchmark, pool):
    x, mask = pool
    _bench(benchmark, lambda: ops.kcenter_greedy(x, K, labeled=mask), KC_GROUP, 3, k=K)


def test_kcenter_dense_deepal(benchmark, pool):
    x, mask = pool
    picks = _bench(benchmark, lambda: sb.kcenter_dense_deepal(x.numpy(), mask.numpy(), K, max_picks=K_DENSE), KC_GROUP, 1, k=K_DENSE)
    assert np.array_equal(picks, ops.kcenter_greedy(x, K_DENSE, labeled=mask).numpy())


BADGE_GROUP = f"badge_select N={N} C={C} D={D} cpu float32"


def test_badge_ours(benchmark, badge_inputs):
    probs, emb = badge_inputs
    _bench(benchmark, lambda: ops.badge_select(probs, emb, K, generator=torch.Generator().manual_seed(1)), BADGE_GROUP, 3, k=K)


def test_badge_explicit_torch(benchmark, badge_inputs):
    probs, emb = badge_inputs

    def run():
        G = torch.from_numpy(sb.badge_embeddings(probs.numpy(), emb.numpy(), np.float32))
        return sb.badge_explicit_torch(G, K_DENSE, generator=torch.Generator().manual_seed(1))

    _bench(benchmark, run, BADGE_GROUP, 1, k=K_DENSE)
