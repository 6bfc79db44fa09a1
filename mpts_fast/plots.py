"""Learning-curve plots (matplotlib, headless): one strategy's curve, and the comparison figure (mean ± std bands)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)  # headless; respects a backend the user already chose
    import matplotlib.pyplot as plt

    return plt


def plot_comparison(summary: dict, path: str | Path, title: str = "") -> Path:
    """summary: {"strategies": {name: {"n_labeled", "accuracy_mean", "accuracy_std", "aubc_mean", ...}}} → PNG at path.
    Mean test accuracy against the number of labels with a ±1 std band per strategy (like the MPTS paper's Figure 1)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    entries = sorted(summary["strategies"].items(), key=lambda kv: -kv[1]["aubc_mean"])
    # the default cycle repeats after 10 colours: the full line-up (13) needs more, and line styles to tell neighbours apart
    colours = plt.get_cmap("tab20").colors if len(entries) > 10 else [None] * len(entries)
    for i, (name, s) in enumerate(entries):
        n = np.asarray(s["n_labeled"])
        mean, std = np.asarray(s["accuracy_mean"]), np.asarray(s["accuracy_std"])
        line, = ax.plot(n, mean, marker="os^D"[i % 4], markersize=3, linestyle=("-", "--")[i % 2 if len(entries) > 10 else 0],
                        color=colours[i], label=f"{name} (AUBC {s['aubc_mean']:.3f})")
        ax.fill_between(n, mean - std, mean + std, color=line.get_color(), alpha=0.18, linewidth=0)
    ax.set_xlabel("number of labeled examples")
    ax.set_ylabel("test accuracy")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_learning_curve(results: dict, path: str | Path) -> Path:
    """One strategy's results.json → its learning curve (mean ± std over the finished runs)."""
    from mpts_fast.results import summarize_runs

    summary = {"strategies": {results["strategy"]: summarize_runs(results)}}
    return plot_comparison(summary, path, title=f"{results['dataset']}: {results['strategy']}")
