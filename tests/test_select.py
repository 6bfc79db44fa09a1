"""Tests of the selection ops: kcenter_greedy, kmeanspp, badge_select.

Oracles (tests/select_oracles.py) are dense float64 and independent of mpts_fast. Every op is
checked on the native kernels and on the plain-PyTorch reference (MPTS_FAST_BACKEND=reference);
the initial nearest-labeled search on faiss (when installed) and on the chunked GEMM
(MPTS_FAST_FAISS=0).
"""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import select_oracles as oracle
from mpts_fast import ops
from mpts_testutil import DEVICES, cuda_native, randn

BACKENDS = ["native", "reference"]


@pytest.fixture(params=["faiss", "gemm"])
def nn_path(request, monkeypatch):
    if request.param == "faiss":
        pytest.importorskip("faiss")
    else:
        monkeypatch.setenv("MPTS_FAST_FAISS", "0")
    return request.param


def clustered(gen, n, d, dtype=torch.float32, clusters=5):
    """Gaussian blobs: distinct distances (no float near-ties), like real embeddings."""
    centres = randn(gen, clusters, d, dtype=torch.float64, scale=4.0)
    assign = torch.randint(clusters, (n,), generator=gen)
    return (centres[assign] + randn(gen, n, d, dtype=torch.float64)).to(dtype)


# ------------------------------------------------------------------------ kcenter_greedy


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kcenter_matches_float64_greedy_without_labeled(backend, gen, dtype):
    x = clustered(gen, 300, 12, dtype)
    got = ops.kcenter_greedy(x, 40)
    assert got.dtype == torch.int64 and got.shape == (40,)
    assert got.tolist() == oracle.kcenter(x, 40)


@pytest.mark.parametrize("as_index", [False, True])
def test_kcenter_matches_float64_greedy_with_labeled(backend, nn_path, gen, as_index):
    x = clustered(gen, 400, 20)
    mask = torch.zeros(400, dtype=torch.bool)
    mask[torch.randperm(400, generator=gen)[:37]] = True
    labeled = mask.nonzero().squeeze(1) if as_index else mask
    got = ops.kcenter_greedy(x, 50, labeled=labeled)
    assert got.tolist() == oracle.kcenter(x, 50, mask)
    assert not mask[got].any()


def test_kcenter_duplicates_and_whole_pool(backend, nn_path, gen):
    # rows 0..59 distinct, then exact copies of some of them (labeled ones included): once the
    # distinct rows are used up every remaining distance is exactly 0 and ties go to the
    # lowest index, in the kernels as in the float64 oracle.
    base = clustered(gen, 60, 8)
    x = torch.cat([base, base[:25], base[40:]])
    mask = torch.zeros(x.shape[0], dtype=torch.bool)
    mask[[3, 17, 44, 70]] = True
    k = int((~mask).sum())
    got = ops.kcenter_greedy(x, k, labeled=mask)
    assert got.tolist() == oracle.kcenter(x, k, mask)
    assert sorted(got.tolist()) == (~mask).nonzero().squeeze(1).tolist()
    all_rows = ops.kcenter_greedy(x, x.shape[0])
    assert all_rows.tolist() == oracle.kcenter(x, x.shape[0])


def test_kcenter_faiss_and_gemm_paths_agree(monkeypatch, gen):
    pytest.importorskip("faiss")
    x = clustered(gen, 3000, 32)
    lab = torch.randperm(3000, generator=gen)[:500]
    a = ops.kcenter_greedy(x, 60, labeled=lab)
    monkeypatch.setenv("MPTS_FAST_FAISS", "0")
    b = ops.kcenter_greedy(x, 60, labeled=lab)
    assert a.tolist() == b.tolist()


def test_kcenter_half_and_noncontiguous_inputs(gen):
    x = clustered(gen, 200, 16)
    want = ops.kcenter_greedy(x.half().float(), 20)
    assert ops.kcenter_greedy(x.half(), 20).tolist() == want.tolist()
    wide = torch.stack([x, -x], 2)[:, :, 0]  # a non-contiguous view equal to x
    assert not wide.is_contiguous()
    assert ops.kcenter_greedy(wide, 20).tolist() == ops.kcenter_greedy(x, 20).tolist()


# ------------------------------------------------------------------------------ kmeanspp


def test_kmeanspp_matches_explicit_oracle_with_same_uniforms(backend, gen):
    x = clustered(gen, 250, 10, torch.float64)
    seed = 1234
    got = ops.kmeanspp(x, 30, generator=torch.Generator().manual_seed(seed))
    u = torch.rand(30, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    first = int((x**2).sum(1).argmax())
    assert got.tolist() == oracle.kmeanspp(x, 30, u, first)


def test_kmeanspp_reproducible_and_backends_agree(set_backend, gen):
    x = clustered(gen, 500, 16)
    lab = torch.randperm(500, generator=gen)[:40]
    runs = {}
    for b in BACKENDS:
        set_backend(b)
        for first in ("norm", "random"):
            a1 = ops.kmeanspp(x, 45, generator=torch.Generator().manual_seed(7), first=first, labeled=lab)
            a2 = ops.kmeanspp(x, 45, generator=torch.Generator().manual_seed(7), first=first, labeled=lab)
            assert a1.tolist() == a2.tolist()
            assert len(set(a1.tolist())) == 45 and not set(a1.tolist()) & set(lab.tolist())
            runs[b, first] = a1.tolist()
    assert runs["native", "norm"] == runs["reference", "norm"]
    assert runs["native", "random"] == runs["reference", "random"]


@pytest.mark.parametrize("first", ["norm", "random"])
def test_kmeanspp_second_pick_follows_d2_law(backend, first):
    # Tiny pool, many draws from one seeded generator (deterministic): the second pick's
    # frequencies must match D^2 / sum D^2 to the first pick (chi-square goodness of fit).
    stats = pytest.importorskip("scipy.stats")
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 1.0], [-1.0, -1.0], [4.0, 4.0]])
    gen = torch.Generator().manual_seed(2024)
    draws = 3000
    if first == "norm":
        counts = torch.zeros(6)
        for _ in range(draws):
            picks = ops.kmeanspp(x, 2, generator=gen, first="norm")
            assert picks[0] == 5
            counts[picks[1]] += 1
        d2 = ((x - x[5]) ** 2).sum(1).double()
        expected = d2 / d2.sum() * draws
        keep = expected > 0
        assert counts[~keep].sum() == 0
        p = stats.chisquare(counts[keep].numpy(), expected[keep].numpy()).pvalue
    else:
        # joint law of (first, second): first uniform, second ∝ D^2 to the first
        counts = torch.zeros(6, 6)
        for _ in range(draws):
            a, b = ops.kmeanspp(x, 2, generator=gen, first="random").tolist()
            counts[a, b] += 1
        D = oracle.sq_dists(x, x)
        expected = D / D.sum(1, keepdim=True) / 6 * draws
        keep = expected > 0
        assert counts[~keep].sum() == 0
        p = stats.chisquare(counts[keep].numpy(), expected[keep].numpy()).pvalue
    assert p > 1e-3, (counts, expected)


def test_kmeanspp_fills_uniformly_when_all_distances_are_zero(backend):
    x = torch.ones(7, 3)  # every row the same: after the first pick all D^2 are 0
    gen = torch.Generator().manual_seed(5)
    seen = torch.zeros(7)
    for _ in range(300):
        picks = ops.kmeanspp(x, 7, generator=gen)
        assert sorted(picks.tolist()) == list(range(7))
        seen[picks[1]] += 1
    assert seen[0] == 0 and (seen[1:] > 20).all()  # first="norm" ties -> row 0; the rest uniform


def test_kmeanspp_never_picks_zero_weight_rows_while_others_remain(backend):
    x = torch.tensor([[0.0], [0.0], [0.0], [5.0], [5.0], [9.0]])
    for seed in range(30):
        picks = ops.kmeanspp(x, 3, generator=torch.Generator().manual_seed(seed)).tolist()
        assert picks[0] == 5 and sorted(x[picks].squeeze(1).tolist()) == [0.0, 5.0, 9.0]


# --------------------------------------------------------------------------- badge_select


def _badge_inputs(gen, n, C, D, dtype=torch.float64):
    probs = torch.softmax(randn(gen, n, C, dtype=dtype, scale=2.0), 1)
    emb = torch.relu(randn(gen, n, D, dtype=dtype))
    return probs, emb


def test_factored_badge_distances_equal_explicit_gradient_embeddings(backend, gen):
    from mpts_fast.coverage.engine import badge_factors
    from mpts_fast import reference

    probs, emb = _badge_inputs(gen, 80, 7, 24)
    g = oracle.gradient_embeddings(probs, emb)
    q = badge_factors(probs, emb, torch.float64)
    if backend == "native":
        a = torch.ops.mpts_fast.select_badge_sqnorms(q, emb.contiguous())
    else:
        a = reference.badge_sqnorms(q, emb)
    torch.testing.assert_close(a, (g**2).sum(1), rtol=1e-12, atol=1e-12)
    for c in (0, 13, 79):
        mind = torch.full((80,), float("inf"), dtype=torch.float64)
        u = torch.full((2,), 0.5, dtype=torch.float64)
        if backend == "native":
            torch.ops.mpts_fast.select_badge_kmeanspp(q, emb.contiguous(), a, mind, c, 2, u)
        else:
            reference.badge_loop(q, emb, a, mind, c, 2, u)
        want = ((g - g[c]) ** 2).sum(1)
        keep = mind >= 0  # the two picked rows are marked -1
        assert keep.sum() == 78
        torch.testing.assert_close(mind[keep], want[keep], rtol=1e-9, atol=1e-10)


def test_badge_select_matches_explicit_kmeanspp(backend, gen):
    probs, emb = _badge_inputs(gen, 150, 5, 16)
    seed = 99
    got = ops.badge_select(probs, emb, 25, generator=torch.Generator().manual_seed(seed))
    g = oracle.gradient_embeddings(probs, emb)
    u = torch.rand(25, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    first = int((g**2).sum(1).argmax())
    assert got.tolist() == oracle.kmeanspp(g, 25, u, first)


def test_badge_select_float32_backends_agree_and_duplicates_are_zero(set_backend, gen):
    probs, emb = _badge_inputs(gen, 400, 10, 64, torch.float32)
    probs = torch.cat([probs, probs[:50]])
    emb = torch.cat([emb, emb[:50]])
    out = {}
    for b in BACKENDS:
        set_backend(b)
        out[b] = ops.badge_select(probs, emb, 60, generator=torch.Generator().manual_seed(3)).tolist()
        assert len(set(out[b])) == 60
    assert out["native"] == out["reference"]
    # an exact copy of a centre gets distance exactly 0 in the factored form (same dot routine)
    from mpts_fast.coverage.engine import badge_factors

    q = badge_factors(probs, emb, torch.float32)
    a = torch.ops.mpts_fast.select_badge_sqnorms(q, emb)
    mind = torch.full((450,), float("inf"))
    torch.ops.mpts_fast.select_badge_kmeanspp(q, emb, a, mind, 7, 2, torch.zeros(2, dtype=torch.float64))
    assert mind[407] == 0.0  # row 407 is a copy of row 7


# ------------------------------------------------------------------------------ bad input


def _x(n=10, d=3):
    return torch.randn(n, d)


BAD = {
    "k_zero": (lambda: ops.kcenter_greedy(_x(), 0), ValueError, "k: expected a positive"),
    "k_negative": (lambda: ops.kmeanspp(_x(), -2), ValueError, "k: expected a positive"),
    "k_float": (lambda: ops.kcenter_greedy(_x(), 2.5), TypeError, "k: expected an int"),
    "k_too_big": (lambda: ops.kcenter_greedy(_x(), 11), ValueError, "k: expected at most the 10 rows"),
    "k_over_unlabeled": (
        lambda: ops.kcenter_greedy(_x(), 8, labeled=torch.arange(3)),
        ValueError,
        "k: expected at most the 7 unlabeled rows",
    ),
    "nan_features": (
        lambda: ops.kcenter_greedy(torch.tensor([[0.0], [float("nan")]]), 1),
        ValueError,
        "features: expected finite",
    ),
    "inf_features": (
        lambda: ops.kmeanspp(torch.tensor([[0.0], [float("inf")]]), 1),
        ValueError,
        "features: expected finite values",
    ),
    "features_1d": (lambda: ops.kcenter_greedy(torch.randn(5), 1), ValueError, "features: expected a 2-D"),
    "features_int": (lambda: ops.kcenter_greedy(torch.ones(5, 2, dtype=torch.int64), 1), TypeError, "features: expected a floating"),
    "features_empty": (lambda: ops.kcenter_greedy(torch.randn(0, 3), 1), ValueError, "at least one row"),
    "labeled_mask_length": (
        lambda: ops.kcenter_greedy(_x(), 2, labeled=torch.zeros(9, dtype=torch.bool)),
        ValueError,
        "labeled: expected a bool mask of 10",
    ),
    "labeled_out_of_range": (lambda: ops.kcenter_greedy(_x(), 2, labeled=torch.tensor([3, 10])), ValueError, r"labeled: expected row indices in \[0, 10\)"),
    "labeled_float": (lambda: ops.kcenter_greedy(_x(), 2, labeled=torch.tensor([1.0])), TypeError, "labeled: expected a bool mask or integer"),
    "labeled_2d": (lambda: ops.kmeanspp(_x(), 2, labeled=torch.zeros(2, 5, dtype=torch.bool)), ValueError, "labeled: expected a 1-D"),
    "first_bad": (lambda: ops.kmeanspp(_x(), 2, first="max"), ValueError, "first: expected one of 'norm', 'random'"),
    "generator_bad": (lambda: ops.kmeanspp(_x(), 2, generator=3), TypeError, "generator: expected a torch.Generator"),
    "probs_negative": (
        lambda: ops.badge_select(torch.tensor([[1.2, -0.2], [0.5, 0.5]]), torch.randn(2, 3), 1),
        ValueError,
        "probs: expected a distribution.*negative",
    ),
    "probs_not_summing": (
        lambda: ops.badge_select(torch.tensor([[0.3, 0.3], [0.5, 0.5]]), torch.randn(2, 3), 1),
        ValueError,
        "probs: expected a distribution.*summing to 1",
    ),
    "probs_nan": (lambda: ops.badge_select(torch.tensor([[float("nan"), 1.0]]), torch.randn(1, 3), 1), ValueError, "probs: expected finite"),
    "rows_mismatch": (
        lambda: ops.badge_select(torch.full((3, 2), 0.5), torch.randn(4, 3), 1),
        ValueError,
        "embeddings: expected one row per row of probs",
    ),
    "embeddings_inf": (
        lambda: ops.badge_select(torch.full((2, 2), 0.5), torch.tensor([[1.0], [float("inf")]]), 1),
        ValueError,
        "embeddings: expected finite",
    ),
    "badge_k_too_big": (lambda: ops.badge_select(torch.full((3, 2), 0.5), torch.randn(3, 2), 4), ValueError, "k: expected at most the 3 rows"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_raises_naming_the_argument(case, backend):
    fn, exc, msg = BAD[case]
    with pytest.raises(exc, match=msg):
        fn()


def test_native_ops_refuse_running_out_of_rows():
    if not ops._native.native_devices():
        pytest.skip("mpts_fast._C is not built")
    x = torch.randn(5, 2)
    mind = torch.tensor([-1.0, -1.0, 1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="exceeds the 3 rows"):
        torch.ops.mpts_fast.select_kcenter(x, mind, -1, 4)
    with pytest.raises(ValueError, match="first must be a pickable row"):
        torch.ops.mpts_fast.select_kcenter(x, mind, 0, 1)


def test_selection_works_without_faiss():
    code = (
        "import sys\n"
        "sys.modules['faiss'] = None\n"
        "import torch\n"
        "from mpts_fast import ops\n"
        "x = torch.randn(300, 8)\n"
        "p = ops.kcenter_greedy(x, 10, labeled=torch.arange(20))\n"
        "assert p.shape == (10,) and int(p.min()) >= 20\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


# ------------------------------------------------------------------------------- CUDA


# CPU and CUDA picks: the same uniforms (drawn on the generator's device), but not bit-identical
# picks on real-valued rows. The kernels sum each distance in a different order (CPU: 64-wide
# vector lanes, FMA contraction as the compiler sees fit; CUDA: 32 strided lanes with fmaf and a
# butterfly) over different block partitions (512 rows against max(64, N / 1024)), and the inputs
# to the loops (distances to the labeled rows from faiss or a torch GEMM, BADGE factors, the
# farthest-from-the-mean first pick) come from torch ops whose reductions differ by device. So a
# near-tie may go either way and the sequences then part. What holds, and is tested: on inputs
# whose every distance and weight sum is exact in float32 the picks are identical (here on a GPU;
# under CPU emulation of the CUDA kernel in csrc/emu/check_select.cpp); on any input every pick is
# the float64 loop's choice up to rounding (a relative 1e-5 of the largest distance, or of the
# total weight around the u_t * total point of a draw).
def _integer_rows(gen, n, d):
    """Small integers: every distance and weight sum is exact in float32, in any order."""
    return torch.randint(-8, 9, (n, d), generator=gen).float()


def _dyadic_probs(gen, n, C):
    """Distributions over C classes in multiples of 1/64, so BADGE's factors are exact."""
    w = torch.randint(0, 64 // C + 1, (n, C), generator=gen)
    w[:, -1] = 0
    w[:, -1] = 64 - w.sum(1)
    return w.float() / 64


def assert_picks_within_rounding(x, picks, labeled=None, u=None, rel=1e-5, check_first=False):
    """Every pick of a float32 loop over rows x is a valid choice of the float64 loop, up to rounding.

    k-center (u None): the pick's distance to its nearest centre is within `rel` of the largest.
    k-means++ (u: the uniforms): the running D^2 weight before the pick is at most u_t * total and
    with the pick at least u_t * total, within rel * total, and the pick has positive weight.
    Pick 0 is checked only with check_first (k-center from labeled rows)."""
    x64 = x.detach().to(torch.float64).cpu()
    N = x64.shape[0]
    eligible = torch.ones(N, dtype=torch.bool)
    mind = torch.full((N,), float("inf"), dtype=torch.float64)
    if labeled is not None:
        eligible[labeled] = False
        for s in range(0, N, 1024):
            mind[s : s + 1024] = oracle.sq_dists(x64[s : s + 1024], x64[labeled]).min(1).values
    picks = [int(p) for p in picks]
    for t, w in enumerate(picks):
        if t > 0:
            mind = torch.minimum(mind, ((x64 - x64[picks[t - 1]]) ** 2).sum(1))
        assert 0 <= w < N and bool(eligible[w]), f"pick {t} = {w} is not an eligible row"
        if t > 0 or check_first:
            weights = torch.where(eligible, mind, torch.zeros(()))
            if u is None:
                best = float(weights.max())
                assert float(mind[w]) >= best * (1 - rel), f"pick {t} = {w}: {float(mind[w])} < largest {best}"
            else:
                total = float(weights.sum())
                before = float(weights[:w].sum())
                target = float(u[t]) * total
                assert float(mind[w]) > 0 and before <= target + rel * total and before + float(mind[w]) >= target - rel * total, (
                    f"draw {t} = {w}: weights before {before}, its weight {float(mind[w])}, target {target} of {total}"
                )
        eligible[w] = False


def test_cpu_picks_are_float64_choices_up_to_rounding(backend, gen):
    x = clustered(gen, 1500, 24)
    lab = torch.randperm(1500, generator=gen)[:90]
    assert_picks_within_rounding(x, ops.kcenter_greedy(x, 40, labeled=lab), lab, check_first=True)
    u = torch.rand(30, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    picks = ops.kmeanspp(x, 30, generator=torch.Generator().manual_seed(3), first="random", labeled=lab)
    assert_picks_within_rounding(x, picks, lab, u=u)
    probs, emb = _badge_inputs(gen, 1500, 6, 16, torch.float32)
    u = torch.rand(30, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    picks = ops.badge_select(probs, emb, 30, generator=torch.Generator().manual_seed(4))
    assert_picks_within_rounding(oracle.gradient_embeddings(probs, emb), picks, u=u)


@pytest.mark.parametrize("device", [d for d in DEVICES if d.id == "cuda"])
def test_cuda_picks_equal_cpu_picks_on_exact_inputs(device, gen):
    assert cuda_native()
    x = _integer_rows(gen, 5000, 64)
    lab = torch.randperm(5000, generator=gen)[:300]
    assert ops.kcenter_greedy(x.cuda(), 100, labeled=lab).cpu().tolist() == ops.kcenter_greedy(x, 100, labeled=lab).tolist()
    for first in ("norm", "random"):
        a = ops.kmeanspp(x.cuda(), 50, generator=torch.Generator().manual_seed(1), first=first, labeled=lab)
        b = ops.kmeanspp(x, 50, generator=torch.Generator().manual_seed(1), first=first, labeled=lab)
        assert a.cpu().tolist() == b.tolist()
    probs, emb = _dyadic_probs(gen, 5000, 8), _integer_rows(gen, 5000, 64)
    a = ops.badge_select(probs.cuda(), emb.cuda(), 50, generator=torch.Generator().manual_seed(2))
    b = ops.badge_select(probs, emb, 50, generator=torch.Generator().manual_seed(2))
    assert a.cpu().tolist() == b.tolist()
    # half storage is read by the kernel directly (float32 accumulation); these integers are exact in half
    h = ops.kcenter_greedy(x.cuda().half(), 30, labeled=lab)
    assert h.cpu().tolist() == ops.kcenter_greedy(x.half().float(), 30, labeled=lab).tolist()


@pytest.mark.parametrize("device", [d for d in DEVICES if d.id == "cuda"])
def test_cuda_picks_are_float64_choices_up_to_rounding(device, gen):
    assert cuda_native()
    x = clustered(gen, 5000, 64)
    lab = torch.randperm(5000, generator=gen)[:300]
    assert_picks_within_rounding(x, ops.kcenter_greedy(x.cuda(), 100, labeled=lab).cpu(), lab, check_first=True)
    for first in ("norm", "random"):
        u = torch.rand(50, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        picks = ops.kmeanspp(x.cuda(), 50, generator=torch.Generator().manual_seed(1), first=first, labeled=lab)
        assert_picks_within_rounding(x, picks.cpu(), lab, u=u)
    probs, emb = _badge_inputs(gen, 5000, 10, 64, torch.float32)
    u = torch.rand(50, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    picks = ops.badge_select(probs.cuda(), emb.cuda(), 50, generator=torch.Generator().manual_seed(2))
    assert_picks_within_rounding(oracle.gradient_embeddings(probs, emb), picks.cpu(), u=u)


def test_inputs_are_left_unchanged(backend, gen):
    for dtype in (torch.float32, torch.float64):
        x = clustered(gen, 120, 6, dtype)
        probs, emb = _badge_inputs(gen, 120, 4, 6, dtype)
        keep = [t.clone() for t in (x, probs, emb)]
        ops.kcenter_greedy(x, 5, labeled=torch.arange(3))
        ops.kcenter_greedy(x, 5)
        ops.kmeanspp(x, 5, labeled=torch.arange(3))
        ops.kmeanspp(x, 5, first="random")
        ops.badge_select(probs, emb, 5)
        for before, after in zip(keep, (x, probs, emb)):
            assert torch.equal(before, after)


OPCHECK = ("test_schema", "test_autograd_registration", "test_faketensor")


def test_opcheck_select_ops(gen):
    if not ops._native.native_devices():
        pytest.skip("mpts_fast._C is not built")
    from torch.library import opcheck

    x = clustered(gen, 64, 5)
    u = torch.rand(6, dtype=torch.float64, generator=gen)
    inf = lambda: torch.full((64,), float("inf"))  # noqa: E731
    opcheck(torch.ops.mpts_fast.select_kcenter.default, (x, inf(), 3, 6), test_utils=OPCHECK)
    opcheck(torch.ops.mpts_fast.select_kmeanspp.default, (x, inf(), 3, 6, u), test_utils=OPCHECK)
    probs, emb = _badge_inputs(gen, 64, 4, 5, torch.float32)
    from mpts_fast.coverage.engine import badge_factors

    q = badge_factors(probs, emb, torch.float32)
    a = torch.ops.mpts_fast.select_badge_sqnorms(q, emb)
    opcheck(torch.ops.mpts_fast.select_badge_sqnorms.default, (q, emb), test_utils=OPCHECK)
    opcheck(torch.ops.mpts_fast.select_badge_kmeanspp.default, (q, emb, a, inf(), 0, 6, u), test_utils=OPCHECK)


# ------------------------------------------------------- select_lower_mind (initial state)


def _native_or_skip():
    if not ops._native.native_devices():
        pytest.skip("mpts_fast._C is not built")


@pytest.mark.parametrize("N,d,L", [(1, 1, 1), (63, 7, 9), (65, 64, 8), (130, 100, 17), (1000, 33, 128), (50, 5, 0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lower_mind_matches_float64_minimum(gen, N, d, L, dtype):
    """The direct kernel behind a small labeled set: mind = min(mind, nearest centre's squared
    distance), negative rows untouched, against a dense float64 minimum."""
    _native_or_skip()
    x = randn(gen, N, d, dtype=dtype, scale=3.0)
    centres = torch.randint(N, (L,), generator=gen)
    mind = torch.rand(N, generator=gen, dtype=torch.float64).mul(4 * d).to(dtype)  # some below the true minimum
    mind[torch.rand(N, generator=gen) < 0.2] = -1.0
    mind[torch.rand(N, generator=gen) < 0.3] = float("inf")
    want = mind.double().clone()
    if L:
        dist = torch.cdist(x.double(), x.double()[centres]).pow(2).min(1).values
        keep = want >= 0
        want[keep] = torch.minimum(want[keep], dist[keep])
    got = mind.clone()
    torch.ops.mpts_fast.select_lower_mind(x, centres, got)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol * d)
    assert torch.equal(got[mind < 0], mind[mind < 0])


def test_lower_mind_duplicates_are_exactly_zero_and_huge_values_stay_ordered(gen):
    _native_or_skip()
    x = randn(gen, 200, 37)
    x[10] = 1e19  # squared distances overflow to inf: still no NaN, still >= 0
    x[150:] = x[:50]  # copies of rows 0..49
    mind = torch.full((200,), float("inf"))
    torch.ops.mpts_fast.select_lower_mind(x, torch.arange(0, 50), mind)
    assert (mind[150:] == 0).all() and (mind[:50] == 0).all()
    assert not mind.isnan().any() and (mind >= 0).all()


def test_lower_mind_refuses_bad_centres(gen):
    _native_or_skip()
    x, mind = randn(gen, 10, 3), torch.zeros(10)
    with pytest.raises(IndexError, match="centres must be row indices in \\[0, 10\\)"):
        torch.ops.mpts_fast.select_lower_mind(x, torch.tensor([0, 10]), mind)
    with pytest.raises(TypeError, match="centres must be int64"):
        torch.ops.mpts_fast.select_lower_mind(x, torch.tensor([0, 1], dtype=torch.int32), mind)
    with pytest.raises(ValueError, match="mind must be a contiguous \\(10,\\) tensor"):
        torch.ops.mpts_fast.select_lower_mind(x, torch.tensor([0]), torch.zeros(9))


@pytest.mark.parametrize("labeled_rows,d", [(1, 24), (32, 24), (33, 24), (128, 64), (129, 64), (7, 65)])
def test_initial_state_direct_and_search_paths_agree(gen, labeled_rows, d):
    """Where nearest.direct_is_faster the native path lowers mind directly (2 rows x 4 centres at
    a time, odd row and centre counts included); elsewhere a GEMM-shaped search then a direct
    recompute: both give the float64 minimum on blobs."""
    _native_or_skip()
    from mpts_fast.coverage import nearest

    x = clustered(gen, 2000 + d % 2, d)
    n = x.shape[0]
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=gen)[:labeled_rows]] = True
    direct = nearest.min_sqdist_to_labeled(x, mask, torch.float32, native=True)
    search = nearest.min_sqdist_to_labeled(x, mask, torch.float32, native=False)
    want = torch.cdist(x.double(), x.double()[mask]).pow(2).min(1).values
    want[mask] = -1
    torch.testing.assert_close(direct.double(), want, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(search.double(), want, rtol=1e-5, atol=1e-4)


def _farthest_from_mean_float64(x):
    x = x.double()
    return int((x - x.mean(0)).pow(2).sum(1).argmax())  # argmax: the first of equal maxima


@pytest.mark.parametrize("N,d", [(1, 1), (2, 5), (1023, 3), (1025, 64), (70_001, 7)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_farthest_from_mean_matches_float64(gen, N, d, dtype):
    _native_or_skip()
    x = clustered(gen, N, d, dtype=dtype)
    got = torch.ops.mpts_fast.select_farthest_from_mean(x)
    assert got.dtype == torch.long and got.dim() == 0
    assert int(got) == _farthest_from_mean_float64(x)


def test_farthest_from_mean_ties_offsets_and_duplicates(gen):
    _native_or_skip()
    x = clustered(gen, 3000, 16) + 1e4  # a large offset: the mean must be taken in double
    x[[17, 2500]] = x[0] + 50.0  # two equal farthest rows: the lower index
    assert int(torch.ops.mpts_fast.select_farthest_from_mean(x)) == 17 == _farthest_from_mean_float64(x)
    same = torch.ones(600, 4)  # every distance 0: row 0
    assert int(torch.ops.mpts_fast.select_farthest_from_mean(same)) == 0


def test_farthest_from_mean_refuses_bad_input():
    _native_or_skip()
    with pytest.raises(ValueError, match="x must have at least one row"):
        torch.ops.mpts_fast.select_farthest_from_mean(torch.zeros(0, 3))
    with pytest.raises((ValueError, RuntimeError), match="x"):
        torch.ops.mpts_fast.select_farthest_from_mean(torch.zeros(5))


def test_kcenter_without_labeled_rows_starts_farthest_from_mean(gen):
    """The native first pick (select_farthest_from_mean) is the plain path's (seeding.farthest_from_mean)."""
    _native_or_skip()
    from mpts_fast.coverage import seeding

    x = clustered(gen, 5000, 33)
    assert int(ops.kcenter_greedy(x, 3)[0]) == seeding.farthest_from_mean(x) == _farthest_from_mean_float64(x)


def test_opcheck_farthest_from_mean(gen):
    _native_or_skip()
    from torch.library import opcheck

    opcheck(torch.ops.mpts_fast.select_farthest_from_mean.default, (clustered(gen, 64, 5),), test_utils=OPCHECK)


def test_opcheck_lower_mind(gen):
    _native_or_skip()
    from torch.library import opcheck

    x = clustered(gen, 64, 5)
    mind = torch.full((64,), float("inf"))
    mind[:3] = -1
    opcheck(torch.ops.mpts_fast.select_lower_mind.default, (x, torch.arange(3), mind), test_utils=OPCHECK)
