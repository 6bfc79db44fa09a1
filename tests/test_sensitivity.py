"""sensitivity / sensitivity_matrix against float64 oracles: an autograd Jacobian of the network
(d o_k / d x_i per pattern) and the einsum of the formula in sensitivity.h.

The CPU kernel works in chunks of 32 patterns, so P runs over 1, 63, 65 and 300. Large float32
calls (>= 3M multiply-adds, >= 32 inputs) on AVX-512 builds reduce the sensitivity product in
12-row x 32-column register tiles (row_norm_gemm_avx512.h); the PACKED sizes reach that path with
rows (P K) and columns (I) off those multiples and one pattern alone in the last chunk.
"""
from __future__ import annotations

import pytest
import torch

from mpts_fast import ops, reference
from mpts_testutil import (
    F64,
    INF,
    NAN,
    NORM_ORD,
    assert_close64,
    assert_flash_rule,
    einsum_sensitivity_matrix,
    oracle_sensitivity,
    oracle_sensitivity_matrix,
    randn,
    requires_cuda,
)

EPS32 = 2.0**-23
NORMS = ["l1", "l2", "inf"]
OUTPUTS = ["sigmoid", "linear"]
SHAPES = {"I7-J5-K3": (7, 5, 3), "I1-J1-K1": (1, 1, 1), "I33-J17-K10": (33, 17, 10)}


def _net(gen, P, I, J, K, dtype=torch.float32, device="cpu", x_scale=1.0, w_scale=1.0):
    x = randn(gen, P, I, dtype=dtype, device=device, scale=x_scale)
    V = randn(gen, J, I, dtype=dtype, device=device, scale=w_scale / I**0.5)
    b_v = randn(gen, J, dtype=dtype, device=device, scale=0.5)
    W = randn(gen, K, J, dtype=dtype, device=device, scale=w_scale / J**0.5)
    b_w = randn(gen, K, dtype=dtype, device=device, scale=0.5)
    return x, V, b_v, W, b_w


def _as(args, dtype=None, device=None):
    return tuple(t.to(dtype=dtype or t.dtype, device=device or t.device) for t in args)


def _check(args32, norm, output, what, factor=2.0):
    """float64 native vs oracle at ~1e-10, float32 native vs the flash rule."""
    ref64 = oracle_sensitivity(*args32, norm=norm, output=output)
    got64 = ops.sensitivity(*_as(args32, F64), norm=norm, output=output)
    assert got64.dtype == F64 and got64.shape == (args32[0].shape[0],)
    scale = float(ref64.abs().max()) if ref64.numel() else 0.0
    assert_close64(got64, ref64, rtol=1e-10, atol=1e-14 * max(scale, 1e-300), what=f"float64 {what}")
    got32 = ops.sensitivity(*args32, norm=norm, output=output)
    assert got32.dtype == torch.float32 and got32.device == args32[0].device
    base32 = reference.sensitivity(*args32, norm=norm, output=output)
    assert_flash_rule(got32, base32, ref64, atol=1e-7 + EPS32 * scale, factor=factor, what=f"float32 {what}")
    assert float(got32.min()) >= 0.0 if got32.numel() else True


# --------------------------------------------------------------------------- accuracy grid


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("P", [1, 63, 65, 300])
def test_matches_oracle(device, P, shape, norm, output, gen):
    args = _net(gen, P, *SHAPES[shape], device=device)
    _check(args, norm, output, f"P={P} {shape} {norm} {output}")


PACKED = {"I40-J300-K7": (40, 300, 7), "I64-J257-K1": (64, 257, 1), "I785-J64-K10": (785, 64, 10)}


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("shape", list(PACKED))
@pytest.mark.parametrize("P", [97, 161])
def test_packed_path_matches_oracle(P, shape, norm, output, gen):
    args = _net(gen, P, *PACKED[shape])
    _check(args, norm, output, f"P={P} {shape} {norm} {output}")


def test_oracles_agree(gen):
    # The Jacobian oracle and the written-out formula are independent derivations.
    args = _net(gen, 40, 6, 4, 3, dtype=F64)
    for output in OUTPUTS:
        torch.testing.assert_close(
            oracle_sensitivity_matrix(*args, output=output), einsum_sensitivity_matrix(*args, output=output), rtol=1e-12, atol=1e-15
        )


@pytest.mark.parametrize("size", [(65, 9, 6, 4), (97, 40, 300, 7)], ids=["small", "packed"])
@pytest.mark.parametrize("case", ["saturated-hidden", "saturated-output", "huge-inputs", "tiny-weights", "mixed"])
@pytest.mark.parametrize("norm", NORMS)
def test_hostile_values(device, case, norm, size, gen):
    P, I, J, K = size
    if case == "saturated-hidden":  # |x V^T| ~ 1e2: sigmoid'(hidden) underflows for most units
        args = _net(gen, P, I, J, K, device=device, w_scale=1e2)
    elif case == "saturated-output":  # hidden fine, output pre-activations ~ 1e2
        x, V, b_v, W, b_w = _net(gen, P, I, J, K, device=device)
        args = (x, V, b_v, W * 300.0, b_w)
    elif case == "huge-inputs":
        args = _net(gen, P, I, J, K, device=device, x_scale=1e4)
    elif case == "tiny-weights":
        args = _net(gen, P, I, J, K, device=device, w_scale=1e-3)
    else:  # some patterns saturated, some not
        x, V, b_v, W, b_w = _net(gen, P, I, J, K, device=device)
        x = x.clone()
        x[::3] *= 1e3
        args = (x, V, b_v, W, b_w)
    for output in OUTPUTS:
        _check(args, norm, output, f"{case} {norm} {output}")
        assert bool(torch.isfinite(ops.sensitivity(*args, norm=norm, output=output)).all())


# --------------------------------------------------------------------------- matrix


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("P", [1, 65])
def test_matrix_matches_per_pattern_loop(device, P, output, gen):
    args = _net(gen, P, 5, 4, 3, dtype=F64, device=device)
    S = ops.sensitivity_matrix(*args, output=output)
    assert S.shape == (P, 3, 5) and S.dtype == F64 and S.device.type == device
    x, V, b_v, W, b_w = _as(args, device="cpu")

    def f(xp):
        o = W @ torch.sigmoid(V @ xp + b_v) + b_w
        return torch.sigmoid(o) if output == "sigmoid" else o

    loop = torch.stack([torch.autograd.functional.jacobian(f, x[p]) for p in range(P)])
    assert_close64(S, loop, rtol=1e-12, atol=1e-15)
    # float32 matrix against the same loop
    S32 = ops.sensitivity_matrix(*_as(args, torch.float32), output=output)
    assert S32.dtype == torch.float32
    torch.testing.assert_close(S32.cpu().to(F64), loop, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_sensitivity_is_max_norm_of_matrix(device, dtype, norm, output, gen):
    args = _net(gen, 130, 8, 6, 5, dtype=dtype, device=device)
    phi = ops.sensitivity(*args, norm=norm, output=output)
    S = ops.sensitivity_matrix(*args, output=output)
    expect = torch.linalg.vector_norm(S, ord=NORM_ORD[norm], dim=-1).amax(-1)
    if dtype == F64:
        assert_close64(phi, expect, rtol=1e-12, atol=1e-16)
    else:
        torch.testing.assert_close(phi, expect, rtol=1e-5, atol=1e-7)


def test_matrix_is_differentiable(gen):
    args = [t.requires_grad_() for t in _net(gen, 3, 3, 2, 2, dtype=F64)]
    assert torch.autograd.gradcheck(lambda *a: ops.sensitivity_matrix(*a), tuple(args))


def test_sensitivity_is_not_differentiable(gen):
    args = [t.requires_grad_() for t in _net(gen, 10, 3, 2, 2)]
    out = ops.sensitivity(*args)
    assert not out.requires_grad and out.grad_fn is None


# --------------------------------------------------------------------------- shapes / layouts


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_empty_patterns(device, dtype, gen):
    x, V, b_v, W, b_w = _net(gen, 0, 4, 3, 2, dtype=dtype, device=device)
    for norm in NORMS:
        out = ops.sensitivity(x, V, b_v, W, b_w, norm=norm)
        assert out.shape == (0,) and out.dtype == dtype and out.device.type == device
    S = ops.sensitivity_matrix(x, V, b_v, W, b_w)
    assert S.shape == (0, 2, 4)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_noncontiguous_inputs(device, dtype, gen):
    P, I, J, K = 70, 6, 5, 3
    x_nc = randn(gen, I, P, dtype=dtype, device=device).T  # transposed
    V_nc = randn(gen, I, J, dtype=dtype, device=device, scale=0.5).T  # transposed
    b_v_nc = randn(gen, 2 * J, dtype=dtype, device=device)[::2]  # strided
    W_nc = randn(gen, K, 2 * J, dtype=dtype, device=device, scale=0.5)[:, 1::2]  # column slice
    b_w_nc = randn(gen, K, 2, dtype=dtype, device=device)[:, 0]  # strided column
    nc = (x_nc, V_nc, b_v_nc, W_nc, b_w_nc)
    assert not any(t.is_contiguous() for t in nc)
    c = tuple(t.contiguous() for t in nc)
    # bit-identical on the CPU (the binding copies to contiguous); on CUDA a transposed operand
    # may go to cuBLAS as is and round differently
    exact = dict(rtol=0, atol=0) if device == "cpu" else dict(rtol=1e-5, atol=1e-7)
    for norm in NORMS:
        for output in OUTPUTS:
            a = ops.sensitivity(*nc, norm=norm, output=output)
            b = ops.sensitivity(*c, norm=norm, output=output)
            torch.testing.assert_close(a, b, **exact)
    # sensitivity_matrix is plain PyTorch: the GEMM may round differently for strided operands
    tol = dict(rtol=1e-12, atol=1e-15) if dtype == F64 else dict(rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ops.sensitivity_matrix(*nc), ops.sensitivity_matrix(*c), **tol)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_on_cpu(dtype, gen):
    # Documented: float16/bfloat16 on the CPU are computed in float32; the result keeps the
    # input dtype.
    args = _as(_net(gen, 65, 6, 5, 3), dtype)
    out = ops.sensitivity(*args, norm="l2")
    assert out.dtype == dtype
    expect = ops.sensitivity(*_as(args, torch.float32), norm="l2").to(dtype)
    torch.testing.assert_close(out, expect, rtol=0, atol=0)


# --------------------------------------------------------------------------- bad input

NAMES = ("x", "V", "b_v", "W", "b_w")


def _bad(gen, name, value):
    args = dict(zip(NAMES, _net(gen, 6, 4, 3, 2)))
    args[name] = value(args) if callable(value) else value
    return args


BAD_SHAPES = {
    # (argument replaced, builder, exception, message regex)
    "V-cols": ("V", lambda a: torch.zeros(3, 5), ValueError, r"\bV\b: expected shape \(J, 4\)"),
    "b_v-len": ("b_v", lambda a: torch.zeros(4), ValueError, r"\bb_v\b: expected shape \(3,\)"),
    "W-cols": ("W", lambda a: torch.zeros(2, 4), ValueError, r"\bW\b: expected shape \(K, 3\)"),
    "b_w-len": ("b_w", lambda a: torch.zeros(3), ValueError, r"\bb_w\b: expected shape \(2,\)"),
    "x-1d": ("x", lambda a: a["x"][0], ValueError, r"\bx\b: expected a 2-D"),
    "V-3d": ("V", lambda a: a["V"][None], ValueError, r"\bV\b: expected a 2-D"),
    "b_v-2d": ("b_v", lambda a: a["b_v"][None], ValueError, r"\bb_v\b: expected a 1-D"),
    "W-1d": ("W", lambda a: a["W"][0], ValueError, r"\bW\b: expected a 2-D"),
    "b_w-0d": ("b_w", lambda a: a["b_w"][0], ValueError, r"\bb_w\b: expected a 1-D"),
    "no-inputs": ("x", lambda a: a["x"][:, :0], ValueError, r"I=0"),
    "x-int": ("x", lambda a: a["x"].int(), TypeError, r"\bx\b: expected a floating"),
    "W-int": ("W", lambda a: a["W"].long(), TypeError, r"\bW\b: expected a floating"),
    "V-double": ("V", lambda a: a["V"].double(), TypeError, r"V torch.float64"),
    "b_w-half": ("b_w", lambda a: a["b_w"].half(), TypeError, r"b_w torch.float16"),
    "V-list": ("V", lambda a: a["V"].tolist(), TypeError, r"\bV\b: expected a torch.Tensor"),
}


@pytest.mark.parametrize("fn", ["sensitivity", "sensitivity_matrix"])
@pytest.mark.parametrize("case", list(BAD_SHAPES))
def test_bad_input_raises(case, fn, gen):
    name, build, exc, pattern = BAD_SHAPES[case]
    args = _bad(gen, name, build)
    with pytest.raises(exc, match=pattern):
        getattr(ops, fn)(*args.values())


@pytest.mark.parametrize("value", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fn", ["sensitivity", "sensitivity_matrix"])
def test_nonfinite_input_raises(fn, name, value, gen):
    def poison(a):
        t = a[name].clone()
        t.view(-1)[-1] = value
        return t

    args = _bad(gen, name, poison)
    with pytest.raises(ValueError, match=rf"\b{name}: expected finite"):
        getattr(ops, fn)(*args.values())


# Regression: the CPU kernel's inf-norm was a max that drops NaN (max(0, NaN)
# is 0), while its l1/l2 norms and every CUDA norm propagate it. ops.sensitivity rejects non-finite
# inputs before the kernel runs, so the raw op is called: a NaN must reach phi in every norm.
@pytest.mark.parametrize("size", [(9, 5, 4), (40, 300, 7)], ids=["small", "packed"])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("output", OUTPUTS)
def test_kernel_norms_propagate_nan(dtype, output, size, gen):
    from mpts_fast import _native

    if "cpu" not in _native.native_devices():
        pytest.skip("mpts_fast._C is not built")
    x, V, b_v, W, b_w = _net(gen, 70, *size, dtype)
    x[66, 2] = NAN  # third 32-pattern chunk; "packed" in float32: register tiles shared with patterns 65, 67
    for norm, code in ops._NORM_CODES.items():
        phi = torch.ops.mpts_fast.sensitivity(x, V, b_v, W, b_w, code, output == "sigmoid")
        assert bool(phi[66].isnan()), f"{norm}: phi = {float(phi[66])} for a pattern with a NaN input"
        others = torch.cat([phi[:66], phi[67:]])
        assert bool(others.isfinite().all()), f"{norm}: NaN leaked into other patterns"


def test_bad_strings_raise(gen):
    args = _net(gen, 5, 3, 2, 2)
    with pytest.raises(ValueError, match=r"norm.*'l3'"):
        ops.sensitivity(*args, norm="l3")
    with pytest.raises(ValueError, match=r"norm"):
        ops.sensitivity(*args, norm="L1")
    with pytest.raises(ValueError, match=r"output.*'relu'"):
        ops.sensitivity(*args, output="relu")
    with pytest.raises(ValueError, match=r"output.*'tanh'"):
        ops.sensitivity_matrix(*args, output="tanh")


@requires_cuda
def test_mixed_devices_raise(gen):
    x, V, b_v, W, b_w = _net(gen, 5, 3, 2, 2)
    with pytest.raises(ValueError, match=r"one device"):
        ops.sensitivity(x, V.cuda(), b_v, W, b_w)
    with pytest.raises(ValueError, match=r"b_w on cuda"):
        ops.sensitivity(x, V, b_v, W, b_w.cuda())


# --------------------------------------------------------------------------- CUDA specifics


@requires_cuda
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("P", [1, 65, 300])
def test_cuda_matches_cpu(P, norm, gen):
    args = _net(gen, P, 33, 17, 10)
    for output in OUTPUTS:
        cpu = ops.sensitivity(*args, norm=norm, output=output)
        gpu = ops.sensitivity(*_as(args, device="cuda"), norm=norm, output=output)
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-7)


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_inputs(dtype, gen):
    args = _as(_net(gen, 65, 6, 5, 3), dtype, "cuda")
    out = ops.sensitivity(*args)
    assert out.dtype == dtype and out.device.type == "cuda"
    ref = oracle_sensitivity(*args)
    torch.testing.assert_close(out.cpu().to(F64), ref, rtol=4 * float(torch.finfo(dtype).eps), atol=1e-4)
