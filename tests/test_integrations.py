"""mpts_fast.integrations against baal and scikit-activeml themselves (optional test extras: each part skips cleanly
without its library), and the package importing without either."""
from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest
import torch


@pytest.fixture
def rng(request):
    return np.random.default_rng(abs(hash(request.node.nodeid)) % 2**32)


@pytest.mark.parametrize("library,module", [("baal", "mpts_fast.integrations.baal"),
                                            ("skactiveml", "mpts_fast.integrations.skactiveml")])
def test_package_imports_without_the_libraries(monkeypatch, library, module):
    for name in [m for m in sys.modules if m == library or m.startswith(library + ".") or m == module]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, library, None)  # import baal / skactiveml now fails
    importlib.import_module("mpts_fast.integrations")
    with pytest.raises(ImportError, match="pip install"):
        importlib.import_module(module)


def _softmax(x, axis=1):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


# ------------------------------------------------------------------------------------------------------------ baal

@pytest.fixture
def baal():
    heuristics = pytest.importorskip("baal.active.heuristics")
    from mpts_fast.integrations import baal as ours

    return heuristics, ours


@pytest.mark.parametrize("name", ["BALD", "Entropy", "Margin", "Variance"])
@pytest.mark.parametrize("kind", ["probs", "logits", "probs64"])
def test_baal_heuristics_equal_baal(baal, rng, name, kind):
    theirs_mod, ours_mod = baal
    # N = 2,000: float32 near-ties occur (docs/integrations.md gives the measured counts)
    x = (rng.normal(size=(2000, 6, 9)) * 3).astype(np.float64 if kind == "probs64" else np.float32)
    if kind != "logits":
        x = _softmax(x).astype(x.dtype)
    if name == "Variance" and kind == "logits":
        with pytest.raises(ValueError, match="expected probabilities"):
            ours_mod.Variance().get_ranks(x)
        return
    theirs, ours = getattr(theirs_mod, name)(), getattr(ours_mod, name)()
    ranks_t, scores_t = theirs.get_ranks(x)
    ranks_o, scores_o = ours.get_ranks(x)
    tol = 1e-12 if kind == "probs64" else 2e-6
    np.testing.assert_allclose(scores_o, scores_t, atol=tol, rtol=tol * 10)
    if kind == "probs64":
        assert ranks_o.tolist() == ranks_t.tolist()
    else:  # float32: only items whose scores tie within rounding change places, and the same items lead
        moved = np.flatnonzero(ranks_o != ranks_t)
        assert np.abs(scores_t[ranks_o[moved]] - scores_t[ranks_t[moved]]).max(initial=0) <= tol
        assert set(ranks_o[:100].tolist()) == set(ranks_t[:100].tolist())
    assert ours.reversed == theirs.reversed  # margin: lowest first, like baal's
    torch_in = ours.get_uncertainties(torch.from_numpy(x))  # baal converts tensors; so do we
    np.testing.assert_allclose(torch_in, scores_o)


@pytest.mark.parametrize("name", ["Entropy", "Margin"])
def test_baal_single_pass_predictions(baal, rng, name):
    theirs_mod, ours_mod = baal
    x = _softmax(rng.normal(size=(200, 4))).astype(np.float32)
    np.testing.assert_allclose(getattr(ours_mod, name)().get_uncertainties(x),
                               getattr(theirs_mod, name)().get_uncertainties(x), atol=2e-6)


def test_baal_variance_sum_and_bad_inputs(baal, rng):
    theirs_mod, ours_mod = baal
    x = _softmax(rng.normal(size=(100, 5, 4))).astype(np.float32)
    np.testing.assert_allclose(ours_mod.Variance(reduction="sum").get_uncertainties(x),
                               theirs_mod.Variance(reduction="sum").get_uncertainties(x), atol=1e-6)
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        ours_mod.Variance(reduction="max")
    with pytest.raises(ValueError, match=r"\[N, C\] or \[N, C, iterations\]"):
        ours_mod.BALD().get_uncertainties(np.ones((3, 2, 4, 5), np.float32) / 2)
    with pytest.raises(ValueError, match="a list of 2"):
        ours_mod.Entropy().get_uncertainties([x, x])
    with pytest.raises(ValueError, match="at least 2 classes"):
        ours_mod.Entropy().get_uncertainties(np.full((4, 1, 3), 0.5, np.float32))
    with pytest.raises(ValueError, match=r"BALD: expected predictions \[N, C, iterations\]"):
        ours_mod.BALD().get_uncertainties(x[:, :, 0])


def test_baal_active_learning_loop_labels_what_baal_labels(baal, rng):
    pytest.importorskip("baal.active.active_loop")
    from baal.active import ActiveLearningDataset, ActiveLearningLoop

    theirs_mod, ours_mod = baal
    data = torch.utils.data.TensorDataset(torch.arange(50).float().unsqueeze(1))
    probs = _softmax(rng.normal(size=(50, 3, 6)) * 2).astype(np.float32)

    def labelled_after_step(heuristic):
        active = ActiveLearningDataset(data)
        active.label([0, 1])
        pool_rows = np.flatnonzero(~active.labelled)
        loop = ActiveLearningLoop(active, lambda pool, **kw: probs[pool_rows], heuristic=heuristic, query_size=5)
        assert loop.step()
        return sorted(np.flatnonzero(active.labelled).tolist())

    assert labelled_after_step(ours_mod.BALD()) == labelled_after_step(theirs_mod.BALD())


# ------------------------------------------------------------------------------------------------ scikit-activeml

@pytest.fixture
def skal():
    pool = pytest.importorskip("skactiveml.pool")
    from mpts_fast.integrations import skactiveml as ours

    return pool, ours


def _xy(rng, n=600, d=7, n_labeled=15):
    X = rng.normal(size=(n, d))
    y = np.full(n, np.nan)
    y[rng.choice(n, n_labeled, replace=False)] = rng.integers(0, 3, n_labeled)
    return X, y


def test_coreset_picks_and_utilities_equal_skactiveml(skal, rng):
    pool, ours = skal
    X, y = _xy(rng)
    q_t, u_t = pool.CoreSet(random_state=0).query(X, y, batch_size=12, return_utilities=True)
    q_o, u_o = ours.CoreSet().query(X, y, batch_size=12, return_utilities=True)
    assert q_o.tolist() == q_t.tolist()
    assert np.array_equal(np.isnan(u_o), np.isnan(u_t))
    np.testing.assert_allclose(u_o, u_t, atol=1e-10)
    assert ours.CoreSet().query(X.astype(np.float32), y, batch_size=12).tolist() == q_t.tolist()


def test_coreset_with_candidates(skal, rng):
    pool, ours = skal
    X, y = _xy(rng)
    cand = rng.choice(len(X), 200, replace=False)
    assert (ours.CoreSet().query(X, y, candidates=cand, batch_size=8).tolist()
            == pool.CoreSet(random_state=0).query(X, y, candidates=cand, batch_size=8).tolist())
    new = rng.normal(size=(150, X.shape[1]))
    q_t, u_t = pool.CoreSet(random_state=0).query(X, y, candidates=new, batch_size=8, return_utilities=True)
    q_o, u_o = ours.CoreSet().query(X, y, candidates=new, batch_size=8, return_utilities=True)
    assert q_o.tolist() == q_t.tolist() and u_o.shape == u_t.shape == (8, 150)
    np.testing.assert_allclose(u_o, u_t, atol=1e-10)


def test_coreset_without_labels_starts_farthest_from_the_mean(skal, rng):
    _, ours = skal
    X, _ = _xy(rng)
    q = ours.CoreSet().query(X, np.full(len(X), np.nan), batch_size=4)
    assert q[0] == int(np.argmax(((X - X.mean(0)) ** 2).sum(1)))
    assert q.tolist() == ops_kcenter(X, 4)
    with pytest.raises(ValueError, match="metric"):
        ours.CoreSet(metric="cosine").query(X, np.full(len(X), np.nan))
    with pytest.warns(UserWarning, match="batch_size"):  # skactiveml's rule: fewer candidates, smaller batch
        assert sorted(ours.CoreSet().query(X[:5], np.array([0, 1, np.nan, np.nan, np.nan]), batch_size=4)) == [2, 3, 4]


def ops_kcenter(X, k):
    from mpts_fast import ops

    return ops.kcenter_greedy(torch.from_numpy(X), k).tolist()


def test_badge_first_pick_equals_skactiveml_and_is_reproducible(skal, rng):
    pool, ours = skal
    from skactiveml.classifier import SklearnClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = _xy(rng, n_labeled=30)
    clf = SklearnClassifier(LogisticRegression(max_iter=200), classes=[0, 1, 2])
    theirs = pool.Badge(random_state=0).query(X, y, clf, batch_size=6)
    q = ours.Badge(random_state=0).query(X, y, clf, batch_size=6)
    assert q[0] == theirs[0]  # the largest gradient norm; later picks are draws from another generator
    assert len(set(q.tolist())) == 6 and np.isnan(y[q]).all()
    assert ours.Badge(random_state=0).query(X, y, clf, batch_size=6).tolist() == q.tolist()
    with pytest.raises(ValueError, match="return_utilities"):
        ours.Badge().query(X, y, clf, return_utilities=True)
