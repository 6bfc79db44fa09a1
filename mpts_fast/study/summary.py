"""From per-trial records to the study summary (the `study.json` document) and the mean curves."""
from __future__ import annotations

import numpy as np

from mpts_fast.study import stats

CLASSIFICATION_METRICS = ("accuracy", "f1", "precision", "recall", "mcc")
REGRESSION_METRICS = ("mse", "r2")

# The study paper's final test accuracies (mean ± std over 50 trials; the draft's Table III still holds placeholders).
PAPER_ACCURACY = {
    "iris": {"passive": (0.963, 0.029), "sasla": (0.965, 0.030), "entropy": (0.961, 0.032),
             "ensemble": (0.966, 0.030)},
    "wine": {"passive": (0.975, 0.024), "sasla": (0.973, 0.024), "entropy": (0.972, 0.026),
             "ensemble": (0.951, 0.034)},
}


def jsonable(obj):
    """A copy with non-finite floats (a diverged network's MSE, say) as None, so the JSON written is strict."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def _mean(v):
    v = [x for x in v if x is not None]
    return float(np.mean(v)) if v else None


def method_summary(records: list[dict], task: str) -> dict:
    metrics = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    out: dict = {"trials": len(records)}
    for m in metrics:
        v = np.array([r[m] for r in records], dtype=np.float64)
        out[f"{m}_mean"] = float(v.mean())
        out[f"{m}_std"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    conv = [r["epochs_to_convergence"] for r in records]
    initial = _mean([r["initial_train_size"] for r in records])
    final = _mean([r["final_train_size"] for r in records])
    out.update({
        "epochs_to_convergence_mean": _mean(conv),
        "convergence_rate": float(np.mean([c is not None for c in conv])),
        "epochs_mean": _mean([r["epochs"] for r in records]),
        "observations_seen_mean": _mean([r["observations_seen"] for r in records]),
        "initial_train_size_mean": initial,
        "final_train_size_mean": final,
        "train_size_reduction": 1.0 - final / initial if initial else None,
        "seconds_per_trial": _mean([r["seconds"] for r in records]),
    })
    return out


def score_matrix(by_method: dict[str, list[dict]], metric: str) -> tuple[np.ndarray, list[str]]:
    """(trials, methods) matrix of one metric, paired by trial id (trials every method has)."""
    names = list(by_method)
    common = sorted(set.intersection(*[{r["trial"] for r in recs} for recs in by_method.values()]))
    lookup = {m: {r["trial"]: r[metric] for r in recs} for m, recs in by_method.items()}
    return np.array([[lookup[m][t] for m in names] for t in common], dtype=np.float64), names


def build(dataset: str, task: str, by_method: dict[str, list[dict]], extra: dict) -> dict:
    metric, higher = ("accuracy", True) if task == "classification" else ("mse", False)
    scores, names = score_matrix(by_method, metric)
    doc = {
        "dataset": dataset,
        "task": task,
        **extra,
        "methods": {m: method_summary(recs, task) for m, recs in by_method.items()},
        "statistics": stats.summarise(scores, names, higher, metric),
    }
    if task == "classification" and dataset in PAPER_ACCURACY:
        doc["paper_accuracy"] = {m: {"mean": a, "std": s} for m, (a, s) in PAPER_ACCURACY[dataset].items()}
    return doc


def mean_curves(by_method: dict[str, list[dict]]) -> dict:
    """Mean training-set size per epoch and the mean test score per labeled-set size, per method."""
    out = {}
    for m, recs in by_method.items():
        sizes = np.array([r["train_size_curve"] for r in recs], dtype=np.float64)
        curve = np.array([r["curve"] for r in recs], dtype=np.float64)  # (trials, points, 2)
        out[m] = {
            "train_size": sizes.mean(0).tolist(),
            "labeled": curve[:, :, 0].mean(0).tolist(),
            "score": curve[:, :, 1].mean(0).tolist(),
            "score_std": curve[:, :, 1].std(0).tolist(),
        }
    return out
