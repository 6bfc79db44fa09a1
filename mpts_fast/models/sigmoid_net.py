"""The one-hidden-layer sigmoid network of the selective-learning study (docs/study.md), in two forms.

- :class:`SigmoidNet`: an ordinary ``nn.Module`` (``hidden`` and ``out`` Linear layers), for single use.
- :class:`NetStack`: M independent networks of the same shape held as stacked tensors, trained with
  explicit tensor math (forward, hand-derived MSE backward, SGD with momentum and L2 decay). The study
  trains many tiny networks (trials × ensemble members × grid configurations); one batched matmul per
  layer for all of them replaces thousands of tiny autograd graphs.

Network: y = sigmoid(x Vᵀ + b_v), o = sigmoid(y Wᵀ + b_w) ("sigmoid" output) or o = y Wᵀ + b_w ("linear").
Shapes: V (J, I), b_v (J,), W (K, J), b_w (K,); the stack adds a leading member axis M.
Loss (paper Eq. 10): (1/N) Σ_p Σ_k (t_k − o_k)²; weight decay follows torch.optim.SGD (g += λ θ on every
parameter, i.e. the loss plus (λ/2)‖θ‖²), momentum as torch (buf = μ buf + g; θ −= lr buf, no dampening).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from mpts_fast import ops

OUTPUTS = ("sigmoid", "linear")


class SigmoidNet(nn.Module):
    """One hidden sigmoid layer; sigmoid or linear outputs. forward: x (P, I) → (P, K)."""

    def __init__(self, in_features: int, hidden: int, out_features: int, output: str = "sigmoid") -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"output: expected one of {OUTPUTS}, got {output!r}")
        self.hidden = nn.Linear(in_features, hidden)
        self.out = nn.Linear(hidden, out_features)
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.out(torch.sigmoid(self.hidden(x)))
        return torch.sigmoid(z) if self.output == "sigmoid" else z

    def sensitivity(self, x: torch.Tensor, norm: str = "l1") -> torch.Tensor:
        """Pattern informativeness Φ (P,) of Engelbrecht (study report Eq. 4) through the `ops.sensitivity` kernel."""
        return ops.sensitivity(x, self.hidden.weight, self.hidden.bias, self.out.weight, self.out.bias,
                               norm=norm, output=self.output)


@dataclass
class Forward:
    """Activations of one forward pass of a stack: h (M, B, J) hidden, z (M, B, K) output net input, o outputs."""

    h: torch.Tensor
    z: torch.Tensor
    o: torch.Tensor


class NetStack:
    """M independent one-hidden-layer sigmoid networks of equal shape, with their SGD state.

    All parameters live in one flat (M, P) tensor `theta` (and `buf` for momentum), so an optimiser step is
    a handful of element-wise ops on the whole stack. `lr`, `momentum`, `weight_decay` are per member (M,).
    """

    def __init__(self, members: int, in_features: int, hidden: int, out_features: int, *,
                 output: str = "sigmoid", generators: list[torch.Generator] | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        if output not in OUTPUTS:
            raise ValueError(f"output: expected one of {OUTPUTS}, got {output!r}")
        for name, v in (("members", members), ("in_features", in_features), ("hidden", hidden),
                        ("out_features", out_features)):
            if int(v) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v}")
        if generators is not None and len(generators) != members:
            raise ValueError(f"generators: expected {members} generators (one per member), got {len(generators)}")
        M, I, J, K = members, in_features, hidden, out_features
        self.M, self.I, self.J, self.K, self.output = M, I, J, K, output
        self._sizes = (J * I, J, K * J, K)
        self.theta = torch.empty(M, sum(self._sizes), dtype=dtype)
        # nn.Linear's default initialisation: U(−1/√fan_in, 1/√fan_in) for weights and biases, one generator
        # per member so that a member's start does not depend on which other members share the stack.
        bound = torch.tensor([1 / math.sqrt(I)] * (J * I + J) + [1 / math.sqrt(J)] * (K * J + K), dtype=dtype)
        for m in range(M):
            g = generators[m] if generators is not None else None
            u = torch.rand(self.theta.shape[1], generator=g, dtype=torch.float64).to(dtype)
            self.theta[m] = (2 * u - 1) * bound
        self.buf = torch.zeros_like(self.theta)
        self.lr = torch.full((M, 1), 0.1, dtype=dtype)
        self.momentum = torch.zeros((M, 1), dtype=dtype)
        self.weight_decay = torch.zeros((M, 1), dtype=dtype)

    # ----------------------------------------------------------------- parameters
    def set_hyper(self, lr, momentum, weight_decay) -> None:
        """Per-member (M,) or scalar learning rate, momentum and weight decay."""
        for name, v in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            t = torch.as_tensor(v, dtype=self.theta.dtype).reshape(-1, 1).expand(self.M, 1).clone()
            if not torch.isfinite(t).all() or (t < 0).any():
                raise ValueError(f"{name}: expected finite non-negative values, got {v}")
            setattr(self, name, t)

    def params(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Views (V (M,J,I), b_v (M,J), W (M,K,J), b_w (M,K)) into `theta`."""
        M, I, J, K = self.M, self.I, self.J, self.K
        V, bv, W, bw = torch.split(self.theta, self._sizes, dim=1)
        return V.reshape(M, J, I), bv, W.reshape(M, K, J), bw

    def member(self, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        V, bv, W, bw = self.params()
        return V[m], bv[m], W[m], bw[m]

    def finite(self) -> torch.Tensor:
        """(M,) bool: members whose parameters are all finite (a diverged member is left alone, not repaired)."""
        return torch.isfinite(self.theta).all(dim=1)

    # ----------------------------------------------------------------- forward / backward
    def forward(self, x: torch.Tensor) -> Forward:
        """x (M, B, I) → Forward with h (M, B, J), z and o (M, B, K)."""
        V, bv, W, bw = self.params()
        h = torch.sigmoid(torch.baddbmm(bv.unsqueeze(1), x, V.transpose(1, 2)))
        z = torch.baddbmm(bw.unsqueeze(1), h, W.transpose(1, 2))
        return Forward(h, z, torch.sigmoid(z) if self.output == "sigmoid" else z)

    def gradient(self, x: torch.Tensor, t: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient (M, P) of Σ_b weight[m,b] Σ_k (o − t)² and the unweighted per-member squared error sums.

        x (M, B, I), t (M, B, K), weight (M, B): 1/(patterns in the batch) for real patterns, 0 for padding.
        Returns (grad (M, P), sq (M,) = Σ_b [weight>0] Σ_k (o − t)²). Weight decay is not included.
        """
        V, bv, W, bw = self.params()
        f = self.forward(x)
        diff = f.o - t
        real = (weight > 0).to(diff.dtype).unsqueeze(2)
        sq = (diff * diff * real).sum(dim=(1, 2))
        d_o = 2.0 * diff * weight.unsqueeze(2)
        if self.output == "sigmoid":
            d_o = d_o * f.o * (1.0 - f.o)
        gW = torch.bmm(d_o.transpose(1, 2), f.h)
        d_h = torch.bmm(d_o, W) * f.h * (1.0 - f.h)
        gV = torch.bmm(d_h.transpose(1, 2), x)
        grad = torch.cat([gV.reshape(self.M, -1), d_h.sum(1), gW.reshape(self.M, -1), d_o.sum(1)], dim=1)
        return grad, sq

    def step(self, grad: torch.Tensor, active: torch.Tensor | None = None) -> None:
        """One SGD step (torch semantics: g += λθ; buf = μ buf + g; θ −= lr buf). active (M,) bool: members
        that take the step; the others keep parameters and momentum unchanged (an empty batch is no step)."""
        g = grad + self.weight_decay * self.theta
        if active is None or bool(active.all()):
            self.buf.mul_(self.momentum).add_(g)
            self.theta.sub_(self.lr * self.buf)
            return
        s = active.to(self.theta.dtype).unsqueeze(1)
        self.buf.copy_(self.buf * (1.0 - s + s * self.momentum) + s * g)
        self.theta.sub_(self.lr * s * self.buf)

    # ----------------------------------------------------------------- sensitivity
    def sensitivity(self, m: int, x: torch.Tensor, norm: str = "l1") -> torch.Tensor:
        """Φ (P,) of member m for its patterns x (P, I), by the `ops.sensitivity` kernel."""
        V, bv, W, bw = self.member(m)
        return ops.sensitivity(x, V, bv, W, bw, norm=norm, output=self.output)
