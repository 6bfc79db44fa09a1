"""The study's network: the hand-derived backward against autograd, the SGD step against torch.optim.SGD,
and Φ of the network (through ops.sensitivity) against a float64 finite-difference Jacobian."""
from __future__ import annotations

import pytest
import torch

from mpts_fast.models.sigmoid_net import NetStack, SigmoidNet

F64 = torch.float64


def _stack(output, M=3, I=4, J=6, K=3, dtype=F64, seed=0):
    gens = [torch.Generator().manual_seed(seed + m) for m in range(M)]
    net = NetStack(M, I, J, K, output=output, generators=gens, dtype=dtype)
    net.theta.mul_(3.0)  # larger weights: sigmoids away from their linear region
    return net


def _autograd_loss(net, x, t, weight):
    theta = net.theta.clone().requires_grad_(True)
    V, bv, W, bw = torch.split(theta, net._sizes, dim=1)
    V, W = V.reshape(net.M, net.J, net.I), W.reshape(net.M, net.K, net.J)
    h = torch.sigmoid(x @ V.transpose(1, 2) + bv[:, None])
    o = h @ W.transpose(1, 2) + bw[:, None]
    if net.output == "sigmoid":
        o = torch.sigmoid(o)
    loss = (weight[..., None] * (o - t) ** 2).sum()
    (g,) = torch.autograd.grad(loss, theta)
    return g


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
def test_gradient_matches_autograd_float64(output, gen):
    net = _stack(output)
    x = torch.randn(3, 5, 4, generator=gen, dtype=F64)
    t = torch.rand(3, 5, 3, generator=gen, dtype=F64)
    weight = torch.tensor([[0.2] * 5, [0.25] * 4 + [0.0], [1.0] + [0.0] * 4], dtype=F64)  # padding rows
    grad, sq = net.gradient(x, t, weight)
    torch.testing.assert_close(grad, _autograd_loss(net, x, t, weight), rtol=1e-12, atol=1e-13)
    o = net.forward(x).o
    expect_sq = (((o - t) ** 2).sum(-1) * (weight > 0)).sum(1)
    torch.testing.assert_close(sq, expect_sq, rtol=1e-12, atol=0)


def test_step_matches_torch_sgd_and_skips_inactive(gen):
    net = _stack("sigmoid", M=2)
    net.set_hyper([0.1, 0.5], [0.9, 0.0], [0.01, 0.1])
    modules = []
    for m in range(2):
        mod = SigmoidNet(4, 6, 3).double()
        V, bv, W, bw = net.member(m)
        with torch.no_grad():
            mod.hidden.weight.copy_(V), mod.hidden.bias.copy_(bv), mod.out.weight.copy_(W), mod.out.bias.copy_(bw)
        lr, mom, wd = [0.1, 0.5][m], [0.9, 0.0][m], [0.01, 0.1][m]
        modules.append((mod, torch.optim.SGD(mod.parameters(), lr=lr, momentum=mom, weight_decay=wd)))
    for step in range(3):
        x = torch.randn(2, 4, 4, generator=gen, dtype=F64)
        t = torch.rand(2, 4, 3, generator=gen, dtype=F64)
        weight = torch.full((2, 4), 0.25, dtype=F64)
        active = torch.tensor([True, step != 1])  # member 1 sits out step 1: no change at all
        before = net.theta[1].clone(), net.buf[1].clone()
        grad, _ = net.gradient(x, t, weight)
        net.step(grad, active)
        if not active[1]:
            assert torch.equal(net.theta[1], before[0]) and torch.equal(net.buf[1], before[1])
        for m, (mod, opt) in enumerate(modules):
            if not active[m]:
                continue
            opt.zero_grad()
            (0.25 * ((mod(x[m]) - t[m]) ** 2).sum()).backward()
            opt.step()
    for m, (mod, _) in enumerate(modules):
        V, bv, W, bw = net.member(m)
        torch.testing.assert_close(V, mod.hidden.weight.detach(), rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(bw, mod.out.bias.detach(), rtol=1e-12, atol=1e-13)


def _fd_phi(net, m, x, norm, h=1e-6):
    """Φ from a central-difference Jacobian d o_k / d x_i of member m, float64."""
    P, I = x.shape
    jac = torch.zeros(P, net.K, I, dtype=F64)
    for i in range(I):
        e = torch.zeros(I, dtype=F64)
        e[i] = h
        up = net.forward((x + e).expand(net.M, P, I).contiguous()).o[m]
        dn = net.forward((x - e).expand(net.M, P, I).contiguous()).o[m]
        jac[:, :, i] = (up - dn) / (2 * h)
    per_out = {"l1": jac.abs().sum(-1), "l2": jac.pow(2).sum(-1).sqrt(), "inf": jac.abs().amax(-1)}[norm]
    return per_out.amax(-1)


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
@pytest.mark.parametrize("norm", ["l1", "l2", "inf"])
def test_sensitivity_matches_finite_difference_jacobian(output, norm, gen):
    net = _stack(output, M=2, I=5, J=7, K=3)
    x = torch.rand(9, 5, generator=gen, dtype=F64) * 2 - 1
    for m in range(2):
        got = net.sensitivity(m, x, norm)
        torch.testing.assert_close(got, _fd_phi(net, m, x, norm), rtol=1e-7, atol=1e-9)
    # the float32 path (the study's) agrees at float32 accuracy
    net32 = NetStack(2, 5, 7, 3, output=output)
    net32.theta.copy_(net.theta.float())
    torch.testing.assert_close(net32.sensitivity(1, x.float(), norm).double(), _fd_phi(net, 1, x, norm),
                               rtol=1e-4, atol=1e-6)


def test_module_and_stack_agree_and_bad_arguments(gen):
    mod = SigmoidNet(3, 4, 2, output="linear").double()
    x = torch.randn(5, 3, generator=gen, dtype=F64)
    phi = mod.sensitivity(x, "l2")
    assert phi.shape == (5,) and (phi >= 0).all()
    with pytest.raises(ValueError, match="output"):
        SigmoidNet(3, 4, 2, output="tanh")
    with pytest.raises(ValueError, match="hidden"):
        NetStack(2, 3, 0, 2)
    with pytest.raises(ValueError, match="generators"):
        NetStack(2, 3, 4, 2, generators=[torch.Generator()])
    net = NetStack(2, 3, 4, 2)
    with pytest.raises(ValueError, match="lr"):
        net.set_hyper(float("nan"), 0.9, 0.0)
