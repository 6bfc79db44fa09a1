"""rbf_mmd2 and mmd_bandwidths against an independent float64 oracle (explicit pairwise
differences, three kernel blocks summed separately).

Sizes: the CPU kernel tiles the joint set z = [x; y] in blocks of 1024 rows, so n + m is taken
as 1 + 1, 1023 (one tile, one short), 1025 (one tile and one row) and 2100 (three tiles, the
x/y boundary inside a tile).
"""
from __future__ import annotations

import math

import pytest
import torch

from mpts_fast import ops, reference
from mpts_testutil import (
    F64,
    INF,
    NAN,
    assert_close64,
    assert_flash_rule,
    max_err,
    oracle_bandwidths,
    oracle_mean_sq_dist,
    oracle_mmd2,
    permutations,
    randn,
    requires_cuda,
)

EPS32 = 2.0**-23
D = 4  # feature dim of the random data (scale ~1, so ||a - b||^2 ~ 8)

SIZES = {"1+1": (1, 1), "1023": (600, 423), "1025": (600, 425), "2100": (1100, 1000)}
# sigma kinds: None -> mmd_bandwidths ladder (the kernel's repeated-squaring path); "odd" has no
# power-of-two ratios (one exp per term); "ladder16" mixes an own-exp term (scale ratio 16) and
# a squaring term (ratio 4), given unsorted; tiny/huge are 1e-3 and 1e3 of the data scale.
SIGMAS = {
    "default": None,
    "odd": [0.7, 1.3, 3.1],
    "ladder16": [4.0, 1.0, 0.5],
    "tiny": [1e-3],
    "huge": [1e3, 2e3],
    "mixed": [1e-3, 1.0, 1e3],
}


def _sizes_for(estimator: str, size: str) -> tuple[int, int]:
    n, m = SIZES[size]
    if estimator == "unbiased" and (n < 2 or m < 2):
        return 2, 2  # the smallest sizes the U-statistic allows
    return n, m


def _sigmas_list(kind, x, y) -> list[float]:
    s = SIGMAS[kind]
    return oracle_bandwidths(x, y) if s is None else list(s)


def _value_slack(num_sigmas: int) -> float:
    # MMD^2 = A + B - 2C with block means A, B, C of size up to Q = len(sigmas); held in float32
    # they carry 0.5 + 0.5 + 1 ulp of Q of representation error whatever the algorithm, so the
    # slack is 1e-7 + 2 ulp(Q). (A single 2-point problem is one rounding event: no
    # permutation can average it out.)
    return 1e-7 + 2 * EPS32 * num_sigmas


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("kind", list(SIGMAS))
@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
@pytest.mark.parametrize("size", list(SIZES))
def test_value_matches_oracle(device, size, estimator, kind, gen):
    n, m = _sizes_for(estimator, size)
    x = randn(gen, n, D, dtype=torch.float32)
    y = randn(gen, m, D, dtype=torch.float32, shift=0.25)
    sig = SIGMAS[kind]
    sig_list = _sigmas_list(kind, x, y)
    ref64 = oracle_mmd2(x, y, sig_list, estimator)  # oracle of the float32-rounded data

    # float64: ~1e-10 relative (absolute slack relative to the block scale Q for values that
    # cancel to ~0)
    v64 = ops.rbf_mmd2(x.to(device, F64), y.to(device, F64), sig, estimator=estimator)
    assert v64.dtype == F64 and v64.shape == () and v64.device.type == device
    assert_close64(v64, ref64, atol=1e-12 * len(sig_list), what=f"float64 {size} {estimator} {kind}")

    # float32: flash-attention rule, max error over 3 row orders on both sides. (With 1e3
    # bandwidths at 2100 rows the kernel before 5331982 had a systematic ~5e-7 error here, 2-6x
    # the plain float32 one; see test_identical_points_large.)
    perms_x, perms_y = permutations(gen, n, 3), permutations(gen, m, 3)
    xd, yd = x.to(device), y.to(device)
    scales = [2.0 * s * s for s in sig_list]
    natives = [ops.rbf_mmd2(xd[px], yd[py], sig, estimator=estimator) for px, py in zip(perms_x, perms_y)]
    bases = [reference.rbf_mmd2(xd[px], yd[py], scales, estimator == "unbiased") for px, py in zip(perms_x, perms_y)]
    assert natives[0].dtype == torch.float32
    assert_flash_rule(natives, bases, ref64, atol=_value_slack(len(sig_list)), what=f"float32 {size} {estimator} {kind}")


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_x_spanning_two_tiles(estimator, gen):
    # All of x in two tiles, y a few rows in the second: the x/x, x/y and y/y weights meet in
    # one off-diagonal tile.
    x = randn(gen, 1030, 3, dtype=F64)
    y = randn(gen, 3, 3, dtype=F64, shift=0.5)
    sig = [0.8, 1.6]
    assert_close64(ops.rbf_mmd2(x, y, sig, estimator=estimator), oracle_mmd2(x, y, sig, estimator), atol=1e-12)
    assert_close64(ops.rbf_mmd2(y, x, sig, estimator=estimator), oracle_mmd2(y, x, sig, estimator), atol=1e-12)


def test_symmetric_in_x_and_y(gen):
    x = randn(gen, 40, 5, dtype=F64)
    y = randn(gen, 31, 5, dtype=F64, shift=0.3)
    for est in ("biased", "unbiased"):
        assert_close64(ops.rbf_mmd2(x, y, 1.5, estimator=est), ops.rbf_mmd2(y, x, 1.5, estimator=est), atol=1e-14)


@pytest.mark.parametrize("form", ["float", "int", "list", "tuple", "tensor", "tensor0d"])
def test_sigma_forms_agree(form, gen):
    x = randn(gen, 20, 3, dtype=F64)
    y = randn(gen, 17, 3, dtype=F64)
    values = {"float": 2.0, "int": 2, "list": [2.0], "tuple": (2.0,), "tensor": torch.tensor([2.0]), "tensor0d": torch.tensor(2.0)}
    got = ops.rbf_mmd2(x, y, values[form])
    assert_close64(got, oracle_mmd2(x, y, [2.0]))


def test_sigma_order_and_duplicates_do_not_matter(gen):
    x = randn(gen, 30, 3, dtype=F64)
    y = randn(gen, 25, 3, dtype=F64)
    a = ops.rbf_mmd2(x, y, [0.5, 1.0, 2.0, 4.0])
    b = ops.rbf_mmd2(x, y, [4.0, 0.5, 2.0, 1.0])
    assert_close64(a, b, atol=1e-14)
    # repeated sigma: scale ratio 1 (zero squarings) must count the term twice
    assert_close64(ops.rbf_mmd2(x, y, [1.0, 1.0]), 2 * ops.rbf_mmd2(x, y, 1.0), atol=1e-14)
    # 16 bandwidths is the documented maximum
    sig16 = [0.25 * 1.3**k for k in range(16)]
    assert_close64(ops.rbf_mmd2(x, y, sig16), oracle_mmd2(x, y, sig16), atol=1e-12 * 16)


def test_sigma_tensor_gets_no_gradient(gen):
    x = randn(gen, 6, 3).requires_grad_()
    y = randn(gen, 5, 3)
    s = torch.tensor([0.5, 1.0], requires_grad=True)
    ops.rbf_mmd2(x, y, s).backward()
    assert s.grad is None and x.grad is not None


# --------------------------------------------------------------------------- hostile values


@pytest.mark.parametrize("n", [3, 512, 513, 1050])  # N = 2n: 6, 1024 (one full tile), 1026, 2100
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_x_equals_y_biased_is_zero(device, dtype, n, gen):
    x = randn(gen, n, D, dtype=dtype, device=device)
    v = ops.rbf_mmd2(x, x)
    Q = 5
    if dtype == F64:
        assert abs(float(v)) <= 1e-12 * Q
    else:
        base = reference.rbf_mmd2(x, x, reference.bandwidth_scales(x, x))
        assert abs(float(v)) <= 2 * abs(float(base)) + _value_slack(Q)
    # the unbiased estimator is not zero for x == y (the x/y diagonal stays in)
    if n >= 2:
        sig = oracle_bandwidths(x, x)
        u = ops.rbf_mmd2(x.to(F64), x.to(F64), sig, estimator="unbiased")
        assert_close64(u, oracle_mmd2(x, x, sig, "unbiased"), atol=1e-12 * Q)


# Regression: identical rows at different indices got a few ulps of |z|^2 as distance from the GEMM
# form (up to 1.2e-4 in the MMD); near-identical pairs are now recomputed directly.
def test_x_equals_y_single_point(gen):
    failures = []
    for _ in range(200):
        x = randn(gen, 1, 4)
        v = float(ops.rbf_mmd2(x, x))
        base = float(reference.rbf_mmd2(x, x, reference.bandwidth_scales(x, x)))
        if abs(v) > 2 * abs(base) + _value_slack(5):
            failures.append(v)
    assert not failures, f"{len(failures)}/200 draws, worst {max(map(abs, failures)):.2e}"


@pytest.mark.parametrize(
    "estimator,n,m",
    [("biased", 1, 1), ("biased", 2, 2), ("biased", 6, 6), ("biased", 512, 512), ("biased", 3, 5),
     ("unbiased", 2, 2), ("unbiased", 6, 6), ("unbiased", 3, 5)],
)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_identical_points(dtype, estimator, n, m):
    # Every point coincides: D = 0, k = Q everywhere and MMD^2 = 0 for both estimators and any
    # n, m (plain float32 PyTorch returns exactly 0.0). Larger sizes: test_identical_points_large.
    x = torch.full((n, 3), 0.75, dtype=dtype)
    y = torch.full((m, 3), 0.75, dtype=dtype)
    for sig in (None, [0.1, 1.0]):
        v = ops.rbf_mmd2(x, y, sig, estimator=estimator)
        assert math.isfinite(float(v))
        assert abs(float(v)) <= (1e-13 if dtype == F64 else _value_slack(5)), (sig, float(v))


@pytest.mark.parametrize("estimator,n,m", [("biased", 1100, 1000), ("unbiased", 513, 513), ("unbiased", 1100, 1000)])
def test_identical_points_large(estimator, n, m):
    # Regression: before 5331982 the kernel gave 5.5e-6 (biased 1100/1000), -9.2e-6 (unbiased
    # 513/513), 3.2e-6 (unbiased 1100/1000) here -- ~15 ulps of Q -- because the pair weights
    # were rounded to float32 and c*k summed per row in float32.
    x = torch.full((n, 3), 0.75)
    y = torch.full((m, 3), 0.75)
    for sig in (None, [1.0, 2.0, 4.0]):
        v = ops.rbf_mmd2(x, y, sig, estimator=estimator)
        Q = 5 if sig is None else len(sig)
        scales = reference.bandwidth_scales(x, y) if sig is None else [2 * s * s for s in sig]
        base = reference.rbf_mmd2(x, y, scales, estimator == "unbiased")  # exactly 0.0 here
        assert abs(float(v)) <= 2 * abs(float(base)) + _value_slack(Q), (sig, float(v), float(base))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_duplicate_rows(dtype, gen):
    a = randn(gen, 40, 3, dtype=F64)
    x = torch.cat([a, a[:15], a[:3]]).to(dtype)  # duplicates inside x
    y = torch.cat([a[10:30], randn(gen, 12, 3, dtype=F64)]).to(dtype)  # rows shared with x
    sig = [0.3, 1.2]
    for est in ("biased", "unbiased"):
        ref64 = oracle_mmd2(x, y, sig, est)
        v = ops.rbf_mmd2(x, y, sig, estimator=est)
        if dtype == F64:
            assert_close64(v, ref64, atol=1e-12)
        else:
            base = reference.rbf_mmd2(x, y, [2 * s * s for s in sig], est == "unbiased")
            assert_flash_rule(v, base, ref64, atol=_value_slack(2), what=est)


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_data_scale_extremes_with_default_bandwidths(scale, gen):
    # The default bandwidths follow the data, so tiny/huge data must give the same MMD as
    # unit-scale data (MMD with scale-equivariant bandwidths is scale invariant).
    x = randn(gen, 50, 3, dtype=F64)
    y = randn(gen, 45, 3, dtype=F64, shift=0.4)
    assert_close64(ops.rbf_mmd2(x * scale, y * scale), ops.rbf_mmd2(x, y), rtol=1e-9, atol=1e-13)


# --------------------------------------------------------------------------- bandwidths


@pytest.mark.parametrize("num,mul", [(5, 2.0), (1, 2.0), (4, 3.0), (7, 1.5), (16, 2.0)])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_mmd_bandwidths_formula(device, dtype, num, mul, gen):
    x = randn(gen, 37, 6, dtype=dtype, device=device, scale=2.0)
    y = randn(gen, 29, 6, dtype=dtype, device=device, shift=1.0)
    bw = ops.mmd_bandwidths(x, y, num=num, mul=mul)
    assert bw.shape == (num,) and bw.dtype == dtype and bw.device.type == device
    h = oracle_mean_sq_dist(x, y)
    expect = torch.tensor([math.sqrt(h * mul ** (q - num // 2) / 2.0) for q in range(num)], dtype=F64)
    if dtype == F64:
        assert_close64(bw, expect, rtol=1e-12, atol=0)
    else:
        torch.testing.assert_close(bw.cpu().to(F64), expect, rtol=2e-7, atol=0)


def test_mmd_bandwidths_no_gradient(gen):
    x = randn(gen, 10, 3).requires_grad_()
    y = randn(gen, 8, 3).requires_grad_()
    bw = ops.mmd_bandwidths(x, y)
    assert not bw.requires_grad and bw.grad_fn is None


@pytest.mark.parametrize("n,m", [(1, 1), (4, 3), (1, 0), (6, 6)])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_mmd_bandwidths_identical_points_fall_back_to_h1(dtype, n, m):
    x = torch.full((n, 3), -2.5, dtype=dtype)
    y = torch.full((m, 3), -2.5, dtype=dtype)
    bw = ops.mmd_bandwidths(x, y)
    expect = torch.tensor([math.sqrt(2.0 ** (q - 2) / 2.0) for q in range(5)], dtype=F64)
    assert bool(torch.isfinite(bw).all())
    torch.testing.assert_close(bw.to(F64), expect, rtol=1e-7, atol=0)
    if n and m:
        v = ops.rbf_mmd2(x, y)  # defined with the h = 1 fallback, and zero
        assert math.isfinite(float(v)) and abs(float(v)) <= 1e-6


def test_mmd_bandwidths_two_points(gen):
    x = torch.tensor([[0.0, 0.0]], dtype=F64)
    y = torch.tensor([[3.0, 4.0]], dtype=F64)  # h = 25
    bw = ops.mmd_bandwidths(x, y, num=3, mul=2.0)
    expect = torch.tensor([math.sqrt(25 * 2.0**q / 2) for q in (-1, 0, 1)], dtype=F64)
    assert_close64(bw, expect, rtol=1e-14, atol=0)


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_default_sigmas_equal_mmd_bandwidths(device, dtype, estimator, gen):
    x = randn(gen, 90, 5, dtype=dtype, device=device)
    y = randn(gen, 70, 5, dtype=dtype, device=device, shift=0.3)
    a = ops.rbf_mmd2(x, y, estimator=estimator)
    b = ops.rbf_mmd2(x, y, ops.mmd_bandwidths(x, y), estimator=estimator)
    if dtype == F64:
        assert_close64(a, b, rtol=1e-12, atol=1e-14)
    else:  # the float32 bandwidth tensor is rounded: allow a few float32 ulps of Q
        assert abs(float(a) - float(b)) <= 20 * EPS32 * 5


# --------------------------------------------------------------------------- gradients


def _grads(fn, x, y):
    x = x.detach().clone().requires_grad_()
    y = y.detach().clone().requires_grad_()
    v = fn(x, y)
    gx, gy = torch.autograd.grad(v, (x, y))
    return torch.cat([gx, gy])


@pytest.mark.parametrize("sig", [[0.6, 1.7], [0.5, 1.0, 2.0, 4.0], 1.3, "tensor"], ids=["odd", "ladder", "float", "tensor"])
@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_gradcheck(estimator, sig, gen):
    x = randn(gen, 5, 3, dtype=F64).requires_grad_()
    y = randn(gen, 4, 3, dtype=F64, shift=0.3).requires_grad_()
    s = torch.tensor([0.8, 1.6], dtype=F64) if sig == "tensor" else sig
    assert torch.autograd.gradcheck(lambda a, b: ops.rbf_mmd2(a, b, s, estimator=estimator), (x, y))


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_gradcheck_default_sigmas(estimator, gen):
    # sigmas=None takes the bandwidths from the data but, as documented, as constants (no
    # gradient flows through them). A finite-difference check of rbf_mmd2(x, y) would also
    # differentiate the bandwidths, so gradcheck runs with the bandwidths frozen at the base
    # point, and the sigmas=None gradient must equal that frozen-bandwidth gradient.
    x = randn(gen, 5, 3, dtype=F64).requires_grad_()
    y = randn(gen, 4, 3, dtype=F64, shift=0.3).requires_grad_()
    frozen = ops.mmd_bandwidths(x, y)
    assert torch.autograd.gradcheck(lambda a, b: ops.rbf_mmd2(a, b, frozen, estimator=estimator), (x, y))
    g_none = _grads(lambda a, b: ops.rbf_mmd2(a, b, estimator=estimator), x, y)
    g_frozen = _grads(lambda a, b: ops.rbf_mmd2(a, b, frozen, estimator=estimator), x, y)
    assert_close64(g_none, g_frozen, rtol=1e-12, atol=1e-15)
    v = ops.rbf_mmd2(x, y, estimator=estimator)
    assert_close64(v, oracle_mmd2(x, y, frozen.tolist(), estimator), atol=1e-13)


GRAD_SIZES = {"5+4": (5, 4), "1023": (600, 423), "1025": (600, 425), "2100": (1100, 1000)}


@pytest.mark.parametrize("kind", ["default", "odd", "huge"])
@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
@pytest.mark.parametrize("size", list(GRAD_SIZES))
def test_grad_matches_oracle(device, size, estimator, kind, gen):
    n, m = GRAD_SIZES[size]
    x = randn(gen, n, 3)
    y = randn(gen, m, 3, shift=0.2)
    sig = _sigmas_list(kind, x, y)
    g64 = _grads(lambda a, b: oracle_mmd2(a, b, sig, estimator), x.to(F64), y.to(F64))
    got64 = _grads(lambda a, b: ops.rbf_mmd2(a, b, sig, estimator=estimator), x.to(device, F64), y.to(device, F64))
    assert_close64(got64, g64, rtol=1e-10, atol=1e-12 * float(g64.abs().max()) + 1e-300, what="float64 grad")

    xd, yd = x.to(device), y.to(device)
    scales = [2.0 * s * s for s in sig]
    natives, bases = [], []
    for px, py in zip(permutations(gen, n, 3), permutations(gen, m, 3)):
        inv = torch.argsort(torch.cat([px, py + n]))  # back to the original row order
        natives.append(_grads(lambda a, b: ops.rbf_mmd2(a, b, sig, estimator=estimator), xd[px], yd[py])[inv.to(device)])
        bases.append(_grads(lambda a, b: reference.rbf_mmd2(a, b, scales, estimator == "unbiased"), xd[px], yd[py])[inv.to(device)])
    slack = 1e-7 + EPS32 * float(g64.abs().max())
    assert_flash_rule(natives, bases, g64, atol=slack, what=f"float32 grad {size} {estimator} {kind}")


@pytest.mark.parametrize("case", ["tiny-bandwidth-1+1", "small-bandwidth-5+4", "one-x-row-1+1025"])
def test_grad_float32_self_pairs(case, gen):
    # Regression: before 5331982 the kernel kept the self-pair weights
    # w_aa = c_aa k'(0) = -c_aa sum_q 1/s_q in the gradient 4 (z_a sum_b w_ab - sum_b w_ab z_b), so
    # the zero self-term cancelled catastrophically: n = m = 1, sigma = 1e-3 gave d/dx ~ 0.1
    # instead of ~0; n = 5, m = 4, sigma = 0.03: 40-150x the plain float32 error; n = 1,
    # m = 1025 at ordinary bandwidths: 3-40x.
    n, m, sig = {"tiny-bandwidth-1+1": (1, 1, [1e-3]), "small-bandwidth-5+4": (5, 4, [0.03]), "one-x-row-1+1025": (1, 1025, [0.7, 1.3, 3.1])}[case]
    x = randn(gen, n, 3)
    y = randn(gen, m, 3, shift=0.2)
    g64 = _grads(lambda a, b: oracle_mmd2(a, b, sig), x.to(F64), y.to(F64))
    native = _grads(lambda a, b: ops.rbf_mmd2(a, b, sig), x, y)
    base = _grads(lambda a, b: reference.rbf_mmd2(a, b, [2 * s * s for s in sig]), x, y)
    assert_flash_rule(native, base, g64, atol=1e-7 + EPS32 * float(g64.abs().max()), what=case)


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_tiny_bandwidth_grad_is_zero(device, dtype, estimator, gen):
    # Points ~1 apart, sigma = 1e-3: every cross kernel value is exp(-~1e5) = 0, so the true
    # gradient is 0 (plain PyTorch: exactly 0). Before 5331982 the self-pair cancellation
    # (test_grad_float32_self_pairs) left ~1e-10 in float64 and ~0.1 in float32.
    x = randn(gen, 5, 3, dtype=dtype, device=device)
    y = randn(gen, 4, 3, dtype=dtype, device=device)
    g = _grads(lambda a, b: ops.rbf_mmd2(a, b, 1e-3, estimator=estimator), x, y)
    assert float(g.abs().max()) <= (1e-15 if dtype == F64 else 1e-7)


def test_create_graph_raises(gen):
    x = randn(gen, 6, 3, dtype=F64).requires_grad_()
    y = randn(gen, 5, 3, dtype=F64).requires_grad_()
    v = ops.rbf_mmd2(x, y, 1.0)
    with pytest.raises(RuntimeError, match="first-order"):
        torch.autograd.grad(v, (x, y), create_graph=True)
    # gradgradcheck must fail the same way
    with pytest.raises(RuntimeError, match="first-order"):
        torch.autograd.gradgradcheck(lambda a, b: ops.rbf_mmd2(a, b, 1.0), (x, y))


def test_grad_only_where_requested(gen):
    x = randn(gen, 6, 3)
    y = randn(gen, 5, 3).requires_grad_()
    v = ops.rbf_mmd2(x, y, 1.0)
    v.backward()
    assert y.grad is not None and y.grad.shape == y.shape and x.grad is None
    with torch.no_grad():
        assert not ops.rbf_mmd2(x, y, 1.0).requires_grad
    assert not ops.rbf_mmd2(x, y.detach(), 1.0).requires_grad
    # the upstream gradient scales the result
    y2 = y.detach().clone().requires_grad_()
    (3.0 * ops.rbf_mmd2(x, y2, 1.0)).backward()
    torch.testing.assert_close(y2.grad, 3.0 * y.grad, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------- layouts / dtypes


def test_noncontiguous_inputs(device, gen):
    base_x = randn(gen, 3, 1100, dtype=F64, device=device)  # x = base_x.T: (1100, 3), strides (1, 1100)
    base_y = randn(gen, 80, 6, dtype=F64, device=device)
    x_nc, y_nc = base_x.T, base_y[::2, ::2]  # (1100, 3) transposed, (40, 3) strided
    assert not x_nc.is_contiguous() and not y_nc.is_contiguous()
    x_c, y_c = x_nc.contiguous(), y_nc.contiguous()
    for est in ("biased", "unbiased"):
        for sig in (None, [0.4, 1.1]):
            a = ops.rbf_mmd2(x_nc, y_nc, sig, estimator=est)
            b = ops.rbf_mmd2(x_c, y_c, sig, estimator=est)
            assert_close64(a, b, rtol=1e-13, atol=1e-15)
    ga = _grads(lambda a, b: ops.rbf_mmd2(a, b, 0.7), x_nc, y_nc)
    gb = _grads(lambda a, b: ops.rbf_mmd2(a, b, 0.7), x_c, y_c)
    assert_close64(ga, gb, rtol=1e-13, atol=1e-16)
    for dt in (torch.float32,):
        a = ops.rbf_mmd2(x_nc.to(dt), y_nc.to(dt), 0.9)
        b = ops.rbf_mmd2(x_c.to(dt), y_c.to(dt), 0.9)
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_on_cpu(dtype, gen):
    # Documented: float16/bfloat16 on the CPU are computed in float32; the result keeps the
    # input dtype.
    x = randn(gen, 30, 4, dtype=dtype)
    y = randn(gen, 20, 4, dtype=dtype, shift=0.5)
    v = ops.rbf_mmd2(x, y, [0.5, 1.5])
    assert v.dtype == dtype
    expect = ops.rbf_mmd2(x.float(), y.float(), [0.5, 1.5]).to(dtype)
    assert torch.equal(v, expect)
    assert abs(float(v) - float(oracle_mmd2(x, y, [0.5, 1.5]))) <= 4 * float(torch.finfo(dtype).eps) * 2


# --------------------------------------------------------------------------- bad input


def _xy(gen, n=5, m=4, d=3, dtype=torch.float32):
    return randn(gen, n, d, dtype=dtype), randn(gen, m, d, dtype=dtype)


BAD_CALLS = {
    # name: (builder(x, y) -> thunk, exception, regex the message must match)
    "x-1d": (lambda x, y: lambda: ops.rbf_mmd2(x[0], y), ValueError, r"\bx\b.*2-D"),
    "y-3d": (lambda x, y: lambda: ops.rbf_mmd2(x, y[None]), ValueError, r"\by\b.*2-D"),
    "feature-mismatch": (lambda x, y: lambda: ops.rbf_mmd2(x, y[:, :2]), ValueError, r"\bx\b.*\by\b.*columns"),
    "zero-features": (lambda x, y: lambda: ops.rbf_mmd2(x[:, :0], y[:, :0]), ValueError, r"\bx\b.*\by\b"),
    "empty-x": (lambda x, y: lambda: ops.rbf_mmd2(x[:0], y), ValueError, r"x, y: expected at least 1 row each"),
    "empty-y": (lambda x, y: lambda: ops.rbf_mmd2(x, y[:0]), ValueError, r"x, y: expected at least 1 row each"),
    "unbiased-n1": (lambda x, y: lambda: ops.rbf_mmd2(x[:1], y, estimator="unbiased"), ValueError, r"unbiased.*x \(1, 3\)"),
    "unbiased-m1": (lambda x, y: lambda: ops.rbf_mmd2(x, y[:1], estimator="unbiased"), ValueError, r"unbiased.*y \(1, 3\)"),
    "int-dtype": (lambda x, y: lambda: ops.rbf_mmd2(x.int(), y.int()), TypeError, r"\bx\b.*floating"),
    "int-y": (lambda x, y: lambda: ops.rbf_mmd2(x, y.long()), TypeError, r"\by\b.*floating"),
    "mixed-dtypes": (lambda x, y: lambda: ops.rbf_mmd2(x, y.double()), TypeError, r"x torch.float32, y torch.float64"),
    "not-a-tensor": (lambda x, y: lambda: ops.rbf_mmd2(x.numpy(), y), TypeError, r"\bx\b.*torch.Tensor"),
    "bad-estimator": (lambda x, y: lambda: ops.rbf_mmd2(x, y, estimator="mle"), ValueError, r"estimator.*'mle'"),
    "sigma-zero": (lambda x, y: lambda: ops.rbf_mmd2(x, y, 0.0), ValueError, r"sigmas.*positive"),
    "sigma-negative": (lambda x, y: lambda: ops.rbf_mmd2(x, y, [1.0, -2.0]), ValueError, r"sigmas.*positive"),
    "sigma-nan": (lambda x, y: lambda: ops.rbf_mmd2(x, y, NAN), ValueError, r"sigmas.*finite"),
    "sigma-inf": (lambda x, y: lambda: ops.rbf_mmd2(x, y, torch.tensor([1.0, INF])), ValueError, r"sigmas.*finite"),
    "sigma-empty": (lambda x, y: lambda: ops.rbf_mmd2(x, y, []), ValueError, r"sigmas.*1 to 16"),
    "sigma-17": (lambda x, y: lambda: ops.rbf_mmd2(x, y, [1.0] * 17), ValueError, r"sigmas.*1 to 16"),
    "sigma-2d-tensor": (lambda x, y: lambda: ops.rbf_mmd2(x, y, torch.ones(2, 2)), ValueError, r"sigmas.*1-D"),
    "sigma-object": (lambda x, y: lambda: ops.rbf_mmd2(x, y, object()), TypeError, r"sigmas"),
    "sigma-nested": (lambda x, y: lambda: ops.rbf_mmd2(x, y, [[1.0, 2.0]]), TypeError, r"sigmas"),
    "sigma-complex": (lambda x, y: lambda: ops.rbf_mmd2(x, y, 1j), TypeError, r"sigmas"),
    "bw-num-0": (lambda x, y: lambda: ops.mmd_bandwidths(x, y, num=0), ValueError, r"\bnum\b"),
    "bw-num-float": (lambda x, y: lambda: ops.mmd_bandwidths(x, y, num=2.0), TypeError, r"\bnum\b.*int"),
    "bw-num-bool": (lambda x, y: lambda: ops.mmd_bandwidths(x, y, num=True), TypeError, r"\bnum\b.*bool"),
    "bw-mul-0": (lambda x, y: lambda: ops.mmd_bandwidths(x, y, mul=0.0), ValueError, r"\bmul\b"),
    "bw-mul-inf": (lambda x, y: lambda: ops.mmd_bandwidths(x, y, mul=INF), ValueError, r"\bmul\b"),
    "bw-mul-nan": (lambda x, y: lambda: ops.mmd_bandwidths(x, y, mul=NAN), ValueError, r"\bmul\b"),
    "bw-feature-mismatch": (lambda x, y: lambda: ops.mmd_bandwidths(x, y[:, :1]), ValueError, r"columns"),
    "bw-int": (lambda x, y: lambda: ops.mmd_bandwidths(x.int(), y.int()), TypeError, r"\bx\b.*floating"),
}


def _poison(t, value, index=(1, 2)):
    t = t.clone()
    t[index] = value
    return t


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_input_raises(name, gen):
    build, exc, pattern = BAD_CALLS[name]
    x, y = _xy(gen)
    with pytest.raises(exc, match=pattern) as info:
        build(x, y)()
    assert info.type is exc


def _nonfinite_xy(gen, dtype, layout):
    x, y = _xy(gen, dtype=dtype)
    if layout == "mixed-sign":
        # column 2 has both signs: an infinite coordinate there meets +inf and -inf products
        # (inf - inf = NaN) in the plain-PyTorch distance expansion
        x[:, 2] = torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0], dtype=dtype)
        y[:, 2] = torch.tensor([-1.5, 1.5, -0.25, 0.25], dtype=dtype)
    else:
        # column 2 > 0 everywhere: -inf there gives D = +inf and k = 0, i.e. a finite value
        # unless the op checks its inputs
        x[:, 2] = x[:, 2].abs() + 0.1
        y[:, 2] = y[:, 2].abs() + 0.1
    return x, y


@pytest.mark.parametrize("backend", ["auto", "reference"])
@pytest.mark.parametrize("layout", ["mixed-sign", "same-sign"])
@pytest.mark.parametrize("value", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("which", ["x", "y"])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_nonfinite_input_gives_nan_or_raises_on_request(dtype, which, value, layout, backend, set_backend, gen):
    # Before 5331982 NaN/inf input gave a finite, wrong MMD: the native epilogue's clamp
    # `D > 0 ? D : 0` turned a NaN distance into 0 (and the reference path did the same for the
    # same-sign layout). Now the result is NaN, found without a host read (the old
    # raising check read a sum to the host on every call), and check_finite=True raises naming
    # the argument.
    set_backend(backend)
    x, y = _nonfinite_xy(gen, dtype, layout)
    args = {"x": x, "y": y}
    args[which] = _poison(args[which], value)
    for sig in ([0.5, 1.0], None):
        for estimator in ("biased", "unbiased"):
            assert math.isnan(float(ops.rbf_mmd2(args["x"], args["y"], sig, estimator=estimator)))
        with pytest.raises(ValueError, match=rf"\b{which}: expected finite"):
            ops.rbf_mmd2(args["x"], args["y"], sig, check_finite=True)
    with pytest.raises(ValueError, match=rf"\b{which}: expected finite"):
        ops.mmd_bandwidths(args["x"], args["y"])  # before 5331982: NaN bandwidths, no error
    assert torch.isnan(ops.mmd_bandwidths(args["x"], args["y"], check_finite=False)).all()


@pytest.mark.parametrize("sig", ["abc", "1.0", b"1", ["a"], [1.0, "x"]], ids=["str", "numeric-str", "bytes", "list-of-str", "mixed-list"])
def test_sigmas_of_wrong_type_name_argument(sig, gen):
    # Before 5331982 a str was iterated character by character and float() raised "could not
    # convert string to float: 'a'", which does not name sigmas.
    x, y = _xy(gen)
    with pytest.raises((TypeError, ValueError), match=r"sigmas"):
        ops.rbf_mmd2(x, y, sig)


@requires_cuda
def test_mixed_devices_raise(gen):
    x, y = _xy(gen)
    with pytest.raises(ValueError, match=r"x on cpu, y on cuda"):
        ops.rbf_mmd2(x, y.cuda())
    with pytest.raises(ValueError, match=r"one device"):
        ops.mmd_bandwidths(x.cuda(), y)


# --------------------------------------------------------------------------- CUDA specifics


@requires_cuda
@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_cuda_matches_cpu(estimator, gen):
    x = randn(gen, 1100, 4)
    y = randn(gen, 1000, 4, shift=0.3)
    for sig in (None, [0.7, 1.3, 3.1]):
        cpu = ops.rbf_mmd2(x, y, sig, estimator=estimator)
        gpu = ops.rbf_mmd2(x.cuda(), y.cuda(), sig, estimator=estimator)
        assert gpu.device.type == "cuda"
        assert abs(float(cpu) - float(gpu)) <= 4 * _value_slack(5)
        gc = _grads(lambda a, b: ops.rbf_mmd2(a, b, sig, estimator=estimator), x, y)
        gg = _grads(lambda a, b: ops.rbf_mmd2(a, b, sig, estimator=estimator), x.cuda(), y.cuda())
        assert max_err(gg, gc) <= 1e-5 * max(1.0, float(gc.abs().max()))


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_inputs(dtype, gen):
    x = randn(gen, 300, 4, dtype=dtype, device="cuda")
    y = randn(gen, 200, 4, dtype=dtype, device="cuda", shift=0.5)
    v = ops.rbf_mmd2(x, y, [0.5, 1.5])
    assert v.dtype == dtype and v.device.type == "cuda"
    assert abs(float(v) - float(oracle_mmd2(x.cpu(), y.cpu(), [0.5, 1.5]))) <= 8 * float(torch.finfo(dtype).eps)
