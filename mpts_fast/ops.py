"""The public drop-in ops. Each runs the native kernel (C++/OpenMP on CPU, CUDA on GPU) when one
serves the tensors' device and dtype, and the plain-PyTorch version in
:mod:`mpts_fast.reference` otherwise (see :mod:`mpts_fast._native` for MPTS_FAST_BACKEND).

Dtypes: float32 and float64 on CPU; float32, float16 and bfloat16 on CUDA (fp32 accumulation;
float64 on CUDA runs the reference). float16/bfloat16 on CPU are computed in float32.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence, Union

import numpy as np
import torch

from mpts_fast import _checks, _native, reference
from mpts_fast._types import SnapshotScores

__all__ = [
    "rbf_mmd2",
    "rbf_mmd2_ladder",
    "mmd_bandwidths",
    "snapshot_uncertainty",
    "SnapshotAccumulator",
    "SnapshotScores",
    "sensitivity",
    "sensitivity_matrix",
]

_HALF = (torch.float16, torch.bfloat16)


def _compute_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """The dtype the native kernels run in for inputs of `dtype` on `device`."""
    if dtype in _HALF:
        return torch.float32
    return dtype


# Read once: whether this build has CUDA kernels cannot change in a process, and the call into _C
# (a pybind function) would break a torch.compile graph on every op call.
_CUDA_KERNELS = _native._C is not None and bool(_native._C.cuda_compiled())


def _native_for(op: str, device: torch.device, dtype: torch.dtype) -> bool:
    if device.type == "cuda" and dtype == torch.float64:
        return False  # CUDA kernels are fp32; the float64 reference is the exact path there
    if _native._C is not None and (device.type in ("cpu", "meta") or (device.type == "cuda" and _CUDA_KERNELS)):
        # a kernel serves this device (meta: the registered fake computes shapes and dtypes)
        return _native.backend_setting() != "reference"
    return _native.use_native(op, device)  # no kernel here: fall back with a warning, or refuse


# ----------------------------------------------------------------------------- MMD

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
        raise ValueError(f"mul must be a positive finite number, got {mul!r}")
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
        raise ValueError(f"x and y must have the same number of columns, got x {tuple(x.shape)} and y {tuple(y.shape)}")
    if x.shape[1] == 0:
        raise ValueError("x and y must have at least one column (feature)")


def _scales_from_sigmas(sigmas: BandwidthArg) -> list[float]:
    if isinstance(sigmas, (str, bytes)):
        raise TypeError(f"sigmas must be None, a float, a sequence of floats or a 1-D tensor, got {type(sigmas).__name__}")
    if isinstance(sigmas, torch.Tensor):
        if sigmas.dim() > 1:
            raise ValueError(f"sigmas must be a float or a 1-D tensor, got shape {tuple(sigmas.shape)}")
        values = [float(v) for v in sigmas.detach().reshape(-1).tolist()]
    elif isinstance(sigmas, (int, float)):
        values = [float(sigmas)]
    else:
        try:
            values = [float(v) for v in sigmas]
        except (TypeError, ValueError):
            raise TypeError(f"sigmas must be None, a float, a sequence of floats or a 1-D tensor, got {type(sigmas).__name__}") from None
    if not 1 <= len(values) <= 16:
        raise ValueError(f"sigmas must hold 1 to 16 bandwidths, got {len(values)}")
    for v in values:
        if not (v > 0 and v != float("inf")):
            raise ValueError(f"sigmas must be positive and finite, got {values}")
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
        raise ValueError(f"mul must be a positive finite number, got {mul!r}")
    return _ladder_mmd2(x, y, num, float(mul), unbiased)


def _validate_mmd_call(x, y, estimator: str, check_finite: bool) -> bool:
    """Checks of an rbf_mmd2 call; returns whether the estimator is the unbiased one."""
    _validate_pair(x, y)
    _checks.choice(estimator, "estimator", ("biased", "unbiased"))
    unbiased = estimator == "unbiased"
    need = 2 if unbiased else 1
    if x.shape[0] < need or y.shape[0] < need:
        raise ValueError(
            f"the {estimator} estimator needs at least {need} rows in x and y, got x {tuple(x.shape)} and y {tuple(y.shape)}"
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
    cdt = _compute_dtype(x.dtype, x.device)
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
    if not _native_for("rbf_mmd2", x.device, x.dtype):
        return reference.rbf_mmd2(x, y, scales, unbiased)
    cdt = _compute_dtype(x.dtype, x.device)
    with_grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
    value, _ = torch.ops.mpts_fast.rbf_mmd2(x.to(cdt), y.to(cdt), scales, unbiased, with_grad)
    return value.to(x.dtype)


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


# ------------------------------------------------------------------- snapshot scores


def _validate_logits(logits, name: str, dim: int) -> None:
    _checks.tensor(logits, name, dim)
    if logits.shape[-1] < 1:
        raise ValueError(f"{name} must have at least one class (last dim), got shape {tuple(logits.shape)}")


def _scores_all_finite(scores: torch.Tensor) -> torch.Tensor:
    """0-dim bool tensor on the scores' device: every value of the (5, N) snapshot scores is finite.

    The kernels let NaN/inf logits poison the item's scores, so checking the result costs far
    less than a pass over the (S, N, C) input. A sum, not isfinite().all(): no (5, N) bool
    temporary (at N = 1e6 on the CPU, 0.2-2 ms instead of 6-9 ms). Exact here because every
    score is bounded (entropy and bald by log C, variance by S / (S - 1) <= 2, margin and least
    confidence by 1, all >= 0 up to rounding), so a sum of finite scores cannot overflow, and any
    NaN or inf (of either sign) makes the sum NaN or inf."""
    return scores.sum().isfinite()


def _nonfinite_logits_error(name: str) -> ValueError:
    return ValueError(
        f"{name} contains NaN or infinite values (NaN, +inf, or an item whose logits are all -inf; "
        "-inf in some classes masks those classes and is fine)"
    )


_PROBABILITY_SAMPLE_ROWS = 64


def _looks_like_probabilities(logits_2d: torch.Tensor) -> torch.Tensor:
    """0-dim bool tensor, computed on the device: the first 64 rows of (N, C) logits are all in
    [0, 1] and each sums to 1 (within 1e-3), i.e. probabilities passed where logits belong. A
    sample: O(64 C) work whatever N, read to the host together with a check the caller reads
    anyway."""
    sample = logits_2d[:_PROBABILITY_SAMPLE_ROWS]
    if sample.shape[-1] < 2:
        return torch.zeros((), dtype=torch.bool, device=sample.device)
    in_unit = ((sample >= 0) & (sample <= 1)).all()
    sums_to_one = ((sample.sum(-1, dtype=torch.float64) - 1).abs() <= 1e-3).all()
    return in_unit & sums_to_one


def _warn_probabilities(name: str) -> None:
    warnings.warn(
        f"{name} looks like probabilities (every value in [0, 1], rows summing to 1): the snapshot scores take "
        "logits (or log-probabilities) and apply softmax themselves; pass model outputs before softmax",
        UserWarning,
        stacklevel=3,
    )


def snapshot_uncertainty(logits: torch.Tensor, *, check_finite: bool = False) -> SnapshotScores:
    """Uncertainty scores of the mean softmax of S snapshots, in one pass over the logits.

    logits: (S, N, C) from S snapshots (or MC-dropout passes, or ensemble members). With
    p_s = softmax(logits_s) and pbar = mean_s p_s, returns SnapshotScores of (N,) tensors:
    entropy = -sum_c pbar log pbar; bald = entropy - mean_s H(p_s) (clamped at 0);
    variance = sum_c sample variance of p_s over s (S - 1 denominator, 0 when S = 1);
    margin = pbar(1st) - pbar(2nd); least_confidence = 1 - max pbar. Scores are float32
    (float64 for float64 logits). Every score is higher for a more uncertain item except margin,
    which is lower: rank with scores.most_uncertain(k, field) or scores.uncertainty(field).

    -inf logits mask classes: the scores equal those of the logits without them. NaN, +inf or an
    item with every logit at -inf makes that item's entropy, bald and variance NaN or inf (margin
    and least confidence may stay finite), on the device: by default nothing is read to the host,
    so a GPU scoring loop never waits on a check. check_finite=True
    reads one flag pair to the host and raises ValueError on such logits, and warns when the logits
    look like probabilities (a sample of rows all in [0, 1], summing to 1: softmax is applied here).
    """
    _validate_logits(logits, "logits", 3)
    if logits.shape[0] < 1:
        raise ValueError(f"logits must hold at least one snapshot (dim 0), got shape {tuple(logits.shape)}")
    if logits.shape[1] == 0:
        empty = logits.new_zeros((0,), dtype=_compute_dtype(logits.dtype, logits.device))
        return SnapshotScores(*(empty.clone() for _ in range(5)))
    if not _native_for("snapshot_uncertainty", logits.device, logits.dtype):
        out = reference.snapshot_uncertainty(logits.to(_compute_dtype(logits.dtype, logits.device)))
        scores = None
    else:
        native_logits = logits.to(_compute_dtype(logits.dtype, logits.device)) if logits.device.type == "cpu" else logits
        scores = torch.ops.mpts_fast.snapshot_scores(native_logits)
        out = SnapshotScores.from_stacked(scores)
    if check_finite:
        _check_scores(torch.stack(out) if scores is None else scores, _looks_like_probabilities(logits[0]), "logits")
    return out


def _check_scores(scores: torch.Tensor, looks_like_probs: torch.Tensor, name: str) -> None:
    """The check_finite of the snapshot scores: one host read of both device-side flags; warns
    when `name` looked like probabilities, raises ValueError when a score is not finite."""
    finite, probs = torch.stack([_scores_all_finite(scores), looks_like_probs]).tolist()  # the one read
    if probs:
        _warn_probabilities(name)
    if not finite:
        raise _nonfinite_logits_error(name)


def _accumulate_logits_dtype(logits_dtype: torch.dtype, state_dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """The dtype snapshot_accumulate's native kernel takes logits of `logits_dtype` in: the
    state's dtype on the CPU; on CUDA (float32 state) float32, float16 and bfloat16 are read as
    stored and anything else (float64) is converted to float32."""
    if device.type == "cuda" and state_dtype == torch.float32 and logits_dtype in (torch.float32, *_HALF):
        return logits_dtype
    return state_dtype


class SnapshotAccumulator:
    """Streams snapshots one (N, C) batch of logits at a time; O(N C) memory.

    acc = SnapshotAccumulator(n, num_classes, device="cuda")
    for model in snapshots: acc.update(model_logits)      # (n, C) each
    scores = acc.scores()                                 # same as snapshot_uncertainty(stack)

    The state (Welford mean and M2 per class, summed snapshot entropy) is float32, or float64
    with dtype=torch.float64. Logits as in snapshot_uncertainty (-inf masks a class; margin is
    the one score where lower = more uncertain). Native updates and scores() read nothing to the
    host; scores(check_finite=True) reads one flag pair (non-finite scores raise ValueError, first
    logits that looked like probabilities warn).
    """

    def __init__(self, n: int, num_classes: int, device=None, dtype: torch.dtype = torch.float32) -> None:
        n = _checks.integer(n, "n", minimum=0, what="a non-negative number of items")
        num_classes = _checks.integer(num_classes, "num_classes", minimum=1, what="a positive number of classes")
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.n, self.num_classes = n, num_classes
        self.count = 0
        self._state = reference.SnapshotMoments(n, num_classes, device if device is not None else "cpu", dtype)
        # The state's own device: "cuda" becomes "cuda:0", so logits made with device="cuda" match.
        self.device = self._state.mean.device

    def update(self, logits_s: torch.Tensor) -> "SnapshotAccumulator":
        """Fold in one snapshot's logits (n, C), or several as (S, n, C)."""
        _checks.tensor(logits_s, "logits_s")
        if logits_s.dim() == 3:
            for one in logits_s:
                self.update(one)
            return self
        if tuple(logits_s.shape) != (self.n, self.num_classes):
            raise ValueError(f"logits_s must have shape ({self.n}, {self.num_classes}), got {tuple(logits_s.shape)}")
        if logits_s.device != self.device:
            raise ValueError(f"logits_s is on {logits_s.device} but the accumulator is on {self.device}")
        st = self._state
        native = self.n and _native_for("SnapshotAccumulator", self.device, st.mean.dtype)
        if self.n and self.count == 0:  # on the device; read by scores(check_finite=True) only
            self._looks_like_probs = _looks_like_probabilities(logits_s)
        if native:
            logits_s = logits_s.to(_accumulate_logits_dtype(logits_s.dtype, st.mean.dtype, self.device))
            torch.ops.mpts_fast.snapshot_accumulate(st.mean, st.m2, st.ent_sum, logits_s, self.count)
        elif self.n:
            st.update(logits_s, self.count)
        self.count += 1
        return self

    def scores(self, *, check_finite: bool = False) -> SnapshotScores:
        """Scores of the snapshots folded in so far (at least one). Non-finite logits make their
        items' entropy, bald and variance NaN or inf, on the device (as in snapshot_uncertainty);
        check_finite=True raises ValueError instead (one host read), and warns when the first
        logits looked like probabilities."""
        if self.count == 0:
            raise ValueError("SnapshotAccumulator.scores() needs at least one update()")
        st = self._state
        if self.n == 0:
            return SnapshotScores(*(st.ent_sum.clone() for _ in range(5)))
        if _native_for("SnapshotAccumulator", self.device, st.mean.dtype):
            scores = torch.ops.mpts_fast.snapshot_finalize(st.mean, st.m2, st.ent_sum, self.count)
            out = SnapshotScores.from_stacked(scores)
        else:
            out = st.scores(self.count)
            scores = torch.stack(out) if check_finite else None
        if check_finite:
            _check_scores(scores, self._looks_like_probs, "logits_s")
        return out


# ------------------------------------------------------------------------ sensitivity

_NORM_CODES = {"l1": 1, "l2": 2, "inf": 0}


def _network_biases(V, b_v, W, b_w) -> tuple[torch.Tensor, torch.Tensor]:
    """b_v, b_w with None (a layer without bias, e.g. nn.Linear(bias=False)) as zeros."""
    if b_v is None and isinstance(V, torch.Tensor) and V.dim() == 2:
        b_v = V.new_zeros((V.shape[0],))
    if b_w is None and isinstance(W, torch.Tensor) and W.dim() == 2:
        b_w = W.new_zeros((W.shape[0],))
    return b_v, b_w


def _validate_network(x, V, b_v, W, b_w, output: str, check_finite: bool = True) -> None:
    _checks.tensor(x, "x", 2)
    _checks.tensor(V, "V", 2)
    _checks.tensor(b_v, "b_v", 1)
    _checks.tensor(W, "W", 2)
    _checks.tensor(b_w, "b_w", 1)
    _checks.same_device(x=x, V=V, b_v=b_v, W=W, b_w=b_w)
    _checks.common_dtype(x=x, V=V, b_v=b_v, W=W, b_w=b_w)
    _checks.choice(output, "output", ("sigmoid", "linear"))
    P, I = x.shape
    J, K = V.shape[0], W.shape[0]
    if I < 1 or J < 1 or K < 1:
        raise ValueError(f"inputs, hidden units and outputs must be >= 1, got I={I}, J={J}, K={K}")
    if V.shape[1] != I:
        raise ValueError(f"V must have shape (J, {I}) to match x {tuple(x.shape)}, got {tuple(V.shape)}")
    if b_v.shape[0] != J:
        raise ValueError(f"b_v must have shape ({J},) to match V {tuple(V.shape)}, got {tuple(b_v.shape)}")
    if W.shape[1] != J:
        raise ValueError(f"W must have shape (K, {J}) to match V {tuple(V.shape)}, got {tuple(W.shape)}")
    if b_w.shape[0] != K:
        raise ValueError(f"b_w must have shape ({K},) to match W {tuple(W.shape)}, got {tuple(b_w.shape)}")
    if check_finite:
        _require_finite_network(x, V, b_v, W, b_w)


def _require_finite_network(x, V, b_v, W, b_w) -> None:
    """ValueError naming the first of x, V, b_v, W, b_w that holds a NaN or an infinity."""
    for name, t in (("x", x), ("V", V), ("b_v", b_v), ("W", W), ("b_w", b_w)):
        _checks.finite(t, name)


def sensitivity(
    x: torch.Tensor,
    V: torch.Tensor,
    b_v: torch.Tensor | None,
    W: torch.Tensor,
    b_w: torch.Tensor | None,
    *,
    norm: str = "l1",
    output: str = "sigmoid",
) -> torch.Tensor:
    """Engelbrecht pattern informativeness phi(p) = max_k ||S[p, k, :]|| (SASLA).

    Network: y = sigmoid(x V^T + b_v), o = sigmoid(y W^T + b_w) (output="linear": no sigmoid,
    and the o (1 - o) factor is 1). S[p,k,i] = o_k (1 - o_k) sum_j W[k,j] y_j (1 - y_j) V[j,i].
    norm: "l1" (sum-norm, the default), "l2" or "inf" over the inputs i.

    x: (P, I), V: (J, I), b_v: (J,), W: (K, J), b_w: (K,); b_v / b_w None for a layer without
    bias (nn.Linear(bias=False)), the same as zeros. Returns (P,). The (P, K, I) tensor is
    never stored (use sensitivity_matrix for it). Not differentiable.
    """
    b_v, b_w = _network_biases(V, b_v, W, b_w)
    # The CPU kernel makes phi[p] NaN wherever row p of x or the network is non-finite, so one sum
    # of phi replaces reading each of the five inputs to the host first (the study calls this
    # every selection on ~100 patterns, where those reads were a large part of the call).
    on_cpu_kernel = (isinstance(x, torch.Tensor) and x.device.type == "cpu" and x.dim() == 2 and x.shape[0] > 0
                     and _native_for("sensitivity", x.device, x.dtype))
    _validate_network(x, V, b_v, W, b_w, output, check_finite=not on_cpu_kernel)
    _checks.choice(norm, "norm", tuple(_NORM_CODES))
    if x.shape[0] == 0:
        return x.new_zeros((0,))
    if not on_cpu_kernel and not _native_for("sensitivity", x.device, x.dtype):
        with torch.no_grad():
            return reference.sensitivity(x, V, b_v, W, b_w, norm, output)
    cdt = _compute_dtype(x.dtype, x.device)
    args = [t.detach() if t.dtype == cdt else t.detach().to(cdt) for t in (x, V, b_v, W, b_w)]
    phi = torch.ops.mpts_fast.sensitivity(*args, _NORM_CODES[norm], output == "sigmoid")
    if on_cpu_kernel and not math.isfinite(float(phi.sum())):
        _require_finite_network(x, V, b_v, W, b_w)  # raises unless phi overflowed from finite inputs
    return phi if phi.dtype == x.dtype else phi.to(x.dtype)


def sensitivity_matrix(
    x: torch.Tensor,
    V: torch.Tensor,
    b_v: torch.Tensor | None,
    W: torch.Tensor,
    b_w: torch.Tensor | None,
    *,
    output: str = "sigmoid",
) -> torch.Tensor:
    """The full output-sensitivity tensor S (P, K, I) of `sensitivity` (for small P and tests;
    memory P K I). Differentiable. b_v / b_w may be None (zeros) as in `sensitivity`."""
    b_v, b_w = _network_biases(V, b_v, W, b_w)
    _validate_network(x, V, b_v, W, b_w, output)
    return reference.sensitivity_matrix(x, V, b_v, W, b_w, output)


# ---------------------------------------------------------------- op registrations


def _register() -> None:
    if _native._C is None:
        return
    lib = "mpts_fast::"

    @torch.library.register_fake(lib + "rbf_mmd2")
    def _(x, y, scales, unbiased, with_grad):
        rows = x.shape[0] + y.shape[0] if with_grad else 0
        return x.new_empty(()), x.new_empty((rows, x.shape[1]))

    @torch.library.register_fake(lib + "snapshot_scores")
    def _(logits):
        return logits.new_empty((5, logits.shape[1]), dtype=torch.float32 if logits.dtype in _HALF else logits.dtype)

    @torch.library.register_fake(lib + "snapshot_accumulate")
    def _(mean, m2, ent_sum, logits, count):
        return None

    @torch.library.register_fake(lib + "snapshot_finalize")
    def _(mean, m2, ent_sum, count):
        return mean.new_empty((5, mean.shape[0]))

    @torch.library.register_fake(lib + "sensitivity")
    def _(x, V, b_v, W, b_w, norm, sigmoid_output):
        return x.new_empty((x.shape[0],))

    torch.library.register_autograd(lib + "rbf_mmd2", _mmd_backward, setup_context=_mmd_setup_context)


_register()


# ------------------------------------------------------------------------- selection
#
# Diversity selection (mpts_fast/select): greedy k-center, k-means++ seeding and BADGE, one
# fused pass over the pool per pick, memory linear in N.

__all__ += ["kcenter_greedy", "kmeanspp", "badge_select"]

# Rows that count as centres and are never picked: a bool mask (N,) or integer row indices, as a
# tensor, numpy array or list.
LabeledArg = Union[None, torch.Tensor, np.ndarray, Sequence[int], Sequence[bool]]


def kcenter_greedy(features: torch.Tensor, k: int, labeled: LabeledArg = None) -> torch.Tensor:
    """Greedy k-center (Coreset, Sener & Savarese): k rows, each the unlabeled, unpicked row
    farthest (Euclidean) from its nearest centre; ties go to the lowest index.

    features: (N, d) floating tensor. labeled: rows that already count as centres and are never
    picked: None, a bool mask (N,), or integer row indices; a torch tensor, numpy array or list;
    empty means none. An integer `labeled` of length N holding only 0s and 1s (mask.long()) is
    refused as ambiguous (pass mask.bool()), and so is uint8. With no labeled row the first
    pick is the row farthest from the mean of all rows. Returns (k,) int64 row indices in pick
    order, on features' device. 1 <= k <= number of unlabeled rows (an int, numpy integer or
    0-dim integer tensor). Deterministic.

    Initial distances to the labeled set: faiss 1-NN on CPU (chunked GEMM without faiss),
    refined in the direct form; then one fused pass per pick (distance to the newest centre,
    min update, arg-max). Memory O(N) beyond the input.
    """
    from mpts_fast import select

    return select.kcenter_greedy(features, k, labeled)


def kmeanspp(
    features: torch.Tensor,
    k: int,
    *,
    generator: torch.Generator | None = None,
    first: str = "norm",
    labeled: LabeledArg = None,
) -> torch.Tensor:
    """k-means++ seeding: k distinct rows. The first pick is the largest-norm unlabeled row
    (first="norm", as in BADGE) or a uniform draw among them (first="random"); each next pick is
    drawn with probability proportional to the squared distance to the nearest chosen or
    labeled row. If every remaining distance is 0 the rest are drawn uniformly from the unpicked
    rows. Reproducible with `generator` (k float64 uniforms are drawn from it up front).

    features: (N, d); labeled as in kcenter_greedy. Returns (k,) int64 in pick order.
    """
    from mpts_fast import select

    return select.kmeanspp(features, k, generator=generator, first=first, labeled=labeled)


def badge_select(
    probs: torch.Tensor,
    embeddings: torch.Tensor,
    k: int,
    *,
    generator: torch.Generator | None = None,
    labeled: LabeledArg = None,
) -> torch.Tensor:
    """BADGE (Ash et al. 2020): k-means++ seeding (first="norm") over the gradient embeddings
    g_i = (p_i - e_yhat_i) (x) h_i, yhat_i = argmax p_i, without forming them:
    ||g_i - g_j||^2 = ||q_i||^2 ||h_i||^2 + ||q_j||^2 ||h_j||^2 - 2 (q_i . q_j)(h_i . h_j),
    q = p - e_yhat, so each pick reads N (C + D) numbers, not N C D.

    probs: (N, C) softmax outputs (non-negative, rows summing to 1); embeddings: (N, D)
    penultimate features; labeled as in kcenter_greedy: labeled rows are never picked and count
    as chosen centres (as kmeanspp(g, k, first="norm", labeled=labeled) over the explicit g).
    Returns (k,) int64 in pick order. Reproducible with `generator`.
    """
    from mpts_fast import select

    return select.badge_select(probs, embeddings, k, generator=generator, labeled=labeled)


def _register_select() -> None:
    if _native._C is None or not hasattr(torch.ops.mpts_fast, "select_kcenter"):
        return
    lib = "mpts_fast::"

    @torch.library.register_fake(lib + "select_kcenter")
    def _(x, mind, first, k):
        return x.new_empty((k,), dtype=torch.long)

    @torch.library.register_fake(lib + "select_kmeanspp")
    def _(x, mind, first, k, u):
        return x.new_empty((k,), dtype=torch.long)

    @torch.library.register_fake(lib + "select_lower_mind")
    def _(x, centres, mind):
        return None

    @torch.library.register_fake(lib + "select_farthest_from_mean")
    def _(x):
        return x.new_empty((), dtype=torch.long)

    @torch.library.register_fake(lib + "select_badge_sqnorms")
    def _(q, h):
        return q.new_empty((q.shape[0],))

    @torch.library.register_fake(lib + "select_badge_kmeanspp")
    def _(q, h, a, mind, first, k, u):
        return q.new_empty((k,), dtype=torch.long)


_register_select()
