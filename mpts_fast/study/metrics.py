"""Per-trial metrics: test scores (scikit-learn), convergence from the epoch losses, and a fast batched
macro F1 / R² for the learning curves."""
from __future__ import annotations

import numpy as np
import torch


def classification_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """accuracy, macro F1 / precision / recall (zero where undefined), MCC."""
    from sklearn import metrics as skm

    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "f1": float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "precision": float(skm.precision_score(y_true, y_pred, average="macro", zero_division=0)),
        "recall": float(skm.recall_score(y_true, y_pred, average="macro", zero_division=0)),
        "mcc": float(skm.matthews_corrcoef(y_true, y_pred)),
    }


def regression_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MSE (in the units of y) and R²; a non-finite prediction (diverged network) gives MSE inf, R² −inf."""
    from sklearn import metrics as skm

    if not np.isfinite(y_pred).all():
        return {"mse": float("inf"), "r2": float("-inf")}
    return {"mse": float(skm.mean_squared_error(y_true, y_pred)), "r2": float(skm.r2_score(y_true, y_pred))}


def batched_macro_f1(pred: torch.Tensor, true: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Macro F1 per row, as scikit-learn's f1_score(average="macro", zero_division=0): the mean over classes
    present in the row's true or predicted labels. pred, true (M, n) int64 → (M,) float64."""
    oh_p = torch.nn.functional.one_hot(pred, num_classes).double()
    oh_t = torch.nn.functional.one_hot(true, num_classes).double()
    tp = (oh_p * oh_t).sum(1)
    denom = oh_p.sum(1) + oh_t.sum(1)  # 2tp + fp + fn
    present = denom > 0
    f1 = torch.where(present, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))
    return f1.sum(1) / present.sum(1).clamp_min(1)


def batched_r2(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """R² per row. pred, true (M, n) → (M,) float64."""
    pred, true = pred.double(), true.double()
    ss_res = ((true - pred) ** 2).sum(1)
    ss_tot = ((true - true.mean(1, keepdim=True)) ** 2).sum(1)
    return 1 - ss_res / ss_tot.clamp_min(1e-300)


def epochs_to_convergence(losses: np.ndarray, window: int = 10, threshold: float = 1e-3) -> int | None:
    """The first epoch e (1-based) from which the std of the last `window` epoch losses stays below
    `threshold` up to the final epoch; None when the run never converged (including a last window at or
    above the threshold, fewer than `window` epochs, or a non-finite loss in the tail).

    losses: (E,) training loss per epoch.
    """
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 1:
        raise ValueError(f"losses: expected a 1-D array, got shape {losses.shape}")
    if window < 2:
        raise ValueError(f"window: expected at least 2, got {window}")
    if len(losses) < window:
        return None
    win = np.lib.stride_tricks.sliding_window_view(losses, window)
    with np.errstate(invalid="ignore"):
        std = win.std(axis=1)  # std[j] is the window ending at epoch j + window (1-based)
    ok = np.isfinite(std) & (std < threshold)
    if not ok[-1]:
        return None
    bad = np.flatnonzero(~ok)
    first = 0 if len(bad) == 0 else bad[-1] + 1
    return int(first + window)
