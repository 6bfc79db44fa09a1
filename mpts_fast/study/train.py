"""Batched SGD for a :class:`~mpts_fast.models.sigmoid_net.NetStack` whose members train on their own subsets
of one shared data set (trials, folds, ensemble members), with per-member scaling of inputs and targets.

A member's training set is a row of a boolean mask (M, N). An epoch shuffles each member's set with that
member's own generator and walks it in mini-batches; a member whose set is exhausted sits out the remaining
batches of the epoch (no step, momentum untouched), so it trains exactly as it would alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mpts_fast.models.sigmoid_net import NetStack
from mpts_fast.study.data import StudyData, scaler

LOW, HIGH = 0.1, 0.9  # classification targets (the study paper's {0.1, 0.9})


@dataclass
class Problem:
    """Shared data plus each member's affine scaling.

    x (N, I) raw features, t (N, K) raw targets ({0.1, 0.9} one-hot, or y for regression);
    xa, xc (M, I): member inputs are x·xa + xc; ta, tc (M, 1): member targets are t·ta + tc.
    """

    x: torch.Tensor
    t: torch.Tensor
    xa: torch.Tensor
    xc: torch.Tensor
    ta: torch.Tensor
    tc: torch.Tensor

    def inputs(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (M, B) → scaled inputs (M, B, I)."""
        return self.x[idx] * self.xa.unsqueeze(1) + self.xc.unsqueeze(1)

    def targets(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (M, B) → scaled targets (M, B, K)."""
        return self.t[idx] * self.ta.unsqueeze(1) + self.tc.unsqueeze(1)


def raw_targets(data: StudyData) -> torch.Tensor:
    if data.task == "classification":
        t = torch.full((len(data.y), data.num_classes), LOW)
        t[torch.arange(len(data.y)), data.y] = HIGH
        return t
    return data.y.reshape(-1, 1).float()


def make_problem(data: StudyData, fit_sets: list[np.ndarray], t: torch.Tensor | None = None) -> Problem:
    """Scale each member's inputs (and regression targets) to [−1, 1] with the statistics of its own fit set."""
    t = raw_targets(data) if t is None else t
    xs, ts = [], []
    for idx in fit_sets:
        xs.append(scaler(data.x[torch.as_tensor(idx)]))
        if data.task == "regression":
            ts.append(scaler(t[torch.as_tensor(idx)]))
        else:
            ts.append((torch.ones(1), torch.zeros(1)))
    return Problem(data.x, t, torch.stack([a for a, _ in xs]), torch.stack([c for _, c in xs]),
                   torch.stack([a for a, _ in ts]), torch.stack([c for _, c in ts]))


def expand(problem: Problem, repeats: int) -> Problem:
    """The same problem for `repeats` consecutive members per original member (ensembles)."""
    r = lambda v: v.repeat_interleave(repeats, dim=0)  # noqa: E731
    return Problem(problem.x, problem.t, r(problem.xa), r(problem.xc), r(problem.ta), r(problem.tc))


def run_epoch(net: NetStack, prob: Problem, mask: torch.Tensor, batch_size: int,
              gens: list[torch.Generator]) -> torch.Tensor:
    """One epoch of mini-batch SGD for every member on its own set mask[m] (M, N).

    Returns the epoch's training loss per member (M,): the mean over its patterns of Σ_k (o − t)², each taken
    at the batch where the pattern was presented (NaN for an empty set).
    """
    M, N = mask.shape
    counts = mask.sum(1)
    keys = torch.stack([torch.rand(N, generator=g) for g in gens])
    keys.masked_fill_(~mask, 2.0)
    order = keys.argsort(dim=1)
    n_max = int(counts.max())
    sq_total = torch.zeros(M)
    pos = torch.arange(batch_size)
    for start in range(0, n_max, batch_size):
        stop = min(start + batch_size, n_max)
        idx = order[:, start:stop]
        valid = (start + pos[: stop - start]).unsqueeze(0) < counts.unsqueeze(1)
        nb = valid.sum(1)
        weight = valid.float() / nb.clamp_min(1).unsqueeze(1).float()
        grad, sq = net.gradient(prob.inputs(idx), prob.targets(idx), weight)
        sq_total += sq
        net.step(grad, nb > 0)
    return sq_total / counts.float()


@torch.no_grad()
def predict(net: NetStack, prob: Problem, idx: torch.Tensor, chunk: int = 4096):
    """Outputs for member-specific pattern sets idx (M, n): (z, o) each (M, n, K), in scaled target units."""
    zs, os_ = [], []
    for s in range(0, idx.shape[1], chunk):
        f = net.forward(prob.inputs(idx[:, s:s + chunk]))
        zs.append(f.z)
        os_.append(f.o)
    return torch.cat(zs, 1), torch.cat(os_, 1)


def unscale(o: torch.Tensor, prob: Problem) -> torch.Tensor:
    """Regression outputs (M, n, 1) back to the units of y: (M, n)."""
    return ((o - prob.tc.unsqueeze(1)) / prob.ta.unsqueeze(1))[..., 0]
