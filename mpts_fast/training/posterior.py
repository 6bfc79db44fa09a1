"""A trained model as strategies see it: probabilities, embeddings, and posterior summaries streamed over snapshots,
MC-dropout passes or ensemble members (never an S × N × C tensor)."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Iterator, Literal

import torch
from torch import nn

from mpts_fast import ops
from mpts_fast._types import SnapshotScores
from mpts_fast.training.diversity import DiversityAccumulator, PosteriorDiversity
from mpts_fast.training.schedule import TrajectoryPlan

PosteriorSource = Literal["snapshots", "mc_dropout", "ensemble"]


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A snapshot: the model's state dict copied to host memory."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@dataclass
class TrainedModel:
    """model: the final weights (eval mode); snapshots: trajectory state dicts on CPU (the last is the final weights);
    members: ensemble (members[0] is model). eval_batch_size: rows per forward pass. swa_model: the snapshots' weight
    average (torch.optim.swa_utils.AveragedModel, BatchNorm recomputed on the labeled set), None without snapshots.
    trajectory: the schedule model 0 was trained on; lr_trace: the LR of each of its optimiser steps. gradient_probe:
    model 0's λ·‖∇MMD²‖/‖∇CE‖ and gradient cosine over the second half (training/diagnostics.py), None without the
    MMD term. fit_steps: model 0's optimiser steps before any cyclic phase (the whole run under the paper recipe);
    fit_stop: why they ended ("target": the running training accuracy reached the recipe's target, "budget": the step
    budget ran out, "epochs": the epochs ran out); fit_running_accuracy: that epoch's running accuracy (None under the
    paper recipe, which does not track it); total_steps: model 0's optimiser steps, cyclic phase included. lockstep: how
    many models trained together as one stacked model (training/lockstep.py; 1: stacked alone), None when the
    sequential trainer trained it; train_seconds and epoch_seconds hold this model's share of the stack's time."""

    model: nn.Module
    snapshots: list[dict[str, torch.Tensor]]
    members: list[nn.Module]
    eval_batch_size: int = 1024
    train_seconds: float = 0.0
    epoch_seconds: list[float] = field(default_factory=list)
    swa_model: nn.Module | None = None
    trajectory: TrajectoryPlan | None = None
    lr_trace: list[float] = field(default_factory=list)
    gradient_probe: dict | None = None
    fit_steps: int | None = None
    fit_stop: str | None = None
    fit_running_accuracy: float | None = None
    total_steps: int | None = None
    lockstep: int | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def _batched(self, model: nn.Module, x: torch.Tensor, what: str) -> torch.Tensor:
        outs = []
        for xb in torch.split(x, self.eval_batch_size):
            xb = xb.to(self.device, non_blocking=True)
            outs.append(model.embed(xb) if what == "embed" else model(xb))
        if not outs:
            dim = getattr(model, "embedding_dim") if what == "embed" else model.head(
                torch.zeros(1, model.embedding_dim, device=self.device)).shape[1]
            return torch.zeros(0, dim, device=self.device)
        return torch.cat(outs)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, *shape) → (n, C) logits of the final model."""
        return self._batched(self.model, x, "logits")

    def probs(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, *shape) → (n, C) softmax of the final model."""
        return torch.softmax(self.logits(x).float(), dim=1)

    def embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, *shape) → (n, D) penultimate features of the final model."""
        return self._batched(self.model, x, "embed")

    def posterior_logits(self, x: torch.Tensor, source: PosteriorSource, passes: int = 10, seed: int = 0,
                         block_of: tuple[int, int] | None = None) -> Iterator[torch.Tensor]:
        """Yields one (n, C) logits tensor per posterior sample: each snapshot, each MC-dropout pass, or each member.

        block_of: (offset, total) when x is rows [offset, offset + n) of `total` rows scored together (a torchrun
        rank's block, offset a multiple of eval_batch_size): MC dropout then draws, for these rows, the masks that the
        passes over all `total` rows draw, so the block's scores equal one process's."""
        if source == "snapshots":
            if not self.snapshots:
                raise ValueError("source: this model was trained without trajectory snapshots (snapshots=0)")
            work = copy.deepcopy(self.model)
            for state in self.snapshots:
                work.load_state_dict(state)
                work.eval()
                yield self._batched(work, x, "logits")
        elif source == "ensemble":
            for member in self.members:
                yield self._batched(member, x, "logits")
        elif source == "mc_dropout":
            dropouts = [m for m in self.model.modules() if isinstance(m, nn.Dropout) and m.p > 0]
            if not dropouts:
                raise ValueError("source: MC dropout needs a backbone with dropout (p > 0) before the head")
            before, after, calls = self._rows_around(x, block_of, dropouts)
            torch.manual_seed(seed)
            try:
                for m in dropouts:  # dropout on, BatchNorm stays in eval mode
                    m.train()
                for _ in range(passes):
                    self._replay_dropout(calls, before)
                    yield self._batched(self.model, x, "logits")
                    self._replay_dropout(calls, after)
            finally:
                for m in dropouts:
                    m.eval()
        else:
            raise ValueError(f"source: expected 'snapshots', 'mc_dropout' or 'ensemble', got {source!r}")

    def _rows_around(self, x: torch.Tensor, block_of: tuple[int, int] | None, dropouts: list[nn.Module]
                     ) -> tuple[list[int], list[int], list[tuple[nn.Module, torch.Size, torch.dtype]]]:
        """For MC dropout on a block: the batch sizes of the rows before and after x among `total`, and the dropout
        calls one forward makes (module, input shape after the batch dimension, dtype), recorded on one row in eval
        mode, which draws nothing."""
        if block_of is None or x.shape[0] == 0:
            return [], [], []
        offset, total = block_of
        step = self.eval_batch_size
        end = offset + x.shape[0]
        if offset % step or not 0 <= offset <= end <= total or (end < total and end % step):
            raise ValueError(f"block_of: expected rows cut at multiples of the batch size {step} within {total} rows, "
                             f"got rows [{offset}, {end})")
        calls = []
        hooks = [m.register_forward_hook(lambda m, args, out: calls.append((m, args[0].shape[1:], args[0].dtype)))
                 for m in dropouts]
        try:
            with torch.no_grad():
                self.model(x[:1].to(self.device))
        finally:
            for h in hooks:
                h.remove()
        sizes = lambda n: [min(step, n - i) for i in range(0, n, step)]  # noqa: E731
        return sizes(offset), sizes(total - end), calls

    def _replay_dropout(self, calls: list[tuple[nn.Module, torch.Size, torch.dtype]], batches: list[int]) -> None:
        """Draws the dropout masks of the forward batches of these sizes on empty inputs, without the model: the
        random stream then stands where the passes over those rows would have left it."""
        for rows in batches:
            for module, shape, dtype in calls:
                module(torch.zeros((rows, *shape), dtype=dtype, device=self.device))

    def posterior_scores(self, x: torch.Tensor, source: PosteriorSource, passes: int = 10, seed: int = 0) -> SnapshotScores:
        """Entropy / BALD / variance / margin / least-confidence of the averaged posterior, (n,) each, streamed through
        ops.SnapshotAccumulator."""
        acc = None
        for logits in self.posterior_logits(x, source, passes, seed):
            if acc is None:
                acc = ops.SnapshotAccumulator(logits.shape[0], logits.shape[1], device=logits.device)
            acc.update(logits.float())
        return acc.scores(check_finite=True)  # one host read a round: NaN scores would rank arbitrarily

    def posterior_summary(self, x: torch.Tensor, source: PosteriorSource, passes: int = 10, seed: int = 0,
                          block_of: tuple[int, int] | None = None) -> tuple[SnapshotScores, PosteriorDiversity]:
        """posterior_scores plus how diverse the samples are on x, from the same stream of logits. The final model's
        logits (the entropy-ranking reference) are the last snapshot's (the final weights), the first member's, or one
        extra deterministic pass (MC dropout). block_of: as posterior_logits."""
        final = self.logits(x) if source == "mc_dropout" else None
        acc = None
        for i, logits in enumerate(self.posterior_logits(x, source, passes, seed, block_of)):
            if acc is None:
                acc = DiversityAccumulator(logits.shape[0], logits.shape[1], device=logits.device)
            acc.update(logits)
            if source == "snapshots" or (source == "ensemble" and i == 0):
                final = logits
        return acc.result(final)

    @torch.no_grad()
    def mean_probs(self, x: torch.Tensor, source: PosteriorSource, passes: int = 10, seed: int = 0) -> torch.Tensor:
        """(n, C) average of the posterior samples' softmax (Eq. 8)."""
        total, count = None, 0
        for logits in self.posterior_logits(x, source, passes, seed):
            p = torch.softmax(logits.float(), dim=1)
            total = p if total is None else total.add_(p)
            count += 1
        return total / count
