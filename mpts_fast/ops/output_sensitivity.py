"""Engelbrecht's output sensitivity of a one-hidden-layer network (SASLA's pattern
informativeness): the op, the full (P, K, I) tensor, and the fake of mpts_fast::sensitivity."""
from __future__ import annotations

import math

import torch

from mpts_fast import _checks, reference
from mpts_fast.ops import dispatch

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
        raise ValueError(f"x, V, W: expected at least one input, hidden unit and output, got I={I}, J={J}, K={K}")
    if V.shape[1] != I:
        raise ValueError(f"V: expected shape (J, {I}) to match x {tuple(x.shape)}, got {tuple(V.shape)}")
    if b_v.shape[0] != J:
        raise ValueError(f"b_v: expected shape ({J},) to match V {tuple(V.shape)}, got {tuple(b_v.shape)}")
    if W.shape[1] != J:
        raise ValueError(f"W: expected shape (K, {J}) to match V {tuple(V.shape)}, got {tuple(W.shape)}")
    if b_w.shape[0] != K:
        raise ValueError(f"b_w: expected shape ({K},) to match W {tuple(W.shape)}, got {tuple(b_w.shape)}")
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
                     and dispatch.native_for("sensitivity", x.device, x.dtype))
    _validate_network(x, V, b_v, W, b_w, output, check_finite=not on_cpu_kernel)
    _checks.choice(norm, "norm", tuple(_NORM_CODES))
    if x.shape[0] == 0:
        return x.new_zeros((0,))
    if not on_cpu_kernel and not dispatch.native_for("sensitivity", x.device, x.dtype):
        with torch.no_grad():
            return reference.sensitivity(x, V, b_v, W, b_w, norm, output)
    cdt = dispatch.compute_dtype(x.dtype, x.device)
    args = [t.detach() if t.dtype == cdt else t.detach().to(cdt) for t in (x, V, b_v, W, b_w)]
    phi = torch.ops.mpts_fast.sensitivity(*args, _NORM_CODES[norm], output == "sigmoid")
    if on_cpu_kernel and not math.isfinite(float(phi.sum())):
        _require_finite_network(x, V, b_v, W, b_w)  # raises unless phi overflowed from finite inputs
    return phi if phi.dtype == x.dtype else phi.to(x.dtype)


@dispatch.register_fake("sensitivity")
def _(x, V, b_v, W, b_w, norm, sigmoid_output):
    torch._check(x.dim() == 2 and V.dim() == 2 and b_v.dim() == 1 and W.dim() == 2 and b_w.dim() == 1,
                 lambda: "sensitivity: expected x (P, I), V (J, I), b_v (J,), W (K, J), b_w (K,)")
    torch._check(V.shape[1] == x.shape[1],
                 lambda: f"sensitivity: expected V with {x.shape[1]} columns, got {tuple(V.shape)}")
    torch._check(b_v.shape[0] == V.shape[0],
                 lambda: f"sensitivity: expected b_v of {V.shape[0]} entries, got {tuple(b_v.shape)}")
    torch._check(W.shape[1] == V.shape[0],
                 lambda: f"sensitivity: expected W with {V.shape[0]} columns, got {tuple(W.shape)}")
    torch._check(b_w.shape[0] == W.shape[0],
                 lambda: f"sensitivity: expected b_w of {W.shape[0]} entries, got {tuple(b_w.shape)}")
    torch._check(all(t.dtype == x.dtype and t.device == x.device for t in (V, b_v, W, b_w)),
                 lambda: "sensitivity: expected every tensor of x's dtype and device")
    torch._check(norm in (0, 1, 2), lambda: f"sensitivity: expected norm code 0, 1 or 2, got {norm}")
    return x.new_empty((x.shape[0],))


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
