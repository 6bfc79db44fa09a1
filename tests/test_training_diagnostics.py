"""The round diagnostics of training/diagnostics.py: the MMD-vs-CE gradient probe against a float64 hand computation,
the end-of-training MMD² next to its pool-vs-pool null, the fit on the labeled set and the underfitting note."""
import copy
import math

import pytest
import torch
from torch.nn import functional as F

from mpts_fast.models.mlp import MLP
from mpts_fast.training import TrainConfig, Trainer
from mpts_fast.training.diagnostics import GradientProbe, labeled_fit, mmd_gap, underfit_note
from mpts_fast.training.mmd import mmd_penalty


def _hand_mmd2(z_l: torch.Tensor, z_all: torch.Tensor) -> torch.Tensor:
    """Biased MMD² under the five-kernel DAN ladder 2σ_q² = h·2^(q−2), h the mean off-diagonal squared distance of the
    joint batch (no gradient through h): written out, in the input's dtype."""
    z = torch.cat([z_l, z_all])
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    n_all = z.shape[0]
    h = d2.detach().sum() / (n_all * n_all - n_all)
    k = sum(torch.exp(-d2 / (h * 2.0 ** (q - 2))) for q in range(5))
    n = z_l.shape[0]
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


@pytest.mark.parametrize("weight", [1.0, 0.1])
def test_the_gradient_probe_matches_a_float64_hand_computation(weight):
    torch.manual_seed(0)
    model = MLP((5,), 3, hidden=8, dropout=0.0)
    x, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    x_pool = torch.randn(6, 5) + 0.5
    # the trainer's step, float32: the probe's pass, then the step's own backward
    z = model.embed(torch.cat([x, x_pool]))
    weighted = weight * mmd_penalty(z[:6], z[6:])
    loss = F.cross_entropy(model.head(z[:6]), y) + weighted
    probe = GradientProbe(first_step=0, every=1)
    params = list(model.parameters())
    probe.before_backward(params, weighted)
    loss.backward()
    probe.after_backward()
    got = probe.record()
    # by hand, float64: each gradient on its own, over the encoder's parameters (the head's are not the MMD term's)
    m64 = copy.deepcopy(model).double()
    encoder = list(m64.encoder.parameters())
    z64 = m64.embed(torch.cat([x, x_pool]).double())
    g_ce = torch.autograd.grad(F.cross_entropy(m64.head(z64[:6]), y), encoder, retain_graph=True)
    g_mmd = torch.autograd.grad(weight * _hand_mmd2(z64[:6], z64[6:]), encoder)
    g_ce, g_mmd = torch.cat([g.reshape(-1) for g in g_ce]), torch.cat([g.reshape(-1) for g in g_mmd])
    ratio = float(g_mmd.norm() / g_ce.norm())
    cosine = float(g_ce @ g_mmd / (g_ce.norm() * g_mmd.norm()))
    assert got["grad_samples"] == 1 and got["grad_every"] == 1
    assert got["grad_ratio"] == pytest.approx(ratio, rel=1e-4)
    assert got["grad_cosine"] == pytest.approx(cosine, rel=1e-4, abs=1e-5)
    assert abs(cosine) > 0.01 and ratio > 0  # not a degenerate case


def _digits(n=60):
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.tensor(d.data[:n] / 16, dtype=torch.float32), torch.tensor(d.target[:n])


def test_the_trainer_probes_the_second_half_and_the_probe_leaves_training_as_it_was(monkeypatch):
    from mpts_fast.training.diagnostics import GradientProbe

    x, y = _digits()
    lab = torch.arange(30)
    cfg = TrainConfig(epochs=30, lr=1e-3, batch_size=64, mmd_weight=1.0, snapshots=None)

    def fit():
        torch.manual_seed(0)
        return Trainer(lambda: MLP((64,), 10, dropout=0.0), cfg).fit(x, lab, y[lab], seed=3)

    probed = fit()
    # 30 labels, batch 64: one step per epoch; the second half is steps 15..29, sampled every 13th
    assert probed.gradient_probe["grad_samples"] == len(range(15, 30, 13)) == 2
    assert math.isfinite(probed.gradient_probe["grad_ratio"]) and -1 <= probed.gradient_probe["grad_cosine"] <= 1
    monkeypatch.setattr(GradientProbe, "wants", lambda self, step: False)
    plain = fit()
    assert plain.gradient_probe["grad_samples"] == 0 and plain.gradient_probe["grad_ratio"] is None
    for a, b in zip(probed.model.state_dict().values(), plain.model.state_dict().values()):
        assert torch.equal(a, b)
    no_mmd = Trainer(lambda: MLP((64,), 10, dropout=0.0), TrainConfig(epochs=2)).fit(x, lab, y[lab], seed=3)
    assert no_mmd.gradient_probe is None


class _Identity:
    """A stand-in trained model whose features are the inputs and whose logits are given."""

    def __init__(self, logits=None):
        self._logits = logits

    def embeddings(self, x):
        return x

    def logits(self, x):
        return self._logits[: x.shape[0]]


def test_mmd_gap_sets_the_labeled_sets_distance_beside_a_pool_null():
    g = torch.Generator().manual_seed(0)
    pool = torch.randn(600, 4, generator=g)
    pool[:40] += 3.0  # the labeled items sit apart from the pool
    labeled, unlabeled = torch.arange(40), torch.arange(40, 600)
    gap = mmd_gap(_Identity(), pool, labeled, unlabeled, torch.Generator().manual_seed(1), rows=200)
    assert gap["mmd2_rows_labeled"] == 40 and gap["mmd2_rows_pool"] == 200 and gap["mmd2_null_draws"] == 5
    assert gap["mmd2_labeled_pool"] > 0.3 and abs(gap["mmd2_pool_null"]) < 0.05
    assert 0 < gap["mmd2_pool_null_std"] < 0.05  # the null's draws differ
    small = mmd_gap(_Identity(), pool, labeled, torch.arange(40, 140), torch.Generator().manual_seed(1))
    assert small["mmd2_rows_pool"] == 50 and small["mmd2_rows_labeled"] == 40 and small["mmd2_pool_null_std"] > 0
    same = mmd_gap(_Identity(), pool, torch.arange(40, 80), torch.arange(80, 600), torch.Generator().manual_seed(1))
    assert abs(same["mmd2_labeled_pool"]) < 0.05  # labeled like the pool: as small as the null
    assert mmd_gap(_Identity(), pool, torch.arange(1), unlabeled, torch.Generator()) is None


def test_labeled_fit_and_the_underfitting_note():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [2.0, 0.0]])
    y = torch.tensor([0, 1, 1, 0])
    fit = labeled_fit(_Identity(logits), torch.zeros(4, 1), torch.arange(4), y, prefix="selection_")
    assert fit["selection_train_accuracy"] == 0.75
    assert fit["selection_train_loss"] == pytest.approx(float(F.cross_entropy(logits.double(), y)))
    assert underfit_note({"train_accuracy": 0.95, "selection_train_accuracy": 1.0}) is None
    note = underfit_note({"round": 2, "n_labeled": 40, "train_accuracy": 0.95, "selection_train_accuracy": 0.5})
    assert "selection model 0.50" in note and "round 2" in note and "task model" not in note
