"""Uncertainty scores of S snapshots' mean softmax (entropy, BALD, variance, margin, least
confidence): the one-pass op over (S, N, C) logits, the streaming SnapshotAccumulator, and the
fakes of mpts_fast::snapshot_scores / snapshot_accumulate / snapshot_finalize."""
from __future__ import annotations

import warnings

import torch

from mpts_fast import _checks, reference
from mpts_fast._types import SnapshotScores
from mpts_fast.ops import dispatch


def _validate_logits(logits, name: str, dim: int) -> None:
    _checks.tensor(logits, name, dim)
    if logits.shape[-1] < 1:
        raise ValueError(f"{name}: expected at least one class (last dim), got shape {tuple(logits.shape)}")


def _scores_all_finite(scores: torch.Tensor) -> torch.Tensor:
    """0-dim bool tensor on the scores' device: every value of the (5, N) snapshot scores is finite.

    The kernels let NaN/inf logits poison the item's scores, so checking the result costs far
    less than a pass over the (S, N, C) input. A sum, not isfinite().all(): no (5, N) bool
    temporary (at N = 1e6 on the CPU, 0.2-2 ms instead of 6-9 ms). Exact here because every
    score is bounded (entropy and bald by log C, variance by S / (S - 1) <= 2, margin and least
    confidence by 1, all >= 0 up to rounding), so a sum of finite scores cannot overflow, and any
    NaN or inf (of either sign) makes the sum NaN or inf."""
    return scores.sum().isfinite()


def _nonfinite_logits_error(name: str) -> ValueError:
    return ValueError(
        f"{name}: expected finite logits (-inf in some classes masks those classes and is fine), got NaN, +inf, "
        "or an item whose logits are all -inf"
    )


_PROBABILITY_SAMPLE_ROWS = 64


def _looks_like_probabilities(logits_2d: torch.Tensor) -> torch.Tensor:
    """0-dim bool tensor, computed on the device: the first 64 rows of (N, C) logits are all in
    [0, 1] and each sums to 1 (within 1e-3), i.e. probabilities passed where logits belong. A
    sample: O(64 C) work whatever N, read to the host together with a check the caller reads
    anyway."""
    sample = logits_2d[:_PROBABILITY_SAMPLE_ROWS]
    if sample.shape[-1] < 2:
        return torch.zeros((), dtype=torch.bool, device=sample.device)
    in_unit = ((sample >= 0) & (sample <= 1)).all()
    sums_to_one = ((sample.sum(-1, dtype=torch.float64) - 1).abs() <= 1e-3).all()
    return in_unit & sums_to_one


def _warn_probabilities(name: str) -> None:
    warnings.warn(
        f"{name} looks like probabilities (every value in [0, 1], rows summing to 1): the snapshot scores take "
        "logits (or log-probabilities) and apply softmax themselves; pass model outputs before softmax",
        UserWarning,
        stacklevel=3,
    )


@dispatch.register_fake("snapshot_scores")
def _(logits):
    torch._check(logits.dim() == 3,
                 lambda: f"snapshot_scores: expected (S, N, C) logits, got {logits.dim()}-D")
    torch._check(logits.dtype in dispatch.FLOATS,
                 lambda: f"snapshot_scores: expected floating logits, got {logits.dtype}")
    torch._check(logits.shape[0] >= 1 and logits.shape[2] >= 1,
                 lambda: "snapshot_scores: expected S >= 1 and C >= 1")
    return logits.new_empty((5, logits.shape[1]), dtype=dispatch.compute_dtype(logits.dtype, logits.device))


def snapshot_uncertainty(logits: torch.Tensor, *, check_finite: bool = False) -> SnapshotScores:
    """Uncertainty scores of the mean softmax of S snapshots, in one pass over the logits.

    logits: (S, N, C) from S snapshots (or MC-dropout passes, or ensemble members). With
    p_s = softmax(logits_s) and pbar = mean_s p_s, returns SnapshotScores of (N,) tensors:
    entropy = -sum_c pbar log pbar; bald = entropy - mean_s H(p_s) (clamped at 0);
    variance = sum_c sample variance of p_s over s (S - 1 denominator, 0 when S = 1);
    margin = pbar(1st) - pbar(2nd); least_confidence = 1 - max pbar. Scores are float32
    (float64 for float64 logits). Every score is higher for a more uncertain item except margin,
    which is lower: rank with scores.most_uncertain(k, field) or scores.uncertainty(field).

    -inf logits mask classes: the scores equal those of the logits without them. NaN, +inf or an
    item with every logit at -inf makes that item's entropy, bald and variance NaN or inf (margin
    and least confidence may stay finite), on the device: by default nothing is read to the host,
    so a GPU scoring loop never waits on a check. check_finite=True
    reads one flag pair to the host and raises ValueError on such logits, and warns when the logits
    look like probabilities (a sample of rows all in [0, 1], summing to 1: softmax is applied here).
    """
    _validate_logits(logits, "logits", 3)
    if logits.shape[0] < 1:
        raise ValueError(f"logits: expected at least one snapshot (dim 0), got shape {tuple(logits.shape)}")
    if logits.shape[1] == 0:
        empty = logits.new_zeros((0,), dtype=dispatch.compute_dtype(logits.dtype, logits.device))
        return SnapshotScores(*(empty.clone() for _ in range(5)))
    if not dispatch.native_for("snapshot_uncertainty", logits.device, logits.dtype):
        out = reference.snapshot_uncertainty(logits.to(dispatch.compute_dtype(logits.dtype, logits.device)))
        scores = None
    else:
        native_logits = logits.to(dispatch.compute_dtype(logits.dtype, logits.device)) if logits.device.type == "cpu" else logits
        scores = torch.ops.mpts_fast.snapshot_scores(native_logits)
        out = SnapshotScores.from_stacked(scores)
    if check_finite:
        _check_scores(torch.stack(out) if scores is None else scores, _looks_like_probabilities(logits[0]), "logits")
    return out


def _check_scores(scores: torch.Tensor, looks_like_probs: torch.Tensor, name: str) -> None:
    """The check_finite of the snapshot scores: one host read of both device-side flags; warns
    when `name` looked like probabilities, raises ValueError when a score is not finite."""
    finite, probs = torch.stack([_scores_all_finite(scores), looks_like_probs]).tolist()  # the one read
    if probs:
        _warn_probabilities(name)
    if not finite:
        raise _nonfinite_logits_error(name)


def _accumulate_logits_dtype(logits_dtype: torch.dtype, state_dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """The dtype snapshot_accumulate's native kernel takes logits of `logits_dtype` in: the
    state's dtype on the CPU; on CUDA (float32 state) float32, float16 and bfloat16 are read as
    stored and anything else (float64) is converted to float32."""
    if device.type == "cuda" and state_dtype == torch.float32 and logits_dtype in (torch.float32, *dispatch.HALF):
        return logits_dtype
    return state_dtype


class SnapshotAccumulator:
    """Streams snapshots one (N, C) batch of logits at a time; O(N C) memory.

    acc = SnapshotAccumulator(n, num_classes, device="cuda")
    for model in snapshots: acc.update(model_logits)      # (n, C) each
    scores = acc.scores()                                 # same as snapshot_uncertainty(stack)

    The state (Welford mean and M2 per class, summed snapshot entropy) is float32, or float64
    with dtype=torch.float64. Logits as in snapshot_uncertainty (-inf masks a class; margin is
    the one score where lower = more uncertain). Native updates and scores() read nothing to the
    host; scores(check_finite=True) reads one flag pair (non-finite scores raise ValueError, first
    logits that looked like probabilities warn).
    """

    def __init__(self, n: int, num_classes: int, device=None, dtype: torch.dtype = torch.float32) -> None:
        n = _checks.integer(n, "n", minimum=0, what="a non-negative number of items")
        num_classes = _checks.integer(num_classes, "num_classes", minimum=1, what="a positive number of classes")
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
        self.n, self.num_classes = n, num_classes
        self.count = 0
        self._state = reference.SnapshotMoments(n, num_classes, device if device is not None else "cpu", dtype)
        # The state's own device: "cuda" becomes "cuda:0", so logits made with device="cuda" match.
        self.device = self._state.mean.device

    def update(self, logits_s: torch.Tensor) -> "SnapshotAccumulator":
        """Fold in one snapshot's logits (n, C), or several as (S, n, C)."""
        _checks.tensor(logits_s, "logits_s")
        if logits_s.dim() == 3:
            for one in logits_s:
                self.update(one)
            return self
        if tuple(logits_s.shape) != (self.n, self.num_classes):
            raise ValueError(f"logits_s: expected shape ({self.n}, {self.num_classes}), got {tuple(logits_s.shape)}")
        if logits_s.device != self.device:
            raise ValueError(f"logits_s: expected a tensor on the accumulator's device {self.device}, got {logits_s.device}")
        st = self._state
        native = self.n and dispatch.native_for("SnapshotAccumulator", self.device, st.mean.dtype)
        if self.n and self.count == 0:  # on the device; read by scores(check_finite=True) only
            self._looks_like_probs = _looks_like_probabilities(logits_s)
        if native:
            logits_s = logits_s.to(_accumulate_logits_dtype(logits_s.dtype, st.mean.dtype, self.device))
            torch.ops.mpts_fast.snapshot_accumulate(st.mean, st.m2, st.ent_sum, logits_s, self.count)
        elif self.n:
            st.update(logits_s, self.count)
        self.count += 1
        return self

    def scores(self, *, check_finite: bool = False) -> SnapshotScores:
        """Scores of the snapshots folded in so far (at least one). Non-finite logits make their
        items' entropy, bald and variance NaN or inf, on the device (as in snapshot_uncertainty);
        check_finite=True raises ValueError instead (one host read), and warns when the first
        logits looked like probabilities."""
        if self.count == 0:
            raise ValueError("SnapshotAccumulator.scores() needs at least one update()")
        st = self._state
        if self.n == 0:
            return SnapshotScores(*(st.ent_sum.clone() for _ in range(5)))
        if dispatch.native_for("SnapshotAccumulator", self.device, st.mean.dtype):
            scores = torch.ops.mpts_fast.snapshot_finalize(st.mean, st.m2, st.ent_sum, self.count)
            out = SnapshotScores.from_stacked(scores)
        else:
            out = st.scores(self.count)
            scores = torch.stack(out) if check_finite else None
        if check_finite:
            _check_scores(scores, self._looks_like_probs, "logits_s")
        return out


def _check_state_fake(mean, m2, ent_sum) -> None:
    torch._check(mean.dim() == 2, lambda: f"snapshot state: expected (N, C) mean, got {mean.dim()}-D")
    torch._check(m2.shape == mean.shape, lambda: "snapshot state: expected m2 of mean's shape")
    torch._check(ent_sum.dim() == 1 and ent_sum.shape[0] == mean.shape[0],
                 lambda: "snapshot state: expected (N,) ent_sum")
    torch._check(m2.device == mean.device and ent_sum.device == mean.device,
                 lambda: "snapshot state: expected one device")


@dispatch.register_fake("snapshot_accumulate")
def _(mean, m2, ent_sum, logits, count):
    _check_state_fake(mean, m2, ent_sum)
    torch._check(logits.shape == mean.shape,
                 lambda: f"snapshot_accumulate: expected logits of shape {tuple(mean.shape)}, got {tuple(logits.shape)}")
    torch._check(logits.device == mean.device,
                 lambda: "snapshot_accumulate: expected logits on the state's device")
    return None


@dispatch.register_fake("snapshot_finalize")
def _(mean, m2, ent_sum, count):
    _check_state_fake(mean, m2, ent_sum)
    torch._check(count >= 1, lambda: f"snapshot_finalize: expected count >= 1, got {count}")
    return mean.new_empty((5, mean.shape[0]))
