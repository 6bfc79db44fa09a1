"""Squared MMD under a sum of Gaussian RBF kernels (MPTS's distribution-matching term): the op,
its default bandwidth ladder, the fake and the first-order autograd of mpts_fast::rbf_mmd2."""
from __future__ import annotations

from typing import Sequence, Union

import torch

from mpts_fast import _checks, reference
from mpts_fast.ops import dispatch

BandwidthArg = Union[None, float, Sequence[float], torch.Tensor]


def mmd_bandwidths(
    x: torch.Tensor, y: torch.Tensor, num: int = 5, mul: float = 2.0, *, check_finite: bool = True
) -> torch.Tensor:
    """Default RBF bandwidths sigma_q for rbf_mmd2 (DAN-style ladder), without gradient.

    2 sigma_q^2 = h * mul^(q - num // 2), q = 0..num-1, where h is the mean pairwise squared
    distance over the joint set [x; y] (diagonal excluded), computed in O((n + m) d).
    If all points coincide (h = 0), h = 1 is used.

    x: (n, d), y: (m, d). Returns (num,) in x's dtype and device. check_finite=True (the
    default) raises ValueError naming x or y for NaN/inf input, which reads one number to the
    host; check_finite=False skips that (non-finite input then gives NaN bandwidths).
    """
    _validate_pair(x, y)
    num = _checks.integer(num, "num", minimum=1, what="a positive number of bandwidths")
    if not (mul > 0 and mul != float("inf")):
        raise ValueError(f"mul: expected a positive finite number, got {mul!r}")
    if check_finite:
        _checks.finite(x, "x")
        _checks.finite(y, "y")
    return reference.mmd_bandwidths(x, y, num, mul)


def _validate_pair(x, y) -> None:
    _checks.tensor(x, "x", 2)
    _checks.tensor(y, "y", 2)
    _checks.same_device(x=x, y=y)
    _checks.common_dtype(x=x, y=y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x, y: expected the same number of columns, got x {tuple(x.shape)} and y {tuple(y.shape)}")
    if x.shape[1] == 0:
        raise ValueError(f"x, y: expected at least one column (feature), got shapes {tuple(x.shape)} and {tuple(y.shape)}")


def _scales_from_sigmas(sigmas: BandwidthArg) -> list[float]:
    if isinstance(sigmas, (str, bytes)):
        raise TypeError(f"sigmas: expected None, a float, a sequence of floats or a 1-D tensor, got {type(sigmas).__name__}")
    if isinstance(sigmas, torch.Tensor):
        if sigmas.dim() > 1:
            raise ValueError(f"sigmas: expected a float or a 1-D tensor, got shape {tuple(sigmas.shape)}")
        values = [float(v) for v in sigmas.detach().reshape(-1).tolist()]
    elif isinstance(sigmas, (int, float)):
        values = [float(sigmas)]
    else:
        try:
            values = [float(v) for v in sigmas]
        except (TypeError, ValueError):
            raise TypeError(f"sigmas: expected None, a float, a sequence of floats or a 1-D tensor, got {type(sigmas).__name__}") from None
    if not 1 <= len(values) <= 16:
        raise ValueError(f"sigmas: expected 1 to 16 bandwidths, got {len(values)}")
    for v in values:
        if not (v > 0 and v != float("inf")):
            raise ValueError(f"sigmas: expected positive finite bandwidths, got {values}")
    return [2.0 * v * v for v in values]


def rbf_mmd2(
    x: torch.Tensor,
    y: torch.Tensor,
    sigmas: BandwidthArg = None,
    *,
    estimator: str = "biased",
    check_finite: bool = False,
) -> torch.Tensor:
    """Squared MMD between samples x and y under a sum of Gaussian RBF kernels.

    k(a, b) = sum_q exp(-||a - b||^2 / (2 sigma_q^2)). sigmas: a float, a sequence or a 1-D
    tensor (treated as constants: no gradient flows to them); None uses mmd_bandwidths(x, y).
    estimator: "biased" (V-statistic, diagonals included; Eq. 6 of the MPTS paper) or
    "unbiased" (U-statistic, diagonals excluded; needs n, m >= 2).

    x: (n, d), y: (m, d) floating tensors on one device. Returns a 0-dim tensor, differentiable
    in x and y (first order). The native path never holds an n x m matrix: tiles of
    ||a||^2 + ||b||^2 - 2 a.b are computed by GEMM and reduced in a fused epilogue, and the
    gradient is accumulated in the same pass.

    Non-finite input: NaN or inf anywhere in x or y makes the result NaN (so is any loss it
    enters), found on the device without reading anything back to the host, so a training step
    never waits on the GPU for the check. check_finite=True raises ValueError naming x or y instead
    (one host read per call). With sigmas=None or Python floats the op reads nothing to the
    host at all: it runs on meta tensors and traces with torch.compile(fullgraph=True); a
    tensor `sigmas` is read to the host once per call.
    """
    unbiased = _validate_mmd_call(x, y, estimator, check_finite)
    if sigmas is None:
        return _ladder_mmd2(x, y, 5, 2.0, unbiased)
    return _mmd2_nan_if_nonfinite(x, y, _scales_from_sigmas(sigmas), unbiased)


def rbf_mmd2_ladder(
    x: torch.Tensor, y: torch.Tensor, num: int = 5, mul: float = 2.0, *, estimator: str = "biased",
    check_finite: bool = False,
) -> torch.Tensor:
    """rbf_mmd2 under the bandwidths mmd_bandwidths(x, y, num, mul), computed on the device
    (rbf_mmd2(x, y) is rbf_mmd2_ladder(x, y, 5, 2.0)): unlike passing mmd_bandwidths' tensor
    as sigmas, nothing is read to the host, so it also traces with torch.compile."""
    unbiased = _validate_mmd_call(x, y, estimator, check_finite)
    num = _checks.integer(num, "num", minimum=1, what="a positive number of bandwidths")
    if not (mul > 0 and mul != float("inf")):
        raise ValueError(f"mul: expected a positive finite number, got {mul!r}")
    return _ladder_mmd2(x, y, num, float(mul), unbiased)


def _validate_mmd_call(x, y, estimator: str, check_finite: bool) -> bool:
    """Checks of an rbf_mmd2 call; returns whether the estimator is the unbiased one."""
    _validate_pair(x, y)
    _checks.choice(estimator, "estimator", ("biased", "unbiased"))
    unbiased = estimator == "unbiased"
    need = 2 if unbiased else 1
    if x.shape[0] < need or y.shape[0] < need:
        raise ValueError(
            f"x, y: expected at least {need} row{'s' if need > 1 else ''} each for the {estimator} estimator, got x {tuple(x.shape)} and y {tuple(y.shape)}"
        )
    if check_finite:
        _checks.finite(x, "x")
        _checks.finite(y, "y")
    return unbiased


def _ladder_mmd2(x: torch.Tensor, y: torch.Tensor, num: int, mul: float, unbiased: bool) -> torch.Tensor:
    """MMD^2 under the default ladder 2 sigma_q^2 = h * mul^(q - num // 2), h from the data.

    exp(-||a - b||^2 / (h r_q)) = exp(-||a/sqrt(h) - b/sqrt(h)||^2 / r_q): the points are scaled
    by 1/sqrt(h), a 0-dim tensor without gradient, and the kernel runs with the constant scales
    r_q, so h is never read to the host. Inputs assumed validated."""
    cdt = dispatch.compute_dtype(x.dtype, x.device)
    # h sums ||z||^2 and z over every row in float64: it is NaN or inf exactly when x or y holds a
    # NaN or inf (float64 overflow aside), so it doubles as the finiteness check.
    h = reference.ladder_base(x.detach(), y.detach())
    inv = h.rsqrt().to(cdt)
    value = _mmd2(x.to(cdt) * inv, y.to(cdt) * inv, reference.ladder_ratios(num, mul), unbiased)
    return (value * _one_or_nan(h, cdt)).to(x.dtype)


def _mmd2_nan_if_nonfinite(x: torch.Tensor, y: torch.Tensor, scales: list[float], unbiased: bool) -> torch.Tensor:
    # The kernels may clamp a NaN distance to 0 or turn an infinite one into a zero kernel value,
    # i.e. a finite, wrong MMD: the result is multiplied by NaN when x or y holds a NaN/inf, which
    # a float64 sum of each shows (O((n + m) d) against the O((n + m)^2 d) op), read by nobody on
    # the host.
    total = x.detach().sum(dtype=torch.float64) + y.detach().sum(dtype=torch.float64)
    return _mmd2(x, y, scales, unbiased) * _one_or_nan(total, x.dtype)


def _one_or_nan(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """1 where the 0-dim `t` is finite, NaN where it is not (inf * 0 and NaN * 0 are NaN), on the
    device."""
    return (t * 0 + 1).to(dtype)


def _mmd2(x: torch.Tensor, y: torch.Tensor, scales: list[float], unbiased: bool) -> torch.Tensor:
    if not dispatch.native_for("rbf_mmd2", x.device, x.dtype):
        return reference.rbf_mmd2(x, y, scales, unbiased)
    cdt = dispatch.compute_dtype(x.dtype, x.device)
    with_grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
    value, _ = torch.ops.mpts_fast.rbf_mmd2(x.to(cdt), y.to(cdt), scales, unbiased, with_grad)
    return value.to(x.dtype)


@dispatch.register_fake("rbf_mmd2")
def _(x, y, scales, unbiased, with_grad):
    torch._check(x.dim() == 2 and y.dim() == 2,
                 lambda: f"rbf_mmd2: expected 2-D x and y, got {x.dim()}-D and {y.dim()}-D")
    torch._check(x.dtype in dispatch.FLOATS and y.dtype == x.dtype,
                 lambda: f"rbf_mmd2: expected x and y of one floating dtype, got {x.dtype} and {y.dtype}")
    torch._check(x.device == y.device,
                 lambda: f"rbf_mmd2: expected x and y on one device, got {x.device} and {y.device}")
    torch._check(x.shape[1] == y.shape[1],
                 lambda: "rbf_mmd2: expected x and y with the same number of columns")
    torch._check(x.shape[0] >= (2 if unbiased else 1),
                 lambda: "rbf_mmd2: expected enough rows in x for the estimator")
    torch._check(y.shape[0] >= (2 if unbiased else 1),
                 lambda: "rbf_mmd2: expected enough rows in y for the estimator")
    torch._check(1 <= len(scales) <= 16, lambda: f"rbf_mmd2: expected 1 to 16 scales, got {len(scales)}")
    rows = x.shape[0] + y.shape[0] if with_grad else 0
    return x.new_empty(()), x.new_empty((rows, x.shape[1]))


def _mmd_setup_context(ctx, inputs, output) -> None:
    x = inputs[0]
    ctx.n = x.shape[0]
    ctx.with_grad = inputs[4]
    ctx.save_for_backward(output[1])


def _mmd_backward(ctx, grad_value, _grad_z):
    if torch.is_grad_enabled():
        raise RuntimeError("mpts_fast.ops.rbf_mmd2 supports first-order gradients only (no create_graph)")
    if not ctx.with_grad:
        raise RuntimeError("rbf_mmd2 was called with with_grad=False; no gradient was computed")
    (grad_z,) = ctx.saved_tensors
    g = grad_value * grad_z
    return g[: ctx.n], g[ctx.n :], None, None, None


dispatch.register_autograd("rbf_mmd2", _mmd_backward, setup_context=_mmd_setup_context)
