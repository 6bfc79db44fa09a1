"""The graph of GCNAL (Caramalau et al. 2021) and its two-layer GCN, on the model's device.

Graph. F (n, d): the row-normalised embeddings of the sampled unlabeled and the labeled items; A = F Fᵀ − I (cosine
similarities, no self loops); s_j = Σ_i A_ij; the adjacency is Â = A diag(1/s) + I. Â is never formed: A has rank ≤ d +
1, so Â V = F (Fᵀ (V/s)) − V/s + V costs O(n·d·k) for V (n, k), against O(n²·k) for a dense product and O(n³) for the
reference implementation's dense multiplication by diag(1/s). `dense_adjacency` builds Â in row blocks for tests and
small graphs. The column sums are clamped at a tiny positive value: with non-negative (ReLU) features they are ≥ 0.

GCN. H = ReLU(Â F W₁ + b₁) (128 hidden units), dropout 0.3, score = σ(Â H W₂ + b₂). Â F is a constant, computed once,
so the first layer costs one (n, d) × (d, 128) product per step. Trained 200 full-graph Adam steps (lr 1e-3, weight
decay 5e-4) on −mean log σ(labeled) − λ·mean log(1 − σ(unlabeled)), λ = 1.2: labeled items are the positives.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class Graph:
    """feats: (n, d) row-normalised features; inv_colsum: (n,) 1/s."""

    feats: torch.Tensor
    inv_colsum: torch.Tensor

    @classmethod
    def from_embeddings(cls, embeddings: torch.Tensor) -> "Graph":
        feats = F.normalize(embeddings if embeddings.dtype == torch.float64 else embeddings.float(), dim=1)
        colsum = feats @ feats.sum(0) - (feats * feats).sum(1)  # Σ_i f_i·f_j − f_j·f_j, O(n·d)
        return cls(feats, 1.0 / colsum.clamp_min(torch.finfo(feats.dtype).tiny ** 0.5))

    def propagate(self, v: torch.Tensor) -> torch.Tensor:
        """Â v for v (n, k), in O(n·d·k)."""
        scaled = v * self.inv_colsum.unsqueeze(1)
        return self.feats @ (self.feats.T @ scaled) - scaled + v


def dense_adjacency(embeddings: torch.Tensor, block: int = 4096) -> torch.Tensor:
    """Â (n, n) built in row blocks (no n × n temporaries beyond the result): for tests and small graphs."""
    g = Graph.from_embeddings(embeddings)
    n = g.feats.shape[0]
    out = torch.empty(n, n, dtype=g.feats.dtype, device=g.feats.device)
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        a = g.feats[rows] @ g.feats.T
        idx = torch.arange(rows.start, rows.stop, device=a.device)
        a[idx - start, idx] -= 1.0
        a *= g.inv_colsum.unsqueeze(0)
        a[idx - start, idx] += 1.0
        out[rows] = a
    return out


@dataclass(frozen=True)
class GCNConfig:
    hidden: int = 128
    dropout: float = 0.3
    lr: float = 1e-3
    weight_decay: float = 5e-4
    epochs: int = 200
    unlabeled_weight: float = 1.2  # λ of the unlabeled term


def _uniform(shape, bound: float, gen: torch.Generator, device) -> torch.Tensor:
    return ((torch.rand(shape, generator=gen) * 2 - 1) * bound).to(device).requires_grad_(True)


class GraphScorer:
    """Trains the GCN on a graph whose items are labeled (positives) or unlabeled; gives scores σ ∈ (0, 1) and hidden
    features. Deterministic given the seed: initial weights and dropout masks come from explicit generators."""

    def __init__(self, graph: Graph, labeled: torch.Tensor, config: GCNConfig = GCNConfig(), seed: int = 0) -> None:
        self.graph, self.config = graph, config
        self.labeled = labeled.to(graph.feats.device)
        device, d, h = graph.feats.device, graph.feats.shape[1], config.hidden
        gen = torch.Generator().manual_seed(seed)
        # the reference layer's init: U(−1/√fan_out, 1/√fan_out) for weights and biases
        self.params = [_uniform((d, h), 1 / math.sqrt(h), gen, device), _uniform((h,), 1 / math.sqrt(h), gen, device),
                       _uniform((h, 1), 1.0, gen, device), _uniform((1,), 1.0, gen, device)]
        self.dropout_gen = torch.Generator(device=device).manual_seed(seed + 1)
        self.first = graph.propagate(graph.feats)  # Â F, constant

    def forward(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """→ (logits (n,), hidden features (n, hidden))."""
        w1, b1, w2, b2 = self.params
        hidden = torch.relu(self.first @ w1 + b1)
        h = hidden
        p = self.config.dropout
        if train and p > 0:
            keep = torch.rand(h.shape, generator=self.dropout_gen, device=h.device) >= p
            h = h * keep / (1 - p)
        return self.graph.propagate(h @ w2).squeeze(1) + b2, hidden

    def fit(self) -> "GraphScorer":
        cfg = self.config
        opt = torch.optim.Adam(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        unl = ~self.labeled
        for _ in range(cfg.epochs):
            opt.zero_grad(set_to_none=True)
            with torch.enable_grad():
                logits, _ = self.forward(train=True)
                # log σ and log(1 − σ) = log σ(−x) without overflow
                loss = (-F.logsigmoid(logits[self.labeled]).mean()
                        - cfg.unlabeled_weight * F.logsigmoid(-logits[unl]).mean())
                loss.backward()
            opt.step()
        return self

    @torch.no_grad()
    def scores_and_features(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(n,) σ scores and (n, hidden) features of the trained GCN (dropout off)."""
        logits, hidden = self.forward(train=False)
        return torch.sigmoid(logits), hidden
