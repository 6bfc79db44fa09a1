"""baal heuristics computed by ops.snapshot_uncertainty: drop-in replacements for baal.active.heuristics.BALD,
Entropy, Variance and Margin, usable wherever baal takes a heuristic (ActiveLearningLoop, get_ranks,
get_uncertainties), with baal's conventions and values.

baal's predictions are (N, C, iterations) arrays of probabilities or logits (MC-dropout passes last); ours are
(S, N, C) logits, so the adapter transposes and, for probabilities, takes their log (softmax(log p) = p). Decisions
are baal's own: an array counts as probabilities when all values lie in [0, 1] and every (item, iteration) sums to 1
(baal's to_prob); Entropy and Margin average the iterations first (baal's singlepass, then softmax for logits);
Variance is the per-class population variance over iterations reduced by mean (or sum) over classes, so it needs
probabilities (baal would take the variance of logits, which the op does not compute). Only (N, C) and (N, C, T)
predictions are taken (not segmentation-style (N, C, ..., T)).

Needs baal (pip install baal); importing this module without it raises ImportError saying so.
"""
from __future__ import annotations

import numpy as np
import torch

try:
    from baal.active import heuristics as _baal
except ImportError as e:  # pragma: no cover - exercised without baal
    raise ImportError("mpts_fast.integrations.baal needs baal: pip install baal (or pip install "
                      "'mpts-fast[integrations]')") from e

from mpts_fast import ops
from mpts_fast._types import SnapshotScores

__all__ = ["BALD", "Entropy", "Variance", "Margin"]


def _single(predictions, name: str) -> np.ndarray:
    """baal's require_single_item: one array (a one-element list is unwrapped), as a numpy array."""
    if isinstance(predictions, (list, tuple)):
        if len(predictions) != 1:
            raise ValueError(f"{name}: expected one array of predictions [N, C, iterations], got a list of "
                             f"{len(predictions)} (combine several with baal's CombineHeuristics)")
        predictions = predictions[0]
    if isinstance(predictions, torch.Tensor):
        predictions = predictions.detach().cpu().numpy()
    predictions = np.asarray(predictions)
    if predictions.dtype.kind != "f":
        raise ValueError(f"{name}: expected floating-point predictions, got dtype {predictions.dtype}")
    if predictions.ndim not in (2, 3):
        raise ValueError(f"{name}: expected predictions of shape [N, C] or [N, C, iterations], got "
                         f"{predictions.shape} (other shapes: use baal's own heuristic)")
    if predictions.shape[1] < 2:
        raise ValueError(f"{name}: expected at least 2 classes (axis 1), got shape {predictions.shape}")
    return predictions


def _tensor(x: np.ndarray) -> torch.Tensor:
    """The predictions as a tensor sharing their memory (a copy only for negative strides, which torch lacks)."""
    t = torch.from_numpy(x.copy() if any(st < 0 for st in x.strides) else x)
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _are_probabilities(t: torch.Tensor) -> bool:
    """baal's to_prob test: bounded in [0, 1] and summing to 1 over the classes (axis 1) within np.allclose's
    tolerance (|sum - 1| <= 1e-8 + 1e-5); NaN fails it. Computed with torch (threaded, one pass for the bounds)."""
    low, high = torch.aminmax(t)
    if bool(low < 0) or bool(high > 1):
        return False
    return bool((t.sum(1, dtype=torch.float64) - 1).abs().max() <= 1e-8 + 1e-5)


def _scores(t: torch.Tensor, probabilities: bool | None = None, block: int = 8192):
    """Snapshot scores of [N, C] or [N, C, T] probabilities or logits. Blocks of `block` items are transposed into
    the op's (S, N, C) logits layout (the log taken in place for probabilities) while they sit in cache, and scored
    one by one: a whole-array transpose would cost as much as the op itself."""
    probabilities = _are_probabilities(t) if probabilities is None else probabilities
    tiny = torch.finfo(t.dtype).tiny
    parts = []
    for blk in t.split(block):
        view = blk.unsqueeze(0) if blk.dim() == 2 else blk.permute(2, 0, 1)
        logits = torch.empty(view.shape, dtype=view.dtype)
        if probabilities:
            torch.clamp_min(view, tiny, out=logits).log_()
        else:
            logits.copy_(view)
        parts.append(torch.stack(tuple(ops.snapshot_uncertainty(logits))))
    return SnapshotScores.from_stacked(torch.cat(parts, 1))


def _averaged(x: np.ndarray) -> torch.Tensor:
    """baal's singlepass: the mean over the iterations (of probabilities or logits, as given)."""
    t = _tensor(x)
    return t.mean(-1) if t.dim() == 3 else t


class BALD(_baal.BALD):
    """baal's BALD (mutual information over the iterations, higher first) from ops.snapshot_uncertainty."""

    def compute_score(self, predictions, target_predictions=None):
        x = _single(predictions, "BALD")
        if x.ndim != 3:
            raise ValueError(f"BALD: expected predictions [N, C, iterations], got {x.shape}")
        return _scores(_tensor(x)).bald.numpy()


class Entropy(_baal.Entropy):
    """baal's Entropy (of the iteration-averaged prediction, higher first) from ops.snapshot_uncertainty."""

    def compute_score(self, predictions, target_predictions=None):
        x = _single(predictions, "Entropy")
        return _scores(_averaged(x)).entropy.numpy()


class Margin(_baal.Margin):
    """baal's Margin (top-1 minus top-2 of the iteration-averaged prediction, lower first)."""

    def compute_score(self, predictions, target_predictions=None):
        x = _single(predictions, "Margin")
        return _scores(_averaged(x)).margin.numpy()


class Variance(_baal.Variance):
    """baal's Variance (per-class population variance over the iterations, reduced by mean or sum over classes,
    higher first) from the op's summed sample variance: mean = variance · (T − 1) / (T · C)."""

    def __init__(self, shuffle_prop=_baal.DEPRECATED, reduction="mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"Variance: reduction must be 'mean' or 'sum' (the op sums over classes), got "
                             f"{reduction!r}")
        # the op reduces over classes itself: baal's reduction step gets the identity
        _baal.AbstractHeuristic.__init__(self, shuffle_prop=shuffle_prop, reverse=True, reduction="none")
        self._over_classes = reduction
        self._reduction_name = reduction

    def compute_score(self, predictions, target_predictions=None):
        x = _single(predictions, "Variance")
        if x.ndim != 3:
            raise ValueError(f"Variance: expected predictions [N, C, iterations], got {x.shape}")
        t = _tensor(x)
        if not _are_probabilities(t):
            raise ValueError("Variance: expected probabilities (each [n, :, t] in [0, 1] summing to 1); baal's own "
                             "Variance takes logits as they are, the op scores softmax probabilities")
        n_iter, classes = x.shape[2], x.shape[1]
        summed = _scores(t, probabilities=True).variance.double().numpy() * (n_iter - 1) / n_iter
        out = summed / classes if self._over_classes == "mean" else summed
        return out.astype(x.dtype, copy=False)
