"""CDAL, DeepFool and ALFA-Mix against independent float64 re-statements of the reference algorithms (the ALFA-Mix
repository's query strategies), written here item by item and loop by loop as the reference runs them."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from mpts_fast.strategies import build_strategy
from mpts_fast.strategies.cdal import cdal_select, symmetric_kl
from mpts_fast.strategies.deepfool import deepfool_perturbations, deepfool_scores


# --- CDAL: CDALModel.select_coreset on softmax vectors, symmetric KL --------------------------------------------------

def _cdal_reference(probs: np.ndarray, labeled: np.ndarray, k: int) -> list[int]:
    """The reference loop on the unlabeled rows (labeled rows as the initial set), returned as pool indices."""
    unl = np.flatnonzero(~labeled)
    x, x_set = probs[unl], probs[labeled]

    def dist(a, b):  # ½ Σ a log(a/b) + ½ Σ b log(b/a), one column per row of b
        return np.stack([0.5 * (a * np.log(a / bi)).sum(1) + 0.5 * (bi * np.log(bi / a)).sum(1) for bi in b], 1)

    min_dist = np.full(len(unl), np.inf) if len(x_set) == 0 else dist(x, x_set).min(1)
    picks = []
    for _ in range(k):
        i = int(min_dist.argmax())
        picks.append(i)
        min_dist = np.minimum(min_dist, dist(x, x[[i]])[:, 0])
    return unl[picks].tolist()


@pytest.mark.parametrize("n,c,n_lab,k,temp", [(300, 10, 20, 25, 3.0), (200, 3, 1, 40, 1.0), (150, 7, 0, 10, 5.0),
                                              (90, 2, 30, 60, 0.5)])
def test_cdal_picks_equal_the_reference(n, c, n_lab, k, temp):
    g = torch.Generator().manual_seed(n + c)
    probs = torch.softmax(torch.randn(n, c, generator=g, dtype=torch.float64) * temp, 1)
    labeled = torch.zeros(n, dtype=torch.bool)
    labeled[torch.randperm(n, generator=g)[:n_lab]] = True
    want = _cdal_reference(probs.numpy(), labeled.numpy(), k)
    assert cdal_select(probs, k, labeled).tolist() == want
    assert cdal_select(probs.float(), k, labeled.nonzero().squeeze(1)).tolist() == want  # float32, indices


def test_cdal_blocked_labeled_minimum_equals_the_direct_form(monkeypatch):
    from mpts_fast.strategies import cdal

    monkeypatch.setattr(cdal, "_INIT_BLOCK_ELEMENTS", 7)  # many small row blocks
    g = torch.Generator().manual_seed(3)
    probs = torch.softmax(torch.randn(120, 5, generator=g, dtype=torch.float64) * 2, 1)
    labeled = torch.zeros(120, dtype=torch.bool)
    labeled[::9] = True
    assert cdal_select(probs, 15, labeled).tolist() == _cdal_reference(probs.numpy(), labeled.numpy(), 15)


def test_symmetric_kl_is_the_reference_divergence():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(8, 4, generator=g, dtype=torch.float64), 1)
    q = torch.softmax(torch.randn(4, generator=g, dtype=torch.float64), 0)
    want = 0.5 * (p * (p / q).log()).sum(1) + 0.5 * (q * (q / p).log()).sum(1)
    assert torch.allclose(symmetric_kl(p, q), want, rtol=1e-12)


def test_cdal_hostile_values():
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])  # exact zeros: floored, never NaN
    picks = cdal_select(p, 3)
    assert picks.tolist()[0] == 0 and sorted(picks.tolist()) == sorted(set(picks.tolist()))
    dup = torch.full((5, 3), 1 / 3)  # every divergence 0: still distinct picks, never a labeled row
    assert cdal_select(dup, 3, torch.tensor([1])).tolist() == [0, 2, 3]
    with pytest.raises(ValueError, match="k:"):
        cdal_select(dup, 5, torch.tensor([1]))
    with pytest.raises(ValueError, match="probs"):
        cdal_select(torch.tensor([[0.5, float("nan")]]), 1)
    with pytest.raises(ValueError, match="probs"):
        cdal_select(torch.ones(3), 1)
    with pytest.raises(TypeError, match="labeled"):
        cdal_select(dup, 1, torch.ones(5, dtype=torch.uint8))


# --- DeepFool: AdversarialDeepFool.cal_dis, one item at a time ------------------------------------------------------

def _deepfool_reference(model, x, max_iter, fix_value_l):
    """The reference's per-item loop in float64 (fix_value_l: update value_l as DeepFool intends). → ‖η‖."""
    nx = x.unsqueeze(0).clone().requires_grad_(True)
    eta = torch.zeros_like(nx)
    out = model(nx + eta)
    py = ny = int(out.argmax(1))
    it = 0
    while py == ny and it < max_iter:
        grad_np = torch.autograd.grad(out[0, py], nx, retain_graph=True)[0]
        value_l, ri = math.inf, None
        for i in range(out.shape[1]):
            if i == py:
                continue
            wi = torch.autograd.grad(out[0, i], nx, retain_graph=True)[0] - grad_np
            fi = float((out[0, i] - out[0, py]).detach())
            value_i = abs(fi) / float(wi.norm())
            if value_i < value_l:
                ri = value_i / float(wi.norm()) * wi
                if fix_value_l:
                    value_l = value_i
        eta = eta + ri
        out = model(nx + eta)
        py = int(out.argmax(1))
        it += 1
    return float(eta.norm())


def _tanh_net(seed=0, d=6, c=4):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 12), nn.Tanh(), nn.Linear(12, c)).double().eval()


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("variant", ["corrected", "reference"])
def test_deepfool_norms_equal_the_reference(variant, batched, monkeypatch):
    from mpts_fast.strategies import deepfool

    if not batched:  # one backward pass per class, the path for large C × batch × input
        monkeypatch.setattr(deepfool, "_BATCHED_ELEMENTS", 0)
    model = _tanh_net()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(25, 6, generator=g, dtype=torch.float64)
    want = torch.tensor([_deepfool_reference(model, xi, 50, variant == "corrected") for xi in x], dtype=torch.float64)
    r, _ = deepfool_perturbations(model, x, max_iter=50, variant=variant)
    assert torch.allclose(r.flatten(1).norm(dim=1), want, rtol=1e-9, atol=1e-12)
    # the strategy's ranking: the budget smallest norms
    scores = deepfool_scores(model, x, variant=variant, batch_size=7)
    assert torch.allclose(scores.double(), want, rtol=1e-5)


def test_deepfool_reference_variant_differs_where_the_bug_bites():
    model = _tanh_net(seed=2, c=5)
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    a = deepfool_perturbations(model, x, variant="corrected")[0].norm(dim=1)
    b = deepfool_perturbations(model, x, variant="reference")[0].norm(dim=1)
    assert not torch.allclose(a, b)  # the step towards the last class is not the nearest boundary's


def test_deepfool_an_unmovable_item_scores_inf():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3)).double().eval()
    with torch.no_grad():  # hidden = ReLU(x1, x2, x3, x1 + x2 + x3); logits = the first three hidden units
        model[0].weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]))
        model[0].bias.zero_()
        model[2].weight.copy_(torch.eye(3, 4))
        model[2].bias.zero_()
    x = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 0.5, 0.2]], dtype=torch.float64)  # row 0: every ReLU dead
    r, _ = deepfool_perturbations(model, x)
    assert math.isinf(float(r[0].norm())) and math.isfinite(float(r[1].norm()))


def test_deepfool_defaults_score_the_whole_pool():
    s = build_strategy("deepfool")
    assert s.pool_subsample is None and s.variant == "corrected" and s.overshoot == 0.0
    with pytest.raises(ValueError, match="variant"):
        build_strategy("deepfool", variant="ours")
    with pytest.raises(ValueError, match="overshoot"):
        build_strategy("deepfool", overshoot=-0.1)


# --- ALFA-Mix: AlphaMixSampling.query's candidate set ---------------------------------------------------------------

def _alfa_reference(head, z_u, z_l, y_l, c, budget, variant, step, seed):
    """The reference's caps / anchors / α loop in float64. The learned α's starting draw follows the documented order
    (one (C, n_todo, D) normal draw per cap for the not-yet-candidates); every other step is the reference's own: a new
    torch.optim.Adam per step, the check before each step, the union over anchors and caps."""
    g = torch.Generator().manual_seed(seed)
    n, d = z_u.shape
    pred = head(z_u).argmax(1)
    candidate = torch.zeros(n, dtype=torch.bool)
    counts = []
    if variant == "closed_form":
        var = z_u.clone().requires_grad_(True)
        grads = torch.autograd.grad(nn.functional.cross_entropy(head(var), pred), var)[0]
    cap = 0.0
    while cap < 1.0:
        cap += step
        todo = (~candidate).nonzero().squeeze(1)
        zt, pt = z_u[todo], pred[todo]
        if variant == "learned":
            draws = torch.normal(cap / 2, cap / 2, size=(c, len(todo), d), generator=g).clamp(1e-8, cap).double()
        for i in range(c):
            emb = z_l[y_l == i]
            anchor = (emb if len(emb) else z_l).mean(0).expand(len(todo), d)
            if variant == "closed_form":
                eps = cap / math.sqrt(d)
                zz = anchor - zt
                alpha = (eps * zz.norm(dim=1) / grads[todo].norm(dim=1)).unsqueeze(1) * grads[todo] / (zz + 1e-8)
                pc = head((1 - alpha) * zt + alpha * anchor).argmax(1) != pt
            else:
                alpha = draws[i].clone()
                pc = torch.zeros(len(todo), dtype=torch.bool)
                for it in range(5):
                    l = alpha.clone().requires_grad_(True)
                    opt = torch.optim.Adam([l], lr=0.1 / (1.0 if it < 5 * 2 / 3 else 10.0))
                    out = head((1 - l) * zt + l * anchor)
                    pc |= out.argmax(1) != pt
                    loss = -1.0 * nn.functional.cross_entropy(out, pt, reduction="none") + 0.01 * l.norm(dim=1)
                    loss.sum().backward()
                    opt.step()
                    alpha = l.detach().clamp(1e-8, cap)
            candidate[todo[pc]] = True
        counts.append(int(candidate.sum()))
        if candidate.sum() > budget:
            break
    return candidate, counts


@pytest.mark.parametrize("variant,step,budget", [("learned", 1 / 32, 12), ("learned", 0.2, 40),
                                                 ("closed_form", 0.2, 12), ("closed_form", 1 / 32, 25)])
def test_alfa_mix_candidates_equal_the_reference(variant, step, budget):
    from mpts_fast.strategies.alfa_mix import alfa_mix_candidates

    torch.manual_seed(0)
    head = nn.Linear(5, 4).double().eval()
    g = torch.Generator().manual_seed(7)
    z_u = torch.randn(80, 5, generator=g, dtype=torch.float64).relu()  # ReLU features: exact zeros in d
    z_l = torch.randn(12, 5, generator=g, dtype=torch.float64).relu()
    y_l = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])  # class 3 has no label: the labeled mean
    want, counts = _alfa_reference(head, z_u, z_l, y_l, 4, budget, variant, step, seed=5)
    got = alfa_mix_candidates(head, z_u, z_l, y_l, 4, budget, alpha=variant, alpha_cap=step,
                              generator=torch.Generator().manual_seed(5), block=1000)
    assert got.counts == counts and len(counts) >= 1
    assert torch.equal(got.mask, want)


def test_alfa_mix_records_its_candidates_per_round(tmp_path):
    from al_fixtures import tiny_digits

    from mpts_fast.loop import RunConfig, run_experiment

    cfg = RunConfig(dataset="digits", strategy="alfa_mix", rounds=2, initial=20, budget=10, epochs=2)
    results = run_experiment(cfg, tmp_path, data=tiny_digits(), device="cpu", progress=False)
    sel = results["runs"][0]["rounds"][0]["selection"]
    assert sel["candidates"] == sel["candidates_per_cap"][-1] and sel["alpha_cap"] > 0


# --- dropout per strategy -------------------------------------------------------------------------------------------

def test_backbones_take_dropout_and_the_loop_passes_each_strategys(monkeypatch, tmp_path):
    from al_fixtures import tiny_digits

    from mpts_fast import loop
    from mpts_fast.models import build_model
    from mpts_fast.strategies.registry import model_dropout

    assert model_dropout("bald") == 0.3 and model_dropout("cdal") == 0.0 and model_dropout("mpts") == 0.0
    with pytest.raises(ValueError, match="strategy"):
        model_dropout("nope")
    for name, shape in (("mlp", (5,)), ("resnet18", (3, 8, 8))):
        assert build_model(name, shape, 3, dropout=0.0).dropout.p == 0.0
        assert build_model(name, shape, 3).dropout.p == 0.3  # built by hand: MC dropout still works
        with pytest.raises(ValueError, match="dropout"):
            build_model(name, shape, 3, dropout=1.0)
    seen = []

    def spy(*args, **kw):
        seen.append(kw.get("dropout"))
        return build_model(*args, **kw)

    monkeypatch.setattr(loop, "build_model", spy)
    for strategy in ("entropy", "bald"):
        cfg = loop.RunConfig(dataset="digits", strategy=strategy, rounds=1, initial=20, epochs=1)
        loop.run_experiment(cfg, tmp_path / strategy, data=tiny_digits(), device="cpu", progress=False)
    assert set(seen) == {0.0, 0.3}


# --- the ViT protocol (a timm-shaped stand-in; the real timm model when installed) ---------------------------------

class _Block(nn.Module):
    def __init__(self, e):
        super().__init__()
        self.norm1, self.fc, self.norm2 = nn.LayerNorm(e), nn.Linear(e, e), nn.LayerNorm(e)

    def forward(self, t):
        return t + self.norm2(self.fc(self.norm1(t)))


class _TinyViT(nn.Module):
    """The attributes of timm's VisionTransformer that ViTSmall uses, at toy size (patch 4, 3 blocks, width 8)."""

    def __init__(self, e=8, depth=3):
        super().__init__()
        self.embed_dim = e
        self.patch_embed = nn.Sequential(nn.Conv2d(3, e, 4, 4), nn.Flatten(2))
        self.cls_token = nn.Parameter(torch.randn(1, 1, e))
        self.patch_drop, self.norm_pre = nn.Identity(), nn.Identity()
        self.blocks = nn.Sequential(*[_Block(e) for _ in range(depth)])
        self.norm = nn.LayerNorm(e)

    def _pos_embed(self, x):
        x = x.transpose(1, 2)
        return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)


def test_vit_features_are_the_last_blocks_cls_tokens_and_only_layernorms_train():
    from mpts_fast.models.vit import ViTSmall

    torch.manual_seed(0)
    bb = _TinyViT()
    model = ViTSmall((3, 12, 12), 5, backbone=bb, n_last_blocks=2, projection=6, dropout=0.0)
    x = torch.randn(4, 3, 12, 12)
    t = bb._pos_embed(bb.patch_embed(x))
    outs = []
    for blk in bb.blocks:
        t = blk(t)
        outs.append(bb.norm(t)[:, 0])
    want = torch.cat(outs[-2:], 1)
    torch.testing.assert_close(model.cls_features(x), want)
    torch.testing.assert_close(model.embed(x), model.projection(want))
    assert model.embed(x).shape == (4, 6) and model(x).shape == (4, 5) and model.embedding_dim == 6
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    last = [f"backbone.blocks.2.{m}.{p}" for m in ("norm1", "norm2") for p in ("weight", "bias")]
    assert trainable == {"backbone.norm.weight", "backbone.norm.bias", *last, "projection.weight", "projection.bias",
                         "classifier.weight", "classifier.bias"}
    assert float(model.classifier.bias.detach().abs().max()) == 0.0
    assert float(model.classifier.weight.detach().std()) < 0.03
    assert ViTSmall((3, 12, 12), 5, backbone=_TinyViT(), projection=None, n_last_blocks=3).embedding_dim == 24
    with pytest.raises(ValueError, match="n_last_blocks"):
        ViTSmall((3, 12, 12), 5, backbone=_TinyViT(), n_last_blocks=4)


def test_vit_weights_offline_message_and_local_file(monkeypatch, tmp_path):
    import sys
    import types

    from mpts_fast.models import vit

    def create_model(name, pretrained=False, **kw):
        assert name == vit.TIMM_NAME and kw["dynamic_img_size"] and kw["num_classes"] == 0
        if pretrained:
            raise OSError("offline: cannot reach the hub")
        return _TinyViT()

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(RuntimeError) as err:
        vit.create_backbone(pretrained=True)
    msg = str(err.value)
    assert vit.TIMM_NAME in msg and str(tmp_path / "hub" / ("models--timm--" + vit.TIMM_NAME)) in msg
    assert "weights=" in msg and "pretrained=False" in msg
    # a DINO-style checkpoint: the teacher's weights under 'backbone.' prefixes
    src = _TinyViT()
    torch.save({"teacher": {"backbone." + k: v for k, v in src.state_dict().items()}}, tmp_path / "dino.pth")
    loaded = vit.create_backbone(weights=tmp_path / "dino.pth")
    for k, v in src.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
    with pytest.raises(RuntimeError, match="no file"):
        vit.create_backbone(weights=tmp_path / "missing.pth")
    torch.save({"other": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(RuntimeError, match="lacks"):
        vit.create_backbone(weights=tmp_path / "bad.pth")


def test_vit_without_timm_says_what_is_missing(monkeypatch):
    import sys

    from mpts_fast.models import vit

    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    with pytest.raises(RuntimeError, match="timm"):
        vit.create_backbone(pretrained=False)


def test_vit_small_with_real_timm_random_weights():
    pytest.importorskip("timm")
    from mpts_fast.models import build_model

    model = build_model("vit_small", (3, 84, 84), 7, pretrained=False, dropout=0.0).eval()
    with torch.no_grad():
        z = model.embed(torch.randn(2, 3, 84, 84))
        assert model.cls_features(torch.randn(2, 3, 84, 84)).shape == (2, 1536)
    assert z.shape == (2, 256) and model.head(z).shape == (2, 7)
    assert sum(p.numel() for p in model.backbone.parameters() if p.requires_grad) == 3 * 2 * 384


def test_deepfool_stops_on_the_boundary_with_the_references_norm():
    """float32 ReLU net, no overshoot: most items land on a boundary and tie; the reference keeps taking
    rounding-sized steps until max_iter, we stop: the same norms up to rounding, in far fewer iterations."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    x = torch.randn(30, 6, generator=torch.Generator().manual_seed(4))
    want = torch.tensor([_deepfool_reference(model, xi, 50, True) for xi in x])
    r, iters = deepfool_perturbations(model, x, max_iter=50)
    torch.testing.assert_close(r.norm(dim=1), want, rtol=1e-4, atol=1e-6)
    assert int(iters.max()) < 50


@pytest.mark.parametrize("double", [False, True])
def test_cdal_strategy_runs_the_rule_on_the_pool(double):
    from al_fixtures import blobs

    from mpts_fast.models import build_model
    from mpts_fast.strategies import SelectionContext
    from mpts_fast.training import TrainConfig, Trainer

    data = blobs(n=90)
    lab = torch.arange(9)
    trained = Trainer(lambda: build_model("mlp", data.input_shape, 3, hidden=16), TrainConfig(epochs=3)).fit(
        data.x_train, lab, data.y_train[lab], seed=0)
    ctx = SelectionContext(x_pool=data.x_train, labeled=lab, y_labeled=data.y_train[lab],
                           unlabeled=torch.arange(9, data.x_train.shape[0]), trained=trained, num_classes=3,
                           generator=torch.Generator().manual_seed(0))
    probs = trained.probs(data.x_train)
    if double:  # the reference's softmax over the probabilities
        probs = torch.softmax(probs, 1)
    want = _cdal_reference(probs.double().numpy(), ctx.labeled_mask().numpy(), 8)
    assert build_strategy("cdal", double_softmax=double).select(ctx, 8).tolist() == want
