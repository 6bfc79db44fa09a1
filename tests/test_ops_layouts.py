"""Every public op takes non-contiguous inputs (docs/ops.md: "Non-contiguous inputs work"): a transposed tensor, a
column slice of a wider one and a row slice give the same result as their contiguous copies, on the native kernels
and on the plain-PyTorch reference, on every device here."""
from __future__ import annotations

import pytest
import torch

from mpts_fast import ops
from mpts_testutil import DEVICES, randn


def _layouts(t: torch.Tensor) -> dict[str, torch.Tensor]:
    """Non-contiguous tensors equal to the 2-D or 3-D `t`: its last two dims stored transposed, every other column
    of a twice-as-wide tensor, and every other row of a twice-as-tall one."""
    transposed = t.transpose(-1, -2).contiguous().transpose(-1, -2)
    columns = torch.stack([t, -t], -1).flatten(-2)[..., ::2]
    rows = torch.stack([t, -t], -2).flatten(-3, -2)[..., ::2, :]
    out = {"transposed": transposed, "column-sliced": columns, "row-sliced": rows}
    for name, v in out.items():
        assert not v.is_contiguous() and torch.equal(v, t), name
    return out


def _same(a, b) -> None:
    if isinstance(a, tuple):
        for x, y in zip(a, b):
            _same(x, y)
    else:
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _check(fn, *contiguous: torch.Tensor) -> None:
    """fn(*inputs) with each input in turn replaced by each non-contiguous layout equals fn(*contiguous)."""
    want = fn(*contiguous)
    for i, t in enumerate(contiguous):
        for layout, v in _layouts(t).items():
            args = list(contiguous)
            args[i] = v
            try:
                got = fn(*args)
            except Exception as e:  # pragma: no cover - the failure message names the input and its layout
                raise AssertionError(f"input {i} {layout}: {type(e).__name__}: {e}") from e
            _same(got, want)


@pytest.fixture
def probs_emb(gen, device):
    probs = torch.softmax(randn(gen, 60, 5, scale=2.0), 1).to(device)
    return probs, randn(gen, 60, 7, device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_badge_select_takes_non_contiguous_probs_and_embeddings(backend, probs_emb):
    def badge(p, h, labeled=None):
        return ops.badge_select(p, h, 6, generator=torch.Generator().manual_seed(3), labeled=labeled)

    _check(badge, *probs_emb)
    _check(lambda p, h: badge(p, h, labeled=[0, 5, 11]), *probs_emb)
    p, h = probs_emb  # both at once, as a (C, N) softmax output transposed
    torch.testing.assert_close(badge(p.T.contiguous().T, h.T.contiguous().T), badge(p, h))


@pytest.mark.parametrize("device", DEVICES)
def test_kcenter_and_kmeanspp_take_non_contiguous_features(backend, gen, device):
    x = randn(gen, 60, 7, device=device)
    _check(lambda f: ops.kcenter_greedy(f, 6), x)
    _check(lambda f: ops.kcenter_greedy(f, 6, labeled=[1, 2]), x)
    _check(lambda f: ops.kmeanspp(f, 6, generator=torch.Generator().manual_seed(1), labeled=[4]), x)


@pytest.mark.parametrize("device", DEVICES)
def test_mmd_ops_take_non_contiguous_inputs(backend, gen, device):
    x, y = randn(gen, 40, 6, device=device), randn(gen, 30, 6, device=device, shift=0.5)
    _check(lambda a, b: ops.rbf_mmd2(a, b), x, y)
    _check(lambda a, b: ops.rbf_mmd2(a, b, [0.5, 2.0], estimator="unbiased"), x, y)
    _check(lambda a, b: ops.rbf_mmd2_ladder(a, b, 3, 3.0), x, y)
    _check(lambda a, b: ops.mmd_bandwidths(a, b), x, y)

    def grads(a, b):
        a, b = a.detach().requires_grad_(), b.detach().requires_grad_()
        ops.rbf_mmd2(a, b).backward()
        return a.grad, b.grad

    _check(grads, x, y)


@pytest.mark.parametrize("device", DEVICES)
def test_snapshot_ops_take_non_contiguous_logits(backend, gen, device):
    logits = randn(gen, 3, 50, 4, device=device, scale=2.0)
    _check(lambda t: tuple(ops.snapshot_uncertainty(t)), logits)
    _check(lambda t: tuple(ops.SnapshotAccumulator(50, 4, device=device).update(t).scores()), logits)
    _check(lambda t: tuple(ops.SnapshotAccumulator(50, 4, device=device).update(t).scores()), logits[0])


@pytest.mark.parametrize("device", DEVICES)
def test_sensitivity_ops_take_non_contiguous_inputs(backend, gen, device):
    x, V, W = randn(gen, 20, 6, device=device), randn(gen, 5, 6, device=device), randn(gen, 3, 5, device=device)
    b_v, b_w = randn(gen, 5, device=device), randn(gen, 3, device=device)
    for norm in ("l1", "l2", "inf"):
        _check(lambda x_, V_, W_: ops.sensitivity(x_, V_, b_v, W_, b_w, norm=norm), x, V, W)
    _check(lambda x_, V_, W_: ops.sensitivity_matrix(x_, V_, b_v, W_, b_w), x, V, W)
    strided_bias = torch.stack([b_v, -b_v], 1)[:, 0]  # 1-D with stride 2
    torch.testing.assert_close(ops.sensitivity(x, V, strided_bias, W, b_w), ops.sensitivity(x, V, b_v, W, b_w))
