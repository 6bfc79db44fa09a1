"""Selection rules and metrics of the study on hand-checked examples."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mpts_fast import ops
from mpts_fast.models.sigmoid_net import NetStack
from mpts_fast.study.config import Hyper, StudyConfig, query_count
from mpts_fast.study.metrics import batched_macro_f1, batched_r2, epochs_to_convergence
from mpts_fast.study.methods import sasla_select
from mpts_fast.study.rules import (ensemble_variance, majority_vote, normalised_entropy, sasla_keep,
                                       top_queries)
from mpts_fast.study.train import Problem


def test_sasla_keep_hand_checked():
    # mean Φ = 1.77 / 6 = 0.295, threshold (1 − 0.9)·0.295 = 0.0295: 0.01 and 0.02 go, 0.04 stays
    phi = torch.tensor([0.5, 0.01, 0.3, 0.02, 0.9, 0.04])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert sasla_keep(phi, labels, 0.9).tolist() == [True, False, True, False, True, True]
    # β = 0.5: threshold 0.1475 keeps 0.5, 0.3, 0.9; class 2 still has 0.9
    assert sasla_keep(phi, labels, 0.5).tolist() == [True, False, True, False, True, False]


def test_sasla_per_class_floor():
    # mean Φ = 12.031 / 6 ≈ 2.005, threshold 0.2005: class 1 loses both, so its best (0.02) is kept
    phi = torch.tensor([1.0, 2.0, 0.01, 0.02, 9.0, 0.001])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert sasla_keep(phi, labels, 0.9).tolist() == [True, True, False, True, True, False]
    # β = 0: only Φ > mean survives (9.0); classes 0 and 1 keep their best pattern
    assert sasla_keep(phi, labels, 0.0).tolist() == [False, True, False, True, True, False]
    # regression: no labels, at least the most informative pattern
    assert sasla_keep(torch.ones(4), None, 0.0).tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="beta"):
        sasla_keep(phi, labels, 1.5)
    with pytest.raises(ValueError, match="phi"):
        sasla_keep(torch.tensor([1.0, float("nan")]), None)
    with pytest.raises(ValueError, match="labels"):
        sasla_keep(phi, labels[:3])


def test_sasla_select_uses_the_kernel_and_patterns_never_return(gen):
    M, N, I = 2, 40, 3
    x = torch.rand(N, I, generator=gen) * 4 + 1
    labels = torch.arange(N) % 4
    prob = Problem(x, torch.zeros(N, 4), torch.full((M, I), 0.5), torch.full((M, I), -1.5),
                   torch.ones(M, 1), torch.zeros(M, 1))
    net = NetStack(M, I, 8, 4, generators=[torch.Generator().manual_seed(m) for m in range(M)])
    net.theta.mul_(4)
    mask = torch.ones(M, N, dtype=torch.bool)
    mask[1, ::3] = False
    history = [mask.clone()]
    for _ in range(6):
        expected = mask.clone()
        for m in range(M):
            idx = mask[m].nonzero().flatten()
            xs = x[idx] * 0.5 - 1.5
            V, bv, W, bw = net.member(m)
            phi = ops.sensitivity(xs, V, bv, W, bw)
            expected[m, idx[~sasla_keep(phi, labels[idx], 0.0)]] = False
        sasla_select(net, prob, mask, labels, beta=0.0)
        assert torch.equal(mask, expected)
        assert not (mask & ~history[-1]).any()  # removed patterns never return
        history.append(mask.clone())
    for m in range(M):  # the floor: every class keeps a pattern
        assert set(labels[mask[m]].tolist()) == {0, 1, 2, 3}


def test_uncertainty_utilities():
    z = torch.tensor([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]])
    h = normalised_entropy(z)
    assert h[0].item() == pytest.approx(1.0) and h[1].item() < 1e-3
    p = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 0.0]]])  # (E=3, n=1, C=2)
    assert ensemble_variance(p).item() == pytest.approx(2 * (2 / 9))
    votes = torch.tensor([[[0.6, 0.4]], [[0.1, 0.9]], [[0.55, 0.45]]])
    assert majority_vote(votes).tolist() == [0]
    tie = torch.tensor([[[0.6, 0.4, 0.0]], [[0.0, 0.2, 0.8]]])  # one vote each: larger mean wins (0.4 vs 0.3)
    assert majority_vote(tie).tolist() == [2]
    u = torch.tensor([[0.9, 0.1, 0.5, 0.7]])
    pool = torch.tensor([[False, True, True, True]])
    assert sorted(top_queries(u, pool, 2)[0].tolist()) == [2, 3]


def test_batched_metrics_match_sklearn(gen):
    from sklearn.metrics import f1_score, r2_score

    pred = torch.randint(0, 4, (5, 30), generator=gen)
    true = torch.randint(0, 3, (5, 30), generator=gen)
    pred[0] = true[0]
    got = batched_macro_f1(pred, true, 4)
    for r in range(5):
        assert got[r].item() == pytest.approx(f1_score(true[r], pred[r], average="macro", zero_division=0))
    yp, yt = torch.randn(3, 20, generator=gen), torch.randn(3, 20, generator=gen)
    for r, v in enumerate(batched_r2(yp, yt)):
        assert v.item() == pytest.approx(r2_score(yt[r], yp[r]))


def test_epochs_to_convergence_definition():
    losses = np.concatenate([np.linspace(1.0, 0.1, 20), np.full(30, 0.1)])
    # the first window entirely on the plateau ends at epoch 29 (epochs 20..29); window 10, std 0
    assert epochs_to_convergence(losses, 10, 1e-6) == 29
    noisy = losses.copy()
    noisy[-1] = 0.2  # the last window is above the threshold: never converged
    assert epochs_to_convergence(noisy, 10, 1e-3) is None
    assert epochs_to_convergence(np.full(5, 0.1), 10, 1e-3) is None
    assert epochs_to_convergence(np.full(12, 0.1), 10, 1e-3) == 10
    with pytest.raises(ValueError, match="window"):
        epochs_to_convergence(losses, 1, 1e-3)
    assert math.isfinite(epochs_to_convergence(np.full(10, 0.5), 10, 1e-3))


def test_query_size_and_config_validation():
    assert query_count(108, 0.02) == 2 and query_count(108, 1) == 1 and query_count(108, 5) == 5
    assert query_count(10, 0.02) == 1  # never zero
    ok = StudyConfig("iris", hyper=Hyper(8, 0.1, 0.0, 0.9))
    assert ok.validate("classification") is ok
    for bad, match in [({"query_size": 1.5}, "query_size"), ({"trials": 0}, "trials"), ({"beta": 2.0}, "beta"),
                       ({"methods": ("passive", "bogus")}, "methods"), ({"norm": "l3"}, "norm"),
                       ({"hyper": Hyper(8, -0.1, 0.0, 0.9)}, "lr")]:
        with pytest.raises(ValueError, match=match):
            StudyConfig(**{"dataset": "iris", "hyper": Hyper(8, 0.1, 0.0, 0.9), **bad}).validate("classification")


def test_outputs_are_strict_json():
    from mpts_fast.study.summary import jsonable

    assert jsonable({"a": [1.0, float("inf")], "b": float("nan"), "c": (2, "x")}) == {"a": [1.0, None], "b": None,
                                                                                      "c": [2, "x"]}


def test_statistics_without_scikit_posthocs(monkeypatch):
    import sys

    from mpts_fast.study import stats

    monkeypatch.setitem(sys.modules, "scikit_posthocs", None)  # import fails as if not installed
    scores = np.random.default_rng(0).random((6, 3))
    with pytest.warns(UserWarning, match="scikit-posthocs"):
        out = stats.summarise(scores, ["a", "b", "c"], True, "accuracy")
    assert out["nemenyi_p"] is None and 0 <= out["friedman_p"] <= 1 and len(out["wilcoxon"]) == 3
