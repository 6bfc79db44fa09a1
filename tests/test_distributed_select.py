"""mpts_fast.distributed selection on 2 gloo processes (CPU): the picks equal mpts_fast.ops on the whole pool.

Every case runs inside one spawn (two processes start once, ~seconds); the single-process picks are computed here.
Shards are of unequal size (one of them empty in one case), labeled rows sit on one rank only, and k exceeds a shard.
"""
from __future__ import annotations

import pytest
import torch

from mpts_fast import distributed, ops
from mpts_fast.distributed.spawn import run_local

N, D, C = 203, 6, 4
CUTS = [(0, 150), (150, 203)]  # rank 0: 150 rows, rank 1: 53 (k = 60 > 53)
CUTS_EMPTY = [(0, 203), (203, 203)]  # rank 1 holds nothing
K = 60


def _pool(seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=g, dtype=torch.float64).to(dtype)
    x[17] = x[120]  # a duplicate row: distance exactly 0 (ties in the draws and the arg-max)
    probs = torch.softmax(torch.randn(N, C, generator=g, dtype=torch.float64), 1).to(dtype)
    labeled = torch.zeros(N, dtype=torch.bool)
    labeled[[3, 40, 77, 149]] = True  # every labeled row on rank 0
    return x, probs, labeled


def _cases():
    """(name, op, cuts, dtype, labeled?, extra) for every checked combination."""
    out = []
    for dtype in (torch.float32, torch.float64):
        for lab in (False, True):
            out.append(("kcenter", dtype, lab, CUTS, {}))
            out.append(("kmeanspp", dtype, lab, CUTS, {"first": "norm"}))
            out.append(("kmeanspp", dtype, lab, CUTS, {"first": "random"}))
            out.append(("badge", dtype, lab, CUTS, {}))
    out.append(("kcenter", torch.float32, True, CUTS_EMPTY, {}))
    out.append(("badge", torch.float32, False, CUTS_EMPTY, {}))
    out.append(("kmeanspp", torch.float32, True, CUTS_EMPTY, {"first": "random"}))
    return out


def _single(name, dtype, lab, extra):
    x, probs, labeled = _pool(dtype=dtype)
    mask = labeled if lab else None
    gen = torch.Generator().manual_seed(5)
    if name == "kcenter":
        return ops.kcenter_greedy(x, K, labeled=mask)
    if name == "kmeanspp":
        return ops.kmeanspp(x, K, generator=gen, labeled=mask, **extra)
    return ops.badge_select(probs, x, K, generator=gen, labeled=mask)


def _sharded_all_cases() -> list[list[int]]:
    r = distributed.rank()
    out = []
    for name, dtype, lab, cuts, extra in _cases():
        x, probs, labeled = _pool(dtype=dtype)
        lo, hi = cuts[r]
        mask = labeled[lo:hi] if lab else None
        gen = torch.Generator().manual_seed(5)
        if name == "kcenter":
            picks = distributed.kcenter_greedy(x[lo:hi], K, labeled=mask)
        elif name == "kmeanspp":
            picks = distributed.kmeanspp(x[lo:hi], K, generator=gen, labeled=mask, **extra)
        else:
            picks = distributed.badge_select(probs[lo:hi], x[lo:hi], K, generator=gen, labeled=mask)
        out.append(picks.tolist())
    return out


def _everything() -> dict:
    """All the two-rank checks of this file that end normally, in one spawn (starting processes costs seconds)."""
    return {"select": _sharded_all_cases(), "bad": _bad_input_on_rank_1(), "top_k": _top_k_cases()}


@pytest.fixture(scope="module")
def two_ranks():
    return run_local(_everything, 2)


@pytest.fixture(scope="module")
def sharded(two_ranks):
    return [r["select"] for r in two_ranks]


@pytest.mark.parametrize("case", range(len(_cases())),
                         ids=[f"{n}-{str(d)[6:]}-{'lab' if lab else 'nolab'}-{'empty' if c is CUTS_EMPTY else 'uneq'}"
                              f"{'-' + e['first'] if e else ''}" for n, d, lab, c, e in _cases()])
def test_two_ranks_pick_what_one_process_picks(sharded, case):
    name, dtype, lab, _, extra = _cases()[case]
    expected = _single(name, dtype, lab, extra).tolist()
    assert sharded[0][case] == expected
    assert sharded[1][case] == expected  # every rank returns the same global indices


def test_without_a_process_group_the_ops_are_the_single_process_ops():
    x, probs, labeled = _pool()
    assert torch.equal(distributed.kcenter_greedy(x, 9, labeled=labeled), ops.kcenter_greedy(x, 9, labeled=labeled))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(distributed.badge_select(probs, x, 9, generator=g1), ops.badge_select(probs, x, 9, generator=g2))


def _bad_input_on_rank_1():
    x, _, _ = _pool()
    lo, hi = CUTS[distributed.rank()]
    shard = x[lo:hi].clone()
    if distributed.rank() == 1:
        shard[0, 0] = float("nan")
    messages = []
    try:
        distributed.kcenter_greedy(shard, 5)
    except ValueError as e:
        messages.append(str(e))
    try:  # k larger than the whole pool: refused the same way on every rank
        distributed.kcenter_greedy(x[lo:hi], N + 1)
    except ValueError as e:
        messages.append(str(e))
    try:  # columns differ between the ranks
        distributed.kcenter_greedy(x[lo:hi, : 3 + distributed.rank()], 5)
    except ValueError as e:
        messages.append(str(e))
    return messages


def test_a_bad_shard_on_one_rank_raises_on_every_rank_with_its_message(two_ranks):
    for messages in (r["bad"] for r in two_ranks):
        assert len(messages) == 3
        assert "rank 1" in messages[0] and "local_features: expected finite values" in messages[0]
        assert f"k: expected at most the {N} rows" in messages[1]
        assert "same columns" in messages[2] and "rank 1 has (4,)" in messages[2]


def _rank_1_dies():
    x, _, _ = _pool()
    lo, hi = CUTS[distributed.rank()]
    if distributed.rank() == 1:
        raise RuntimeError("rank 1 broke on purpose")
    return distributed.kcenter_greedy(x[lo:hi], 5).tolist()


def test_an_exception_on_one_rank_ends_every_rank_without_a_hang():
    """Rank 1 raises before the first collective: rank 0's collective fails at once (the peer's sockets close; the
    timeout is only the backstop) with a message that names the cause, and spawn ends both. Which of the two errors
    spawn reports first is a race: either is clear."""
    import torch.multiprocessing as mp

    with pytest.raises(mp.ProcessRaisedException,
                       match="rank 1 broke on purpose|another rank probably failed, was killed or timed out"):
        run_local(_rank_1_dies, 2, timeout_s=30)


def _top_k_cases():
    g = torch.Generator().manual_seed(3)
    scores = torch.randn(101, generator=g).round(decimals=1)  # many ties
    lo, hi = distributed.shard_bounds(101, align=16)
    return [distributed.merged_top_k(scores[lo:hi], k, lo, largest=largest).tolist()
            for k in (1, 7, 60) for largest in (True, False)]


def test_merged_top_k_equals_the_single_process_top_k_with_ties(two_ranks):
    from mpts_fast.strategies.base import top_k

    g = torch.Generator().manual_seed(3)
    scores = torch.randn(101, generator=g).round(decimals=1)
    expected = [top_k(scores, k, largest=largest).tolist() for k in (1, 7, 60) for largest in (True, False)]
    assert two_ranks[0]["top_k"] == expected and two_ranks[1]["top_k"] == expected


def test_shard_bounds_cover_the_pool_in_aligned_blocks():
    for n in (0, 1, 5, 1024, 1347, 5000):
        for world in (1, 2, 3, 8):
            bounds = [distributed.shard_bounds(n, r, world, align=64) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            assert all(lo % 64 == 0 for lo, _ in bounds)


def test_the_reference_backend_takes_the_same_slot_trick(monkeypatch):
    """MPTS_FAST_BACKEND=reference: the per-pick fold runs reference.kcenter_loop / kmeanspp_loop / badge_loop on the
    slotted shard; the picks still equal the ops'."""
    monkeypatch.setenv("MPTS_FAST_BACKEND", "reference")
    x, probs, labeled = _pool()
    assert torch.equal(distributed.kcenter_greedy(x, 12, labeled=labeled), ops.kcenter_greedy(x, 12, labeled=labeled))
    for first in ("norm", "random"):
        g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
        assert torch.equal(distributed.kmeanspp(x, 12, generator=g1, first=first, labeled=labeled),
                           ops.kmeanspp(x, 12, generator=g2, first=first, labeled=labeled))
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    assert torch.equal(distributed.badge_select(probs, x, 12, generator=g1, labeled=labeled),
                       ops.badge_select(probs, x, 12, generator=g2, labeled=labeled))
