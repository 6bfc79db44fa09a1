import pytest
import torch

from mpts_fast import ops
from mpts_fast.models import build_model
from mpts_fast.training import TrainConfig, Trainer, mmd_penalty

from al_fixtures import blobs


def _trainer(cfg, data):
    return Trainer(lambda: build_model("mlp", data.input_shape, data.num_classes, hidden=16), cfg)


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(lr=0), dict(mmd_weight=-1), dict(snapshots=-1),
                                 dict(cycle_min_factor=0), dict(cycle_steps=0)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        TrainConfig(**{"epochs": 10, **bad})


def test_fit_is_deterministic_and_keeps_snapshots():
    data = blobs()
    cfg = TrainConfig(epochs=6, lr=1e-2, batch_size=8, mmd_weight=1.0, snapshots=3, cycle_steps=2)
    lab = torch.arange(12)  # 2 steps per epoch: the last 3 epochs hold 3 cycles of 2 steps
    a = _trainer(cfg, data).fit(data.x_train, lab, data.y_train[lab], seed=5)
    b = _trainer(cfg, data).fit(data.x_train, lab, data.y_train[lab], seed=5)
    assert len(a.snapshots) == 3
    for k, v in a.model.state_dict().items():
        torch.testing.assert_close(v, b.model.state_dict()[k], rtol=0, atol=0)
    # the last snapshot is the final weights
    for k, v in a.snapshots[-1].items():
        torch.testing.assert_close(v, a.model.state_dict()[k], rtol=0, atol=0)


def test_posterior_scores_match_the_op_on_stacked_logits():
    data = blobs()
    cfg = TrainConfig(epochs=4, lr=1e-2, snapshots=2, cycle_steps=1, ensemble_size=2)
    lab = torch.arange(10)
    t = _trainer(cfg, data).fit(data.x_train, lab, data.y_train[lab], seed=1)
    for source in ("snapshots", "ensemble", "mc_dropout"):
        stacked = torch.stack(list(t.posterior_logits(data.x_test, source, passes=3, seed=7)))
        want = ops.snapshot_uncertainty(stacked)
        got = t.posterior_scores(data.x_test, source, passes=3, seed=7)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
        p = t.mean_probs(data.x_test, source, passes=3, seed=7)
        torch.testing.assert_close(p, torch.softmax(stacked, -1).mean(0), rtol=1e-5, atol=1e-6)
    assert not any(m.training for m in t.model.modules())  # MC dropout leaves the model in eval mode


def test_mc_dropout_needs_dropout():
    data = blobs()
    t = Trainer(lambda: build_model("mlp", data.input_shape, 3, hidden=8, dropout=0.0), TrainConfig(epochs=1)).fit(
        data.x_train, torch.arange(6), data.y_train[:6], seed=0)
    with pytest.raises(ValueError, match="dropout"):
        t.posterior_scores(data.x_test, "mc_dropout")


def test_mmd_penalty_gradient_reaches_both_embeddings():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = (torch.randn(9, 4, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    value = mmd_penalty(a, b)
    value.backward()
    assert value.item() > 0 and a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
    # the DAN ladder (docs/mpts.md): 2σ_q² = h·2^(q−2) with h the mean off-diagonal squared distance of [a; b]
    z = torch.cat([a, b]).detach()
    d2 = torch.cdist(z, z) ** 2
    h = d2.sum() / (z.shape[0] * (z.shape[0] - 1))
    k = sum(torch.exp(-d2 / (h * 2.0 ** (q - 2))) for q in range(5))
    n = a.shape[0]
    want = k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()
    torch.testing.assert_close(value.detach(), want, rtol=1e-9, atol=1e-12)


def test_fit_rejects_empty_labeled_set():
    data = blobs()
    with pytest.raises(ValueError, match="labeled"):
        _trainer(TrainConfig(epochs=1), data).fit(data.x_train, torch.zeros(0, dtype=torch.int64),
                                                  torch.zeros(0, dtype=torch.int64), seed=0)


def test_fit_reports_a_diverged_loss_once_per_epoch():
    # without the MMD term nothing else checks: a NaN loss must stop the round with a message, not train on silently
    data = blobs()
    x = data.x_train.clone()
    x[3, 0] = float("nan")
    lab = torch.arange(12)
    with pytest.raises(FloatingPointError, match="diverged.*epoch 1 of 2"):
        _trainer(TrainConfig(epochs=2, mmd_weight=0.0), data).fit(x, lab, data.y_train[lab], seed=0)
