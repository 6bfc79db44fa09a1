"""Every figure kind rendered to a small PNG, checked as a reader of a paper would: whole-number ticks on count axes,
the critical-difference diagram's rank axis over 1..k with labels that do not overlap, singular/plural counts, and
the data set's name (not its path) in titles. Each figure also carries its title in the PNG's metadata."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from PIL import Image  # noqa: E402

from mpts_fast import plots  # noqa: E402
from mpts_fast.cli.main import main  # noqa: E402
from mpts_fast.study import plots as study_plots  # noqa: E402
from mpts_fast.study import stats  # noqa: E402

OWN = "/data/projects/surveys/my_set.npz"  # an own data set, by absolute path


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions close, kept open for inspection."""
    kept = []
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    yield kept
    monkeypatch.undo()
    plt.close("all")


def _title(path) -> str:
    with Image.open(path) as im:
        return im.info["Title"]


def _integer(ticks) -> bool:
    ticks = np.asarray(ticks, dtype=np.float64)
    return len(ticks) > 1 and bool(np.all(ticks == np.round(ticks)))


def _results(dataset: str, n_labeled: list[int]) -> dict:
    rounds = [{"n_labeled": n, "test_accuracy": 0.5 + 0.01 * i} for i, n in enumerate(n_labeled)]
    return {"strategy": "entropy", "dataset": dataset, "runs": [{"seed": 0, "complete": True, "rounds": rounds}]}


def test_learning_curve_names_own_data_by_stem_with_integer_ticks(tmp_path, figures):
    png = plots.plot_learning_curve(_results(OWN, [10, 15, 20, 25, 30]), tmp_path / "lc.png")  # auto: 12.5
    assert _title(png) == "my_set: entropy"
    ax = figures[-1].axes[0]
    assert ax.get_title() == "my_set: entropy" and _integer(ax.get_xticks())
    legend = ax.get_legend().get_title().get_text()
    assert legend == "mean over 1 seed"


def test_comparison_counts_seeds_in_singular_and_plural(tmp_path, figures):
    assert plots.counted([1], "seed") == "1 seed" and plots.counted(3, "seed") == "3 seeds"
    assert plots.counted([3, 1], "trial") == "1 or 3 trials"
    n = [10, 15, 20, 25, 30]
    summary = {"strategies": {name: {"n_labeled": n, "accuracy_mean": np.linspace(0.4, 0.8, 5) + d,
                                     "accuracy_std": np.full(5, 0.02), "aubc_mean": 0.6 + d, "repeats": 3}
                              for name, d in (("random", 0.0), ("coreset", 0.05))}}
    plots.plot_comparison(summary, tmp_path / "cmp.png", title="digits, 3 seeds")
    ax = figures[-1].axes[0]
    assert _integer(ax.get_xticks())
    assert ax.get_legend().get_title().get_text().startswith("mean ± std over 3 seeds")


def test_compare_title_says_one_seed(tmp_path):
    out = tmp_path / "cmp"
    res = CliRunner().invoke(main, ["compare", "-s", "random", "--rounds", "1", "--initial", "20", "--budget", "5",
                                    "--epochs", "1", "--repeats", "1", "--quiet", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert _title(out / "comparison.png") == "digits, 1 seed"


def _statistics(k: int, trials: int = 12) -> dict:
    rng = np.random.default_rng(k)
    names = [f"method_{j}" for j in range(k)]
    return stats.summarise(rng.normal(size=(trials, k)) + np.linspace(1, 0, k), names, True, "accuracy")


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("k", [2, 4, 7])
def test_cd_diagram_axis_runs_over_1_to_k_and_labels_do_not_overlap(tmp_path, figures, k):
    st = _statistics(k)
    assert max(st["average_ranks"].values()) - min(st["average_ranks"].values()) < k - 1  # ranks never span 1..k
    assert study_plots.cd_diagram(tmp_path / "cd.png", st, OWN)
    fig = figures[-1]
    ax = fig.axes[0]
    assert ax.get_xlim() == (1, k)
    texts = [t for t in ax.texts if t.get_text()]
    ticks = sorted(float(t.get_text()) for t in texts if t.get_text().isdigit())
    assert ticks == list(range(1, k + 1))
    assert any(t.get_text().startswith("CD = ") for t in texts)
    assert sum(name in t.get_text() for t in texts for name in st["average_ranks"]) == k
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts] + [ax.title.get_window_extent(renderer)]
    clashes = [(texts[i].get_text(), texts[j].get_text() if j < len(texts) else "title")
               for i in range(len(boxes)) for j in range(i + 1, len(boxes)) if _overlap(boxes[i], boxes[j])]
    assert not clashes
    assert _title(tmp_path / "cd.png").startswith("my_set: average ranks by accuracy")


def test_cd_diagram_groups_methods_closer_than_cd():
    assert study_plots.cliques(np.array([1.0, 1.5, 3.0, 3.2, 4.2]), 1.3) == [(0, 1), (2, 4)]
    assert study_plots.cliques(np.array([1.0, 2.5, 4.0]), 1.0) == []
    assert study_plots.cliques(np.array([1.0, 1.8, 2.6]), 1.0) == [(0, 1), (1, 2)]


def test_study_figures_have_integer_count_ticks_and_plural_trials(tmp_path, figures):
    names = ["passive", "entropy"]
    # 20 epochs, sizes and labels 10..30: matplotlib's automatic ticks fall at 2.5, 12.5, ...
    curves = {m: {"train_size": list(np.linspace(10, 30, 20)), "labeled": [10, 15, 20, 25, 30],
                  "score": list(np.linspace(0.4, 0.9, 5))} for m in names}
    curves["passive"].update(labeled=[30], score=[0.9])
    study_plots.train_size(tmp_path / "ts.png", curves, OWN)
    ax = figures[-1].axes[0]
    assert _integer(ax.get_xticks()) and _integer(ax.get_yticks())
    study_plots.score_vs_labeled(tmp_path / "svl.png", curves, OWN, "macro F1")
    assert _integer(figures[-1].axes[0].get_xticks())
    assert _title(tmp_path / "svl.png") == "my_set: macro F1 vs labeled instances"
    study_plots.boxplot(tmp_path / "box.png", np.array([[0.8, 0.7]]), names, "accuracy", OWN)
    assert _title(tmp_path / "box.png") == "my_set: test accuracy over 1 trial"
    study_plots.boxplot(tmp_path / "box3.png", np.full((3, 2), 0.5), names, "accuracy", "digits")
    assert _title(tmp_path / "box3.png") == "digits: test accuracy over 3 trials"
    assert all("/" not in _title(png) for png in tmp_path.glob("*.png"))  # no path in any title
