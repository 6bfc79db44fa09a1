"""Learning-curve plots (matplotlib, headless): one strategy's curve, and the comparison figure (mean ± std bands);
the helpers every figure shares (whole-number ticks for counts, singular/plural counts, data set names as titles)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = "os^Dv<>pXh*"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)  # headless; respects a backend the user already chose
    import matplotlib.pyplot as plt

    return plt


def counted(counts, word: str) -> str:
    """'1 seed', '3 seeds', '1 or 3 seeds': one or more counts of `word`, plural unless the only count is 1."""
    counts = sorted(set(int(c) for c in (counts if hasattr(counts, "__iter__") else [counts])))
    return f"{' or '.join(map(str, counts))} {word}{'' if counts == [1] else 's'}"


def dataset_title(dataset: str) -> str:
    """A data set's name for a figure's title: the registered name, or your own file's stem (not its path)."""
    from mpts_fast.data import own

    return own.label(dataset) if own.is_own_dataset(dataset) else dataset


def integer_ticks(axis) -> None:
    """Ticks at whole numbers only, for counts (labels, epochs, training-set sizes): never 12.5 labels."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))  # 10, 15, 20 rather than 9, 12, 15


def _style(i: int, plt) -> dict:
    """Colour, line style and marker of the i-th of n curves. tab10's ten colours are distinct; past ten they repeat
    with another line style and marker (tab20's light/dark pairs are too alike to tell apart)."""
    colour = plt.get_cmap("tab10").colors[i % 10]
    return {"color": colour, "linestyle": _LINESTYLES[(i // 10) % len(_LINESTYLES)],
            "marker": _MARKERS[i % len(_MARKERS)]}


def plot_comparison(summary: dict, path: str | Path, title: str = "") -> Path:
    """summary: {"strategies": {name: {"n_labeled", "accuracy_mean", "accuracy_std", "aubc_mean", "repeats"}}} → PNG.
    Mean test accuracy against the number of labels with a band of ± 1 sample std over the seeds per strategy (like the
    MPTS paper's Figure 1); the legend says what the bands are. With more than four curves the legend sits right of the
    axes so it never hides a curve."""
    plt = _pyplot()
    entries = sorted(summary["strategies"].items(), key=lambda kv: -kv[1]["aubc_mean"])
    outside = len(entries) > 4
    fig, ax = plt.subplots(figsize=(8.6 if outside else 6.4, 4.6), dpi=120)
    seeds = sorted({s.get("repeats", 1) for _, s in entries})
    for i, (name, s) in enumerate(entries):
        n = np.asarray(s["n_labeled"])
        mean = np.asarray(s["accuracy_mean"])
        line, = ax.plot(n, mean, markersize=3, label=f"{name} (AUBC {s['aubc_mean']:.3f})", **_style(i, plt))
        if s.get("accuracy_std") is not None:
            std = np.asarray(s["accuracy_std"], dtype=np.float64)
            # fainter bands when many overlap, so the curves stay readable
            ax.fill_between(n, mean - std, mean + std, color=line.get_color(),
                            alpha=0.15 if len(entries) <= 6 else 0.07, linewidth=0)
    ax.set_xlabel("number of labeled examples")
    integer_ticks(ax.xaxis)
    ax.set_ylabel("test accuracy")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    banded = any(s.get("accuracy_std") is not None for _, s in entries)
    legend_title = (f"mean ± std over {counted(seeds, 'seed')}\n(bands: ± 1 sample std, ddof = 1)" if banded
                    else f"mean over {counted(seeds, 'seed')}")
    if outside:
        ax.legend(fontsize=8, title=legend_title, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0)
    else:
        ax.legend(fontsize=8, title=legend_title, title_fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", metadata={"Title": title or "learning curves"})
    plt.close(fig)
    return path


def plot_learning_curve(results: dict, path: str | Path) -> Path:
    """One strategy's results.json → its learning curve (mean ± std over the finished runs)."""
    from mpts_fast.results import summarize_runs

    summary = {"strategies": {results["strategy"]: summarize_runs(results)}}
    return plot_comparison(summary, path, title=f"{dataset_title(results['dataset'])}: {results['strategy']}")
