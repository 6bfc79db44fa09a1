"""The ops inside an MMD-regularised training step under autocast (bf16 on CPU; fp16 and bf16 on CUDA): values and
gradients within the 2x rule of eager float32 against a float64 oracle.

Under autocast the backbone hands the ops half-precision embeddings and logits. The ops compute in float32 and
return the input's dtype, so the rule is: err(op under autocast, float64 oracle on the same half-precision inputs)
<= 2 x err(plain PyTorch in eager float32 on those inputs) + one ulp of the half dtype at the result's scale (the
rounding of the returned value or gradient, which no float32 computation can avoid).
"""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from mpts_fast import ops, reference
from mpts_fast.models import build_model
from mpts_fast.training import mmd_penalty
from mpts_testutil import (assert_flash_rule, max_err, oracle_bandwidths, oracle_mmd2, oracle_snapshot, randn,
                           requires_cuda)

CASES = [pytest.param("cpu", torch.bfloat16, id="cpu-bf16"),
         pytest.param("cuda", torch.float16, id="cuda-fp16", marks=requires_cuda),
         pytest.param("cuda", torch.bfloat16, id="cuda-bf16", marks=requires_cuda)]
EPS = {torch.bfloat16: 2.0**-7, torch.float16: 2.0**-10}


def _batch(gen, device, n=48, d=20, classes=5):
    model_x = randn(gen, 2 * n, d, device=device)
    y = torch.randint(classes, (n,), generator=gen).to(device)
    torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=gen)))
    model = build_model("mlp", (d,), classes, dropout=0.0).to(device)
    return model, model_x, y


def _half_embeddings(model, x, device, dtype):
    """The embeddings an autocast training step gives the MMD term (half precision), as leaves."""
    with torch.autocast(device, dtype=dtype):
        z = model.embed(x)
    assert z.dtype == dtype
    n = x.shape[0] // 2
    return z[:n].detach().requires_grad_(), z[n:].detach().requires_grad_()


def _value_and_grads(z_l, z_all, device=None, dtype=None):
    if device is None:
        value = mmd_penalty(z_l, z_all)
    else:
        with torch.autocast(device, dtype=dtype):
            value = mmd_penalty(z_l, z_all)
    gl, ga = torch.autograd.grad(value, (z_l, z_all))
    return value, gl, ga


@pytest.mark.parametrize("device,dtype", CASES)
def test_mmd_term_under_autocast_within_2x_of_eager_float32(gen, set_backend, device, dtype):
    model, x, _ = _batch(gen, device)
    z_l, z_all = _half_embeddings(model, x, device, dtype)
    value, g_l, g_all = _value_and_grads(z_l, z_all, device, dtype)
    assert value.dtype == dtype and g_l.dtype == dtype and g_all.dtype == dtype
    # float64 oracle on the very half-precision inputs, bandwidths held constant (no gradient through h)
    l64 = z_l.detach().double().cpu().requires_grad_()
    a64 = z_all.detach().double().cpu().requires_grad_()
    ref = oracle_mmd2(l64, a64, oracle_bandwidths(l64.detach(), a64.detach()))
    ref_gl, ref_ga = torch.autograd.grad(ref, (l64, a64))
    set_backend("reference")  # eager plain PyTorch, float32
    l32 = z_l.detach().float().requires_grad_()
    a32 = z_all.detach().float().requires_grad_()
    base, base_gl, base_ga = _value_and_grads(l32, a32)
    eps = EPS[dtype]
    assert_flash_rule(value.detach().float(), base.detach(), ref.detach(), atol=eps * float(ref.detach().abs()) + 1e-7,
                      what=f"{dtype} MMD value")
    for what, got, b, r in (("z_labeled", g_l, base_gl, ref_gl), ("z_all", g_all, base_ga, ref_ga)):
        assert_flash_rule(got.float(), b, r, atol=eps * float(r.abs().max()) + 1e-9, what=f"{dtype} grad {what}")


def _training_step(model, x, y, device, dtype, lam=1.0):
    """One MPTS step: one forward pass over both batches, CE on the labeled half + lam * MMD; the parameters' grads."""
    model.zero_grad(set_to_none=True)
    n = y.shape[0]
    with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
        z = model.embed(x)
        loss = F.cross_entropy(model.head(z[:n]), y) + lam * mmd_penalty(z[:n], z[n:])
    loss.backward()
    return float(loss.detach()), {k: p.grad.detach().double().cpu() for k, p in model.named_parameters()}


@pytest.mark.parametrize("device,dtype", CASES)
def test_whole_training_step_under_autocast(gen, set_backend, device, dtype):
    """The step's loss and parameter gradients with the native ops under autocast are within 2x of the same step in
    eager plain PyTorch under the same autocast, both against the step in float64."""
    model, x, y = _batch(gen, device)
    loss_native, g_native = _training_step(model, x, y, device, dtype)
    model64 = build_model("mlp", (x.shape[1],), 5, dropout=0.0).double()
    model64.load_state_dict({k: v.double().cpu() for k, v in model.state_dict().items()})
    set_backend("reference")
    loss64, g64 = _training_step(model64, x.double().cpu(), y.cpu(), "cpu", None)
    loss_eager, g_eager = _training_step(model, x, y, device, dtype)
    assert abs(loss_native - loss64) <= 2 * abs(loss_eager - loss64) + EPS[dtype] * abs(loss64)
    for name, g in g_native.items():
        assert bool(torch.isfinite(g).all()), name
        err, base = max_err(g, g64[name]), max_err(g_eager[name], g64[name])
        assert err <= 2 * base + EPS[dtype] * float(g64[name].abs().max()), (name, err, base)


@pytest.mark.parametrize("device,dtype", CASES)
def test_snapshot_scores_of_autocast_logits(gen, device, dtype):
    """Scores of half-precision logits (a model evaluated under autocast) in float32, within 2x of eager float32."""
    model, x, _ = _batch(gen, device)
    with torch.no_grad(), torch.autocast(device, dtype=dtype):
        logits = torch.stack([model(x), model(x * 0.9), model(x + 0.1)])
    assert logits.dtype == dtype
    scores = ops.snapshot_uncertainty(logits)
    base = reference.snapshot_uncertainty(logits.float())
    oracle = oracle_snapshot(logits)
    for i, field in enumerate(type(scores)._fields):
        assert scores[i].dtype == torch.float32
        assert_flash_rule(scores[i], base[i], oracle[field], atol=1e-7 + 2.0**-23 * float(oracle[field].abs().max()),
                          what=f"{dtype} {field}")
