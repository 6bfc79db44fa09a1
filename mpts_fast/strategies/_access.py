"""Checks shared by the strategies that reach inside the model (embedding, head, input gradients)."""
from __future__ import annotations

import torch
from torch import nn

from mpts_fast.strategies.base import SelectionContext


def embed_head_model(ctx: SelectionContext, strategy: str) -> nn.Module:
    """The round's final model, after checking it exposes `embed(x) -> (n, D)` and `head(z) -> (n, C)`."""
    model = ctx.trained.model
    missing = [name for name in ("embed", "head") if not callable(getattr(model, name, None))]
    if missing:
        raise ValueError(f"model: strategy {strategy!r} needs a backbone with embed(x) and head(z); "
                         f"{type(model).__name__} lacks {' and '.join(missing)}")
    return model


def require_classes(ctx: SelectionContext, strategy: str, least: int = 2) -> None:
    if ctx.num_classes < least:
        raise ValueError(f"num_classes: strategy {strategy!r} needs at least {least} classes, got {ctx.num_classes}")


def seed_from(generator: torch.Generator) -> int:
    """A 31-bit seed drawn from the round's generator, for libraries that take an int (faiss) or a device generator."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator))


def fill_randomly(picks: torch.Tensor, unlabeled: torch.Tensor, budget: int,
                  generator: torch.Generator) -> torch.Tensor:
    """picks: (m,) pool indices, m ≤ budget → (budget,), the rest drawn uniformly from the unpicked unlabeled items."""
    missing = budget - picks.numel()
    if missing <= 0:
        return picks[:budget]
    free = torch.ones(unlabeled.numel(), dtype=torch.bool)
    free[torch.isin(unlabeled.cpu(), picks.cpu())] = False
    rest = unlabeled.cpu()[free]
    extra = rest[torch.randperm(rest.numel(), generator=generator)[:missing]]
    return torch.cat([picks.cpu(), extra]).to(unlabeled.device)
