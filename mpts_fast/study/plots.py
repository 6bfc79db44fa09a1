"""The study's figures (matplotlib, Agg): score box plots, training-set size per epoch, score per labeled-set
size, and the Nemenyi critical-difference diagram (Demšar 2006, "Statistical comparisons of classifiers over
multiple data sets", Section 3.2.2). Titles name the data set (your own file by its stem); count axes have whole-number
ticks."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mpts_fast.plots import counted, dataset_title, integer_ticks


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
    ax.set_title(f"{dataset_title(dataset)}: test {metric} over {counted(scores.shape[0], 'trial')}")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Title": ax.get_title()})
    plt.close(fig)


def train_size(path: Path, curves: dict, dataset: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for (m, c), ls in zip(curves.items(), _STYLES):  # entropy and ensemble share a schedule: dashes show both
        ax.plot(np.arange(1, len(c["train_size"]) + 1), c["train_size"], ls, label=m)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training-set size (mean over trials)")
    integer_ticks(ax.xaxis)
    integer_ticks(ax.yaxis)
    ax.set_title(f"{dataset_title(dataset)}: training-set size per epoch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Title": ax.get_title()})
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
    integer_ticks(ax.xaxis)
    ax.set_title(f"{dataset_title(dataset)}: {metric} vs labeled instances")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Title": ax.get_title()})
    plt.close(fig)


def cliques(ranks: np.ndarray, cd: float) -> list[tuple[int, int]]:
    """Groups of methods whose average ranks differ by less than the critical difference, as (first, last) positions
    in `ranks` sorted ascending: the maximal runs i..j with ranks[j] - ranks[i] < cd (Nemenyi's test finds no
    difference within one). The same test as the Nemenyi p-values: |R_i - R_j| > CD exactly when p < α."""
    out: list[tuple[int, int]] = []
    for i in range(len(ranks)):
        j = i
        while j + 1 < len(ranks) and ranks[j + 1] - ranks[i] < cd:
            j += 1
        if j > i and (not out or j > out[-1][1]):
            out.append((i, j))
    return out


def cd_diagram(path: Path, statistics: dict, dataset: str) -> bool:
    """Nemenyi critical-difference diagram; False (no file) when it is undefined (one method or one trial).

    The rank axis runs over 1..k (k methods, 1 = best) with a tick at every whole rank; the CD bar sits above the axis
    labels, from rank 1; each method hangs from its average rank to its label, the better half on the left; thick bars
    under the axis join methods the test cannot tell apart. Every label has its own row, so none overlap."""
    cd = statistics.get("critical_difference")
    average = statistics.get("average_ranks") or {}
    if cd is None or len(average) < 2:
        return False
    plt = _plt()
    names = sorted(average, key=lambda m: (average[m], m))
    ranks = np.array([average[m] for m in names], dtype=np.float64)
    k = len(names)
    groups = cliques(ranks, cd)
    levels: list[float] = []  # the right end of the last bar on each level below the axis
    bar_level = []
    for i, j in groups:
        lvl = next((n for n, end in enumerate(levels) if end < ranks[i] - 0.05), len(levels))
        levels[lvl:lvl + 1] = [ranks[j]]
        bar_level.append(lvl)
    left = (k + 1) // 2
    rows = max(left, k - left)
    # vertical layout in row units (a row is 0.3 inches): CD bar and its label, tick labels, axis at 0, clique bars,
    # then one row per label on each side
    row_in = 0.3
    first_label = -0.7 - 0.35 * len(levels)
    bottom, top = first_label - (rows - 1) - 0.6, 2.2
    fig, ax = plt.subplots(figsize=(6.4, (top - bottom) * row_in + 0.5))
    ax.set_xlim(1, k)
    ax.set_ylim(bottom, top)
    ax.axis("off")
    line = {"color": "black", "linewidth": 1, "clip_on": False}
    ax.plot([1, k], [0, 0], **line)
    for r in np.arange(1, k + 0.25, 0.5):
        whole = float(r).is_integer()
        ax.plot([r, r], [0, 0.25 if whole else 0.15], **line)
        if whole:
            ax.text(r, 0.35, str(int(r)), ha="center", va="bottom", fontsize=9)
    ax.plot([1, 1 + cd], [1.35, 1.35], color="black", linewidth=1.5, clip_on=False)
    for x in (1, 1 + cd):
        ax.plot([x, x], [1.25, 1.45], **line)
    ax.text(1 + cd / 2, 1.55, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=9)
    for (i, j), lvl in zip(groups, bar_level):
        ax.plot([ranks[i] - 0.03, ranks[j] + 0.03], [-0.4 - 0.35 * lvl] * 2, color="black", linewidth=3,
                solid_capstyle="round", clip_on=False)
    margin = 0.06 * (k - 1)
    for pos, (name, r) in enumerate(zip(names, ranks)):
        on_left = pos < left
        row = pos if on_left else k - 1 - pos
        y = first_label - row
        end = 1 - margin if on_left else k + margin
        ax.plot([r, r, end], [0, y, y], color="black", linewidth=0.8, clip_on=False)
        ax.text(end + (-0.02 if on_left else 0.02) * (k - 1), y,
                f"{name} ({r:.2f})" if on_left else f"({r:.2f}) {name}",
                ha="right" if on_left else "left", va="center", fontsize=9)
    ax.set_title(f"{dataset_title(dataset)}: average ranks by {statistics['metric']} (1 = best)\n"
                 f"Friedman + Nemenyi, α = 0.05: bars join methods closer than CD", fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Title": ax.get_title().replace("\n", " ")})
    plt.close(fig)
    return True
