"""The one strategy interface. A strategy declares everything about itself on its class: what its training needs
(`needs`), its command-line options (`cli_options`), whether it records posterior diversity (`measures_diversity`), and
how it selects in one process (`select`) and under torchrun (`select_sharded`). docs/baselines.md, "Adding a strategy"."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from mpts_fast import _checks, ops
from mpts_fast._types import SnapshotScores
from mpts_fast.distributed.group import is_distributed
from mpts_fast.distributed.scoring import sharded_diversity, sharded_score_select
from mpts_fast.strategies.options import RECIPE_OPTIONS, StrategyOption
from mpts_fast.training.posterior import TrainedModel


@dataclass(frozen=True)
class Needs:
    """How a strategy's selection model is trained, and what selection needs. mmd / snapshots: train the MPTS way (MMD
    term, cyclic-LR snapshots); ensemble_size: members to train; dropout: probability of the dropout before the
    backbone's head (0 as the reference code trains; MC dropout needs it); every_class: the labeled set must hold every
    class before selection.

    A strategy whose training differs from the plain recipe every strategy's task model is trained with (`own_model`)
    gets a selection model of its own each round; the others select with the task model (docs/mpts.md, "Which model
    selects and which is evaluated")."""

    mmd: bool = False
    snapshots: bool = False
    ensemble_size: int = 1
    every_class: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        _checks.int_option(self.ensemble_size, "ensemble_size")
        _checks.number_option(self.dropout, "dropout", at_least=0, below=1, what="a probability in [0, 1)")

    @property
    def own_model(self) -> bool:
        """Whether selection needs a model trained otherwise than the plain task model (CE, final weights, no
        dropout, one member)."""
        return self.mmd or self.snapshots or self.dropout > 0 or self.ensemble_size > 1

    def run_options(self) -> tuple[StrategyOption, ...]:
        """The run settings this training reads, as command-line options (--mmd-weight with `mmd`, --snapshots and
        the cyclic-LR settings with `snapshots`)."""
        return tuple(opt for feature, options in RECIPE_OPTIONS.items() if getattr(self, feature) for opt in options)


@dataclass
class SelectionContext:
    """Everything a strategy may look at in one round.

    x_pool: (N, *shape) the whole training pool (features only); labeled: (n_L,) int64 pool indices with labels
    y_labeled: (n_L,); unlabeled: (n_U,) int64 pool indices (ascending); trained: the round's trained model(s);
    generator: CPU generator seeded per round; seed: the round's selection seed (MC-dropout masks etc.). block_of:
    (offset, total) when `unlabeled` is one torchrun rank's block, starting at position `offset` of the round's `total`
    unlabeled items (distributed/scoring.py), else None.
    """

    x_pool: torch.Tensor
    labeled: torch.Tensor
    y_labeled: torch.Tensor
    unlabeled: torch.Tensor
    trained: TrainedModel
    num_classes: int
    generator: torch.Generator
    seed: int = 0
    extras: dict[str, Any] = field(default_factory=dict)
    block_of: tuple[int, int] | None = None

    @property
    def x_unlabeled(self) -> torch.Tensor:
        return self.x_pool[self.unlabeled]

    def labeled_mask(self) -> torch.Tensor:
        mask = torch.zeros(self.x_pool.shape[0], dtype=torch.bool)
        mask[self.labeled.cpu()] = True
        return mask


class Strategy:
    """Subclasses set `name`, `description`, `needs`, and implement `select`; options come in as constructor keyword
    arguments. Everything else about a strategy is declared here too:

    cli_options: command-line options of `mpts-fast run` / `compare` (an option's value goes to a constructor keyword,
    or to a run setting training reads); those its `needs` bring are added (`declared_options`). measures_diversity:
    selection records `ctx.extras["diversity"]`, so the last round, which selects nothing, calls `measure_diversity`.
    select_sharded: selection under torchrun; the default runs `select` on every rank (the same picks, no speed-up).
    Callers that may run under torchrun call `query`, which picks the right one."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs: ClassVar[Needs] = Needs()
    cli_options: ClassVar[tuple[StrategyOption, ...]] = ()
    measures_diversity: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        if options:
            raise ValueError(f"strategy {self.name!r} takes no options, got {sorted(options)}")

    @classmethod
    def declared_options(cls) -> tuple[StrategyOption, ...]:
        """Every command-line option this strategy uses: its training's run settings, then its own."""
        return cls.needs.run_options() + tuple(cls.cli_options)

    def select(self, ctx: SelectionContext, budget: int) -> torch.Tensor:
        """Returns (budget,) int64 pool indices, all from ctx.unlabeled, no duplicates, in pick order."""
        raise NotImplementedError

    def select_sharded(self, ctx: SelectionContext, budget: int) -> torch.Tensor:
        """`select` under torchrun: every rank is called with the same ctx (replicated model, same generator state)
        and must return the same picks, equal to `select`'s in one process. Override to split the work by rank
        (distributed.shard_bounds); this default does all of it on every rank."""
        return self.select(ctx, budget)

    def query(self, ctx: SelectionContext, budget: int) -> torch.Tensor:
        """The round's picks: `select_sharded` under torchrun, `select` otherwise."""
        return self.select_sharded(ctx, budget) if is_distributed() else self.select(ctx, budget)

    def measure_diversity(self, ctx: SelectionContext) -> None:
        """Record ctx.extras["diversity"] without selecting (the last round), where `measures_diversity`."""


def top_k(scores: torch.Tensor, k: int, *, largest: bool = True) -> torch.Tensor:
    """Positions of the k best scores; ties go to the lowest position (stable sort), so picks are deterministic."""
    order = torch.sort(scores.float().cpu(), descending=largest, stable=True).indices
    return order[:k]


def single_model_scores(ctx: SelectionContext) -> SnapshotScores:
    """Uncertainty scores of the final model alone (S = 1) on the unlabeled items."""
    # checked (one host read a round): picks ranked by NaN scores would be silently arbitrary
    return ops.snapshot_uncertainty(ctx.trained.logits(ctx.x_unlabeled).float().unsqueeze(0), check_finite=True)


class ScoreStrategy(Strategy):
    """Score → rank: the top `budget` unlabeled items by one score per item. Subclasses set `score_field` (a field of
    the posterior summary `scores(ctx)` returns) or override `item_scores`. Under torchrun each rank scores its block
    of the unlabeled items and the top-b are merged exactly (distributed/scoring.py): no subclass code needed."""

    score_field: ClassVar[str] = "entropy"
    largest: ClassVar[bool] = True

    def scores(self, ctx: SelectionContext) -> SnapshotScores:
        return single_model_scores(ctx)

    def item_scores(self, ctx: SelectionContext) -> torch.Tensor:
        """(n_U,) one score per item of ctx.unlabeled, in its order; the top `budget` are picked (`largest`)."""
        return getattr(self.scores(ctx), self.score_field)

    def select(self, ctx: SelectionContext, budget: int) -> torch.Tensor:
        values = self.item_scores(ctx)
        return ctx.unlabeled[top_k(values, budget, largest=self.largest).to(ctx.unlabeled.device)]

    def select_sharded(self, ctx: SelectionContext, budget: int) -> torch.Tensor:
        return sharded_score_select(self, ctx, budget)

    def measure_diversity(self, ctx: SelectionContext) -> None:
        if is_distributed():  # each rank streams its block of the pool through the posterior, the records merged
            sharded_diversity(self, ctx)
        else:
            self.scores(ctx)
