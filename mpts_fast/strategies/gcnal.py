"""GCNAL (Caramalau et al. 2021): a GCN over the labeled items and a random sample of unlabeled items learns to tell
them apart (mpts_fast/strategies/gcn.py).

- "coregcn" (default): greedy k-center (ops.kcenter_greedy) on the GCN's hidden features, labeled items as centres.
- "uncertaingcn": the sampled unlabeled items whose score σ is closest to the margin `s_margin` (0.1), i.e. those the
  GCN can least tell from labeled ones.
"""
from __future__ import annotations

import torch

from mpts_fast import ops
from mpts_fast._checks import choice, number_option, positive_float, positive_int
from mpts_fast.strategies._access import embed_head_model, seed_from
from mpts_fast.strategies.base import SelectionContext, Strategy, top_k
from mpts_fast.strategies.gcn import GCNConfig, Graph, GraphScorer
from mpts_fast.strategies.registry import register

VARIANTS = ("coregcn", "uncertaingcn")


@register
class GCNALStrategy(Strategy):
    """Options: variant ("coregcn" | "uncertaingcn"), unlabeled_sample (10,000 unlabeled items in the graph),
    epochs (200 GCN steps), hidden (128), s_margin (0.1, uncertaingcn), unlabeled_weight (λ = 1.2)."""

    name = "gcnal"
    description = "GCN over labeled + sampled unlabeled embeddings (CoreGCN k-center, or UncertainGCN margin)"

    def __init__(self, variant: str = "coregcn", unlabeled_sample: int = 10_000, epochs: int = 200, hidden: int = 128,
                 s_margin: float = 0.1, unlabeled_weight: float = 1.2) -> None:
        choice(variant, "variant", VARIANTS)
        self.variant = variant
        self.unlabeled_sample = positive_int(unlabeled_sample, "unlabeled_sample")
        self.s_margin = number_option(s_margin, "s_margin", above=0, below=1, what="a score margin in (0, 1)")
        self.config = GCNConfig(hidden=positive_int(hidden, "hidden"), epochs=positive_int(epochs, "epochs"),
                                unlabeled_weight=positive_float(unlabeled_weight, "unlabeled_weight"))

    def select(self, ctx: SelectionContext, budget: int) -> torch.Tensor:
        embed_head_model(ctx, self.name)
        if ctx.labeled.numel() == 0:
            raise ValueError(f"labeled: strategy {self.name!r} needs at least one labeled item (the GCN's positives)")
        n_u = ctx.unlabeled.numel()
        size = min(n_u, max(self.unlabeled_sample, budget))
        sample = torch.sort(torch.randperm(n_u, generator=ctx.generator)[:size]).values
        items = torch.cat([ctx.unlabeled.cpu()[sample], ctx.labeled.cpu()])  # graph rows: sample first, then labeled
        is_labeled = torch.zeros(items.numel(), dtype=torch.bool)
        is_labeled[size:] = True
        emb = ctx.trained.embeddings(ctx.x_pool[items.to(ctx.x_pool.device)]).float()
        scorer = GraphScorer(Graph.from_embeddings(emb), is_labeled, self.config, seed=seed_from(ctx.generator)).fit()
        scores, feats = scorer.scores_and_features()
        if self.variant == "coregcn":
            picks = ops.kcenter_greedy(feats, budget, labeled=is_labeled.to(feats.device)).cpu()
        else:
            picks = top_k((scores[:size] - self.s_margin).abs(), budget, largest=False)
        return items[picks].to(ctx.unlabeled.device)
