"""The ops as a user calls them from their own code: the forms an argument may take (masks,
indices, numpy arrays, lists, numpy integers, 0-dim tensors), what is refused and how, and the
conventions (which way a score runs, -inf logits, probabilities passed as logits).

Oracles are float64 and written here or in select_oracles / mpts_testutil, independent of
mpts_fast.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import select_oracles as oracle
from mpts_fast import ops
from mpts_testutil import randn


def _pool(gen, n=60, d=6):
    centres = randn(gen, 4, d, dtype=torch.float64, scale=4.0)
    return (centres[torch.randint(4, (n,), generator=gen)] + randn(gen, n, d, dtype=torch.float64)).float()


def _mask(gen, n, count):
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=gen)[:count]] = True
    return mask


def _badge_inputs(gen, n=60, C=4, D=6, dtype=torch.float32):
    probs = torch.softmax(randn(gen, n, C, dtype=torch.float64, scale=2.0), 1).to(dtype)
    emb = torch.relu(randn(gen, n, D, dtype=torch.float64)).to(dtype)
    return probs, emb


# One call per selection op, with the labeled set as the only variable.
SELECT = {
    "kcenter_greedy": lambda x, p, e, k, lab: ops.kcenter_greedy(x, k, labeled=lab),
    "kmeanspp": lambda x, p, e, k, lab: ops.kmeanspp(x, k, generator=torch.Generator().manual_seed(5), labeled=lab),
    "badge_select": lambda x, p, e, k, lab: ops.badge_select(p, e, k, generator=torch.Generator().manual_seed(5), labeled=lab),
}


# ---------------------------------------------------------------- labeled: masks and indices


@pytest.mark.parametrize("op", list(SELECT))
@pytest.mark.parametrize(
    "as_int",
    [
        lambda m: m.long(),
        lambda m: m.int(),
        lambda m: m.to(torch.int8),
        lambda m: m.numpy().astype(np.int64),
        lambda m: [int(v) for v in m],
    ],
    ids=["long", "int32", "int8", "numpy-int64", "list-of-ints"],
)
def test_integer_01_mask_is_refused_not_read_as_indices(op, as_int, gen):
    # Before: mask.long() was read as row indices, so only rows 0 and 1 counted as labeled and
    # the picks silently differed from those of the bool mask.
    x = _pool(gen)
    probs, emb = _badge_inputs(gen)
    mask = _mask(gen, 60, 12)
    with pytest.raises(ValueError, match=r"labeled: .*only 0s and 1s.*labeled\.bool\(\)"):
        SELECT[op](x, probs, emb, 5, as_int(mask))


@pytest.mark.parametrize("op", list(SELECT))
@pytest.mark.parametrize("as_u8", [lambda m: m.to(torch.uint8), lambda m: m.numpy().astype(np.uint8)], ids=["torch", "numpy"])
def test_uint8_labeled_is_refused_with_guidance(op, as_u8, gen):
    x = _pool(gen)
    probs, emb = _badge_inputs(gen)
    mask = _mask(gen, 60, 12)
    with pytest.raises(TypeError, match=r"labeled: .*dtype uint8.*labeled\.bool\(\).*labeled\.long\(\)"):
        SELECT[op](x, probs, emb, 5, as_u8(mask))


@pytest.mark.parametrize("op", list(SELECT))
def test_every_form_of_the_same_labeled_set_gives_the_same_picks(op, backend, gen):
    x = _pool(gen)
    probs, emb = _badge_inputs(gen)
    mask = _mask(gen, 60, 12)
    idx = mask.nonzero().squeeze(1)
    want = SELECT[op](x, probs, emb, 8, mask).tolist()
    assert not mask[torch.tensor(want)].any()
    forms = {
        "numpy-bool": mask.numpy(),
        "list-of-bools": mask.tolist(),
        "index-tensor": idx,
        "index-int32": idx.int(),
        "index-numpy": idx.numpy(),
        "index-list": idx.tolist(),
        "index-reversed-with-repeats": torch.cat([idx.flip(0), idx[:3]]),
        "index-uint16": idx.to(torch.uint16),
    }
    for name, lab in forms.items():
        assert SELECT[op](x, probs, emb, 8, lab).tolist() == want, name


@pytest.mark.parametrize("op", list(SELECT))
@pytest.mark.parametrize(
    "empty",
    [[], (), np.array([]), np.array([], dtype=np.int64), torch.empty(0), torch.empty(0, dtype=torch.long),
     torch.empty(0, dtype=torch.bool)],
    ids=["list", "tuple", "numpy-float", "numpy-int", "tensor-float", "tensor-long", "tensor-bool"],
)
def test_empty_labeled_means_nothing_labeled(op, empty, gen):
    # Before: labeled=[] raised "TypeError: labeled: expected a bool mask or integer index tensor,
    # got dtype torch.float32".
    x = _pool(gen)
    probs, emb = _badge_inputs(gen)
    assert SELECT[op](x, probs, emb, 6, empty).tolist() == SELECT[op](x, probs, emb, 6, None).tolist()


def test_indices_that_look_like_a_mask_are_refused_too():
    # N = 2 and labeled = [0, 1]: both rows as indices, row 1 as a mask. Never guessed.
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    for lab in ([0, 1], [1, 0], torch.tensor([0, 0])):
        with pytest.raises(ValueError, match="only 0s and 1s, which could be either"):
            ops.kcenter_greedy(x, 1, labeled=lab)
    # the same rows as a bool mask, or indices of another length, are fine
    assert ops.kcenter_greedy(x, 1, labeled=torch.tensor([True, False])).tolist() == [1]
    assert ops.kcenter_greedy(torch.randn(3, 2), 1, labeled=[0, 1]).tolist() == [2]


@pytest.mark.parametrize(
    "lab, exc, msg",
    [
        (torch.tensor([0.0, 3.0]), TypeError, "labeled: expected a bool mask or integer"),
        (np.array([0.5]), TypeError, "labeled: expected a bool mask or integer"),
        ({1, 2}, TypeError, "labeled: expected a bool mask or row indices.*set"),
        ([[1, 2]], ValueError, "labeled: expected a 1-D"),
        ([3, -1], ValueError, r"labeled: expected row indices in \[0, 60\)"),
        (np.zeros(59, dtype=bool), ValueError, "labeled: expected a bool mask of 60 entries"),
    ],
    ids=["float-tensor", "float-numpy", "set", "nested-list", "negative", "short-mask"],
)
def test_bad_labeled_names_the_argument(lab, exc, msg, gen):
    probs, emb = _badge_inputs(gen)
    with pytest.raises(exc, match=msg):
        ops.badge_select(probs, emb, 2, labeled=lab)
    with pytest.raises(exc, match=msg):
        ops.kmeanspp(_pool(gen), 2, labeled=lab)


# ------------------------------------------------------------------- badge_select(labeled=...)


def _kmeanspp_with_centres(g: torch.Tensor, k: int, u: torch.Tensor, labeled: torch.Tensor) -> list[int]:
    """Float64 k-means++ over explicit rows g with the labeled rows as centres from the start:
    pick 0 is the largest-norm unlabeled row, pick t >= 1 the first row whose running sum of D^2
    (to the nearest labeled or picked row) exceeds u[t] * total."""
    D = oracle.sq_dists(g, g)
    norms = (g**2).sum(1).masked_fill(labeled, -1.0)
    picks = [int(norms.argmax())]
    for t in range(1, k):
        centres = labeled.clone()
        centres[picks] = True
        d2 = D[:, centres].min(1).values.masked_fill(centres, 0.0)
        cs = torch.cumsum(d2, 0)
        picks.append(int((cs > float(u[t]) * float(cs[-1])).nonzero()[0, 0]))
    return picks


@pytest.mark.parametrize("nl", [1, 17, 59])
def test_badge_select_with_labeled_matches_explicit_kmeanspp(backend, nl, gen):
    probs, emb = _badge_inputs(gen, n=90, C=5, D=7, dtype=torch.float64)
    mask = _mask(gen, 90, nl)
    k = min(20, 90 - nl)
    got = ops.badge_select(probs, emb, k, generator=torch.Generator().manual_seed(11), labeled=mask)
    u = torch.rand(k, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    g = oracle.gradient_embeddings(probs, emb)
    assert got.tolist() == _kmeanspp_with_centres(g, k, u, mask)


def test_badge_select_with_labeled_duplicates_get_zero_weight(backend, gen):
    # unlabeled exact copies of labeled rows sit at distance exactly 0: never drawn while any
    # other row has positive weight (pick 0 is the largest-norm unlabeled row, drawn by no weight)
    probs, emb = _badge_inputs(gen, n=40)
    probs, emb = torch.cat([probs, probs[:10]]), torch.cat([emb, emb[:10]])
    mask = torch.zeros(50, dtype=torch.bool)
    mask[:10] = True
    for seed in range(5):
        got = ops.badge_select(probs, emb, 29, generator=torch.Generator().manual_seed(seed), labeled=mask).tolist()
        assert not set(got) & set(range(10))
        assert not set(got[1:]) & set(range(40, 50)) - {got[0]}


def test_badge_select_labeled_whole_pool_but_k(gen):
    probs, emb = _badge_inputs(gen, n=12)
    mask = torch.ones(12, dtype=torch.bool)
    mask[[3, 8]] = False
    got = ops.badge_select(probs, emb, 2, labeled=mask, generator=torch.Generator().manual_seed(0))
    assert sorted(got.tolist()) == [3, 8]
    with pytest.raises(ValueError, match="k: expected at most the 2 unlabeled rows that can be picked, got 3"):
        ops.badge_select(probs, emb, 3, labeled=mask)


def test_badge_initial_distances_to_labeled_are_exact(gen):
    from mpts_fast.coverage import engine, nearest

    probs, emb = _badge_inputs(gen, n=40, C=6, D=9)
    probs, emb = torch.cat([probs, probs[:10]]), torch.cat([emb, emb[:10]])
    mask = torch.zeros(50, dtype=torch.bool)
    mask[:10] = True
    q = engine.badge_factors(probs, emb, torch.float32)
    mind = nearest.min_sqdist_to_labeled_badge(q, emb, mask, torch.float32)
    g = oracle.gradient_embeddings(probs, emb)
    want = oracle.sq_dists(g, g[:10]).min(1).values
    assert (mind[:10] == -1).all() and (mind[40:] == 0).all()
    torch.testing.assert_close(mind[10:40].double(), want[10:40], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ rbf_mmd2: no host reads


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("sig", [None, [0.5, 2.0], 1.5], ids=["default", "list", "float"])
@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_rbf_mmd2_runs_on_meta_tensors(dtype, sig, estimator):
    # Before: "RuntimeError: Tensor.item() cannot be called on meta tensors" (the NaN check and
    # the default bandwidths read numbers to the host).
    x = torch.empty(7, 3, dtype=dtype, device="meta", requires_grad=True)
    y = torch.empty(5, 3, dtype=dtype, device="meta")
    v = ops.rbf_mmd2(x, y, sig, estimator=estimator)
    assert v.device.type == "meta" and v.shape == () and v.dtype == dtype
    (gx,) = torch.autograd.grad(v, x)
    assert gx.shape == x.shape and gx.device.type == "meta"
    w = ops.rbf_mmd2_ladder(x, y, 3, 4.0, estimator=estimator)
    assert w.shape == () and w.dtype == dtype


def _refuse_host_reads(mp):
    """Every Python-level read of a tensor's value to the host raises (item, bool, float, int,
    tolist, numpy): on a GPU each would be a device-to-host sync."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("a tensor value was read to the host")

    for name in ("item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy"):
        mp.setattr(torch.Tensor, name, refuse)


def test_rbf_mmd2_reads_nothing_to_the_host(backend, gen):
    # Before: the NaN check read float(x.sum()) to the host on every call (a GPU sync per
    # training step), and the default bandwidths read h.
    x = randn(gen, 9, 4).requires_grad_()
    y = randn(gen, 6, 4, shift=0.5).requires_grad_()
    want = [ops.rbf_mmd2(x, y, s, estimator=e).detach().clone() for s in (None, [0.5, 1.0]) for e in ("biased", "unbiased")]
    with pytest.MonkeyPatch.context() as mp:
        _refuse_host_reads(mp)
        got = [ops.rbf_mmd2(x, y, s, estimator=e) for s in (None, [0.5, 1.0]) for e in ("biased", "unbiased")]
        torch.autograd.grad(sum(got), (x, y))
        bad = x.detach().clone()
        bad[2, 1] = float("nan")
        nan_value = ops.rbf_mmd2(bad, y.detach())
    for a, b in zip(got, want):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=0)
    assert torch.isnan(nan_value)


def _mmd_step(x, y):
    return (
        ops.rbf_mmd2(x, y)
        + ops.rbf_mmd2(x, y, [0.5, 1.0, 3.0], estimator="unbiased")
        + ops.rbf_mmd2_ladder(x, y, 3, 4.0)
    )


def test_rbf_mmd2_traces_with_torch_compile_fullgraph(backend, gen):
    # Before: torch.compile(fullgraph=True) failed at the NaN check float(t.detach().sum())
    # ("Could not guard on data-dependent expression"), and would next have broken at
    # _C.cuda_compiled(). aot_eager traces forward and backward without compiling code (fast).
    torch._dynamo.reset()
    x0, y0 = randn(gen, 12, 5), randn(gen, 10, 5, shift=0.4)
    compiled = torch.compile(_mmd_step, fullgraph=True, backend="aot_eager")
    results = {}
    for name, fn in (("eager", _mmd_step), ("compiled", compiled)):
        x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
        v = fn(x, y)
        v.backward()
        results[name] = (v.detach(), x.grad, y.grad)
    for a, b in zip(results["compiled"], results["eager"]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    bad = x0.clone()
    bad[0, 0] = float("inf")
    assert torch.isnan(compiled(bad, y0))


@pytest.mark.parametrize("num, mul", [(5, 2.0), (3, 4.0), (1, 2.0), (np.int64(4), 1.5)])
@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_rbf_mmd2_ladder_equals_mmd2_with_mmd_bandwidths(backend, num, mul, estimator, gen):
    from mpts_testutil import oracle_bandwidths, oracle_mmd2

    x, y = randn(gen, 30, 4, dtype=torch.float64), randn(gen, 25, 4, dtype=torch.float64, shift=0.3)
    got = ops.rbf_mmd2_ladder(x, y, num, mul, estimator=estimator)
    want = oracle_mmd2(x, y, oracle_bandwidths(x, y, int(num), mul), estimator)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-13)
    if (num, mul) == (5, 2.0):
        torch.testing.assert_close(ops.rbf_mmd2(x, y, estimator=estimator), got, rtol=0, atol=0)


def test_mmd_penalty_non_finite_embeddings(gen):
    from mpts_fast.training import mmd_penalty

    z_l, z_all = randn(gen, 8, 4), randn(gen, 8, 4)
    bad = z_all.clone()
    bad[3, 1] = float("nan")
    # CPU embeddings: checked by default (no device to wait on), the error names the argument
    with pytest.raises(ValueError, match=r"z_all: expected finite values.*diverged"):
        mmd_penalty(z_l, bad)
    with pytest.raises(ValueError, match=r"z_labeled: expected finite"):
        mmd_penalty(bad, z_l, num_kernels=3)
    # opted out (what an accelerator gets by default): NaN, nothing read to the host
    with pytest.MonkeyPatch.context() as mp:
        _refuse_host_reads(mp)
        value = mmd_penalty(z_l, bad, check_finite=False)
    assert torch.isnan(value)
    torch.testing.assert_close(mmd_penalty(z_l, z_all), ops.rbf_mmd2(z_l, z_all), rtol=0, atol=0)
    torch.testing.assert_close(mmd_penalty(z_l, z_all, 3), ops.rbf_mmd2(z_l, z_all, ops.mmd_bandwidths(z_l, z_all, 3)))


# ---------------------------------------------------------- integer-like arguments, every op

INT_LIKES = [7, np.int64(7), np.int32(7), torch.tensor(7), torch.tensor(7, dtype=torch.int32)]
NOT_INTS = [(True, "bool"), (7.0, "float"), (np.float64(7.0), "float64"), (torch.tensor(7.0), "float32 tensor"),
            (torch.tensor([7]), "shape \\(1,\\)"), ("7", "str")]


def _int_arg_calls(gen):
    x = _pool(gen)
    probs, emb = _badge_inputs(gen)
    a, b = randn(gen, 9, 3), randn(gen, 8, 3)
    return {
        "kcenter_greedy.k": (lambda v: ops.kcenter_greedy(x, v), "k"),
        "kmeanspp.k": (lambda v: ops.kmeanspp(x, v, generator=torch.Generator().manual_seed(0)), "k"),
        "badge_select.k": (lambda v: ops.badge_select(probs, emb, v, generator=torch.Generator().manual_seed(0)), "k"),
        "mmd_bandwidths.num": (lambda v: ops.mmd_bandwidths(a, b, v), "num"),
        "rbf_mmd2_ladder.num": (lambda v: ops.rbf_mmd2_ladder(a, b, v), "num"),
        "SnapshotAccumulator.n": (lambda v: ops.SnapshotAccumulator(v, 3).update(torch.zeros(7, 3)).scores(), "n"),
        "SnapshotAccumulator.num_classes": (lambda v: ops.SnapshotAccumulator(4, v).update(torch.zeros(4, 7)).scores(), "num_classes"),
    }


def test_integer_like_arguments_are_accepted_alike_by_every_op(gen):
    for name, (call, _) in _int_arg_calls(gen).items():
        outs = [call(v) for v in INT_LIKES]
        for o in outs[1:]:
            flat = (lambda r: torch.stack(list(r)) if isinstance(r, tuple) else r)
            assert torch.equal(flat(o), flat(outs[0])), name


@pytest.mark.parametrize("bad, what", NOT_INTS, ids=[w for _, w in NOT_INTS])
def test_bools_and_floats_are_refused_naming_the_argument(bad, what, gen):
    for name, (call, arg) in _int_arg_calls(gen).items():
        with pytest.raises(TypeError, match=rf"\b{arg}: expected an int.*{what}"):
            call(bad)


# ------------------------------------------------------------ sensitivity without biases


@pytest.mark.parametrize("drop", ["b_v", "b_w", "both"])
@pytest.mark.parametrize("output", ["sigmoid", "linear"])
def test_sensitivity_accepts_none_biases(backend, drop, output, gen):
    # Before: TypeError "b_v must be a torch.Tensor, got NoneType" for an nn.Linear(bias=False).
    from mpts_testutil import oracle_sensitivity, oracle_sensitivity_matrix

    hidden = torch.nn.Linear(5, 4, bias=drop == "b_w").double()
    out = torch.nn.Linear(4, 3, bias=drop == "b_v").double()
    x = randn(gen, 11, 5, dtype=torch.float64)
    b_v = None if drop in ("b_v", "both") else hidden.bias.detach()
    b_w = None if drop in ("b_w", "both") else out.bias.detach()
    V, W = hidden.weight.detach(), out.weight.detach()
    zeros_v = b_v if b_v is not None else torch.zeros(4, dtype=torch.float64)
    zeros_w = b_w if b_w is not None else torch.zeros(3, dtype=torch.float64)
    got = ops.sensitivity(x, V, b_v, W, b_w, output=output)
    torch.testing.assert_close(got, oracle_sensitivity(x, V, zeros_v, W, zeros_w, output=output), rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(
        ops.sensitivity_matrix(x, V, b_v, W, b_w, output=output),
        oracle_sensitivity_matrix(x, V, zeros_v, W, zeros_w, output=output),
        rtol=1e-10,
        atol=1e-13,
    )


# ------------------------------------------------ snapshot scores: -inf logits, probabilities

SCORE_FIELDS = ("entropy", "bald", "variance", "margin", "least_confidence")


def _masked_logits(gen, S, N, C, dtype):
    """(S, N, C) logits with, per item, a random set of classes at -inf in every snapshot (at
    least one class left), and the list of the classes left per item."""
    logits = randn(gen, S, N, C, dtype=dtype, scale=2.0)
    keep = []
    for i in range(N):
        k = int(torch.randint(1, C + 1, (1,), generator=gen))
        kept = torch.randperm(C, generator=gen)[:k].sort().values
        drop = torch.ones(C, dtype=torch.bool)
        drop[kept] = False
        logits[:, i, drop] = float("-inf")
        keep.append(kept)
    return logits, keep


def _assert_scores_equal_dropping_classes(scores, logits, keep, dtype):
    from mpts_testutil import oracle_snapshot

    tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=2e-6)
    for i, kept in enumerate(keep):
        want = oracle_snapshot(logits[:, i : i + 1, kept])
        for f in SCORE_FIELDS:
            got = getattr(scores, f)[i : i + 1].double()
            assert torch.isfinite(got).all(), (f, i)
            torch.testing.assert_close(got, want[f], **tol, msg=f"{f} item {i}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_neg_inf_logits_mask_classes(backend, dtype, gen):
    # Before: "ValueError: logits: expected finite" (0 * -inf in the entropy sum).
    logits, keep = _masked_logits(gen, 3, 40, 6, dtype)
    _assert_scores_equal_dropping_classes(ops.snapshot_uncertainty(logits), logits, keep, dtype)
    acc = ops.SnapshotAccumulator(40, 6, dtype=dtype)
    for s in range(3):
        acc.update(logits[s])
    _assert_scores_equal_dropping_classes(acc.scores(), logits, keep, dtype)


def test_neg_inf_in_some_snapshots_only(backend, gen):
    from mpts_testutil import oracle_snapshot

    logits = randn(gen, 4, 30, 5, dtype=torch.float64)
    logits[1, 3, 2] = float("-inf")
    logits[0, 7, :4] = float("-inf")
    want = oracle_snapshot(logits)
    acc = ops.SnapshotAccumulator(30, 5, dtype=torch.float64).update(logits)
    for scores in (ops.snapshot_uncertainty(logits), acc.scores()):
        for f in SCORE_FIELDS:
            torch.testing.assert_close(getattr(scores, f), want[f], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("bad", ["nan", "+inf", "all-neg-inf"])
def test_nan_plus_inf_and_all_masked_items_still_raise(backend, bad, gen):
    logits = randn(gen, 2, 10, 4)
    if bad == "all-neg-inf":
        logits[:, 4, :] = float("-inf")
    else:
        logits[1, 4, 2] = float(bad.replace("+", ""))
    with pytest.raises(ValueError, match=r"logits: expected finite"):
        ops.snapshot_uncertainty(logits, check_finite=True)
    with pytest.raises(ValueError, match=r"logits_s: expected finite"):
        ops.SnapshotAccumulator(10, 4).update(logits).scores(check_finite=True)
    # unchecked (no host read): the item's entropy is poisoned, the others' scores are untouched
    for scores in (ops.snapshot_uncertainty(logits), ops.SnapshotAccumulator(10, 4).update(logits).scores()):
        assert not torch.isfinite(scores.entropy[4])
        assert torch.isfinite(torch.stack(tuple(scores))[:, torch.arange(10) != 4]).all()


def test_native_snapshot_kernels_take_neg_inf_logits(gen):
    # Before: the native fold computed e * (l - max) = 0 * -inf = NaN for a masked class.
    if not ops._native.native_devices():
        pytest.skip("mpts_fast._C is not built")
    logits = randn(gen, 2, 8, 4)
    logits[:, :, 0] = float("-inf")
    assert torch.isfinite(torch.ops.mpts_fast.snapshot_scores(logits)).all()


@pytest.mark.parametrize("source", ["softmax", "softmax-float64", "one-hot"])
def test_probabilities_passed_as_logits_warn(backend, source, gen, recwarn):
    logits = randn(gen, 3, 100, 5, scale=3.0)
    probs = torch.softmax(logits.double() if source == "softmax-float64" else logits, -1)
    if source == "one-hot":
        probs = torch.nn.functional.one_hot(logits.argmax(-1), 5).float()
    with pytest.warns(UserWarning, match=r"logits looks like probabilities.*before softmax"):
        ops.snapshot_uncertainty(probs, check_finite=True)
    acc = ops.SnapshotAccumulator(100, 5, dtype=probs.dtype).update(probs[0]).update(probs[1])
    with pytest.warns(UserWarning, match=r"logits_s looks like probabilities"):
        acc.update(probs[2]).scores(check_finite=True)  # the first snapshot's flag, read here
    recwarn.clear()
    ops.snapshot_uncertainty(probs)  # unchecked: no host read, no warning
    acc.scores()
    assert not [w for w in recwarn if "probabilities" in str(w.message)]


def test_logits_and_log_probabilities_do_not_warn(backend, gen):
    import warnings

    logits = randn(gen, 3, 100, 5, scale=3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for x in (logits, torch.log_softmax(logits, -1), torch.rand(3, 100, 5), torch.zeros(2, 10, 1)):
            ops.snapshot_uncertainty(x)
            ops.SnapshotAccumulator(x.shape[1], x.shape[2]).update(x).scores()


# ---------------------------------------------------------- SnapshotScores: ranking direction


def test_most_uncertain_ranks_every_field_the_right_way(gen):
    logits = randn(gen, 3, 200, 6, scale=2.0)
    s = ops.snapshot_uncertainty(logits)
    for f in SCORE_FIELDS:
        got = s.most_uncertain(15, f).tolist()
        values = getattr(s, f).tolist()
        order = sorted(range(200), key=lambda i: (values[i], i) if f == "margin" else (-values[i], i))
        assert got == order[:15], f
        assert torch.equal(s.uncertainty(f).argsort(descending=True, stable=True)[:15], torch.tensor(order[:15])), f
    # margin runs the other way: its most uncertain item has the smallest margin
    assert s.margin[s.most_uncertain(1, "margin")] == s.margin.min()
    assert torch.equal(s.uncertainty("margin"), -s.margin) and torch.equal(s.uncertainty("entropy"), s.entropy)
    assert s.most_uncertain(np.int64(0)).tolist() == []


def test_most_uncertain_ties_and_bad_arguments():
    s = ops.snapshot_uncertainty(torch.zeros(1, 5, 3))  # every item uniform: all tied
    assert s.most_uncertain(3, "margin").tolist() == [0, 1, 2]
    assert s.most_uncertain(3, "entropy").tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="field: expected one of"):
        s.most_uncertain(2, "confidence")
    with pytest.raises(ValueError, match="k: expected at most the 5 scored items, got 6"):
        s.most_uncertain(6)
    with pytest.raises(TypeError, match="k: expected an int"):
        s.most_uncertain(2.0)
