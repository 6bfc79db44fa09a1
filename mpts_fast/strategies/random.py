"""Random sampling: uniform from the pool, without replacement."""
import torch

from mpts_fast.strategies.base import SelectionContext, Strategy
from mpts_fast.strategies.registry import register


@register
class RandomStrategy(Strategy):
    name = "random"
    description = "uniform from the unlabeled pool, without replacement"

    def select(self, ctx: SelectionContext, budget: int) -> torch.Tensor:
        return ctx.unlabeled[torch.randperm(ctx.unlabeled.numel(), generator=ctx.generator)[:budget].to(ctx.unlabeled.device)]
