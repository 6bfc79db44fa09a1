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

BACKENDS = ["native", "reference"]


@pytest.fixture(params=BACKENDS)
def backend(request, set_backend):
    if request.param == "native" and not ops._native.native_devices():
        pytest.skip("mpts_fast._C is not built")
    set_backend(request.param)
    return request.param


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
    with pytest.raises(ValueError, match=r"labeled .*only 0s and 1s.*labeled\.bool\(\)"):
        SELECT[op](x, probs, emb, 5, as_int(mask))


@pytest.mark.parametrize("op", list(SELECT))
@pytest.mark.parametrize("as_u8", [lambda m: m.to(torch.uint8), lambda m: m.numpy().astype(np.uint8)], ids=["torch", "numpy"])
def test_uint8_labeled_is_refused_with_guidance(op, as_u8, gen):
    x = _pool(gen)
    probs, emb = _badge_inputs(gen)
    mask = _mask(gen, 60, 12)
    with pytest.raises(TypeError, match=r"labeled has dtype uint8.*labeled\.bool\(\).*labeled\.long\(\)"):
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
    # Before: labeled=[] raised "TypeError: labeled must be a bool mask or an integer index tensor,
    # got dtype torch.float32".
    x = _pool(gen)
    probs, emb = _badge_inputs(gen)
    assert SELECT[op](x, probs, emb, 6, empty).tolist() == SELECT[op](x, probs, emb, 6, None).tolist()


def test_indices_that_look_like_a_mask_are_refused_too():
    # N = 2 and labeled = [0, 1]: both rows as indices, row 1 as a mask. Never guessed.
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    for lab in ([0, 1], [1, 0], torch.tensor([0, 0])):
        with pytest.raises(ValueError, match="could be a 0/1 mask or row indices"):
            ops.kcenter_greedy(x, 1, labeled=lab)
    # the same rows as a bool mask, or indices of another length, are fine
    assert ops.kcenter_greedy(x, 1, labeled=torch.tensor([True, False])).tolist() == [1]
    assert ops.kcenter_greedy(torch.randn(3, 2), 1, labeled=[0, 1]).tolist() == [2]


@pytest.mark.parametrize(
    "lab, exc, msg",
    [
        (torch.tensor([0.0, 3.0]), TypeError, "labeled must be a bool mask or an integer"),
        (np.array([0.5]), TypeError, "labeled must be a bool mask or an integer"),
        ({1, 2}, TypeError, "labeled must be a bool mask or row indices.*set"),
        ([[1, 2]], ValueError, "labeled must be 1-D"),
        ([3, -1], ValueError, r"labeled indices must be in \[0, 60\)"),
        (np.zeros(59, dtype=bool), ValueError, "labeled as a bool mask must have 60 entries"),
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
    with pytest.raises(ValueError, match="k = 3 exceeds the 2 unlabeled rows"):
        ops.badge_select(probs, emb, 3, labeled=mask)


def test_badge_initial_distances_to_labeled_are_exact(gen):
    from mpts_fast.select import engine, nearest

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
