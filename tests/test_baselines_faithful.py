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


@pytest.mark.parametrize("variant", ["corrected", "reference"])
def test_deepfool_norms_equal_the_reference(variant):
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
