"""The study's figures (matplotlib, Agg): score box plots, training-set size per epoch, score per labeled-set
size, and the Nemenyi critical-difference diagram (scikit-posthocs)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


_STYLES = ["-", "--", "-.", ":"] * 4


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def boxplot(path: Path, scores: np.ndarray, names: list[str], metric: str, dataset: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.boxplot([scores[:, j] for j in range(len(names))], tick_labels=names)
    ax.set_ylabel(f"test {metric}")
    ax.set_title(f"{dataset}: test {metric} over {scores.shape[0]} trials")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train_size(path: Path, curves: dict, dataset: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for (m, c), ls in zip(curves.items(), _STYLES):  # entropy and ensemble share a schedule: dashes show both
        ax.plot(np.arange(1, len(c["train_size"]) + 1), c["train_size"], ls, label=m)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training-set size (mean over trials)")
    ax.set_title(f"{dataset}: training-set size per epoch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def score_vs_labeled(path: Path, curves: dict, dataset: str, metric: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for m, c in curves.items():
        x, y = np.array(c["labeled"]), np.array(c["score"])
        if len(x) > 1:
            ax.plot(x, y, label=m)
        else:  # passive / SASLA: one point, the final training-set size and score
            ax.plot(x, y, "o", label=f"{m} (final)")
    ax.set_xlabel("labeled / training patterns")
    ax.set_ylabel(f"test {metric} (mean over trials)")
    ax.set_title(f"{dataset}: {metric} vs labeled instances")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cd_diagram(path: Path, statistics: dict, dataset: str) -> bool:
    """Nemenyi critical-difference diagram; False (no file) when it is undefined (one method or one trial)."""
    if statistics.get("nemenyi_p") is None or len(statistics["average_ranks"]) < 2:
        return False
    import pandas as pd
    import scikit_posthocs as sp

    plt = _plt()
    ranks = pd.Series(statistics["average_ranks"])
    sig = pd.DataFrame(statistics["nemenyi_p"]).loc[ranks.index, ranks.index]
    fig, ax = plt.subplots(figsize=(6, 2.5))
    sp.critical_difference_diagram(ranks, sig, ax=ax, cd=statistics.get("critical_difference"))
    ax.set_title(f"{dataset}: average ranks by {statistics['metric']} (Nemenyi, α = 0.05)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
