"""A small study end to end (every output file), --resume, chunk independence, the grid search, regression."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mpts_fast.study import data as sdata
from mpts_fast.study import grid
from mpts_fast.study.config import Hyper, StudyConfig
from mpts_fast.study.methods import run_method
from mpts_fast.study.runner import run_study

SMALL = dict(epochs=12, batch_size=16, query_size=0.1, query_epochs=2)
HYPER = Hyper(16, 0.1, 0.001, 0.9)


@pytest.fixture(scope="module")
def iris():
    return sdata.load("iris")


def test_cli_small_study_writes_every_file(tmp_path):
    pytest.importorskip("scikit_posthocs")
    from mpts_fast.cli.main import main

    out = tmp_path / "iris"
    args = ["study", "--dataset", "iris", "--trials", "3", "--out", str(out), "--workers", "1", "--epochs", "12",
            "--query-size", "0.1", "--query-epochs", "2", "--hidden", "16", "--lr", "0.1", "--weight-decay",
            "0.001", "--momentum", "0.9", "--no-progress"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    for name in ["study.json", "report.md", "curves.json", "config.json", "accuracy_boxplot.png", "train_size.png",
                 "score_vs_labeled.png", "cd_diagram.png"]:
        assert (out / name).stat().st_size > 0, name
    doc = json.loads((out / "study.json").read_text())
    assert doc["dataset"] == "iris" and set(doc["methods"]) == {"passive", "sasla", "entropy", "ensemble"}
    keys = {"accuracy_mean", "accuracy_std", "f1_mean", "precision_mean", "recall_mean", "mcc_mean",
            "epochs_to_convergence_mean", "convergence_rate", "observations_seen_mean", "final_train_size_mean"}
    for m, s in doc["methods"].items():
        assert keys <= set(s), m
        assert 0.0 <= s["accuracy_mean"] <= 1.0
    st = doc["statistics"]
    assert 0.0 <= st["friedman_p"] <= 1.0 and len(st["wilcoxon"]) == 6
    assert len(list((out / "trials").glob("*/trial_*.json"))) == 12
    # passive sees the whole training split every epoch; SASLA never more; entropy starts from max(10, ⌈n/10⌉)
    p, s, e = (doc["methods"][m] for m in ("passive", "sasla", "entropy"))
    assert p["observations_seen_mean"] == 12 * 120 and s["observations_seen_mean"] <= 12 * 120
    curves = json.loads((out / "curves.json").read_text())
    assert curves["entropy"]["labeled"][0] == 12 and curves["entropy"]["labeled"][-1] == 120
    assert "| passive |" in (out / "report.md").read_text()
    # bad input is a usage error naming the option
    res = CliRunner().invoke(main, ["study", "--dataset", "sine", "--methods", "entropy", "--out", str(out)])
    assert res.exit_code != 0 and "methods" in res.output
    res = CliRunner().invoke(main, ["study", "--dataset", "nope", "--out", str(out)])
    assert res.exit_code != 0 and "dataset" in res.output


def test_resume_keeps_finished_trials_and_chunks_do_not_matter(iris, tmp_path):
    cfg = StudyConfig("iris", ("passive", "sasla"), trials=3, hyper=HYPER, beta=0.5, **SMALL)
    doc = run_study(iris, cfg, tmp_path, plot=False, progress=False)
    first = json.loads((tmp_path / "trials" / "sasla" / "trial_001.json").read_text())
    (tmp_path / "trials" / "sasla" / "trial_002.json").unlink()
    (tmp_path / "trials" / "passive" / "trial_000.json").write_text("{")  # cut short
    doc2 = run_study(iris, cfg, tmp_path, plot=False, progress=False, resume=True)
    assert json.loads((tmp_path / "trials" / "sasla" / "trial_001.json").read_text()) == first
    assert doc2["methods"]["sasla"]["accuracy_mean"] == pytest.approx(doc["methods"]["sasla"]["accuracy_mean"])
    # a trial run alone gives the same result as inside a chunk (own generators per trial)
    alone = run_method("sasla", iris, cfg, [1])[0]
    assert alone["train_size_curve"] == first["train_size_curve"]
    assert alone["accuracy"] == first["accuracy"]
    assert all(b <= a for a, b in zip(first["train_size_curve"], first["train_size_curve"][1:]))


def test_uncertainty_methods_label_the_whole_pool(iris):
    cfg = StudyConfig("iris", trials=2, hyper=HYPER, **SMALL)
    for method in ("entropy", "ensemble"):
        recs = run_method(method, iris, cfg, [0, 1])
        for r in recs:
            labeled = [n for n, _ in r["curve"]]
            assert labeled[0] == 12 and labeled[-1] == 120 and labeled == sorted(labeled)
            assert r["final_train_size"] == 120 and r["epochs"] == 2 * len(labeled)
            assert r["observations_seen"] == sum(r["train_size_curve"])


def test_grid_group_uses_validation_folds_only(iris):
    cfg = StudyConfig("iris", epochs=3, hyper=HYPER)
    folds = grid.grid_folds(iris, cfg)
    train, test = sdata.trial_split(iris, grid._seed(cfg.seed, grid.GRID_TRIAL, grid._SPLIT))
    assert len(folds) == 5 and not set(np.concatenate([v for _, v in folds])) & set(test)
    assert sorted(np.concatenate([v for _, v in folds]).tolist()) == sorted(train.tolist())
    small = {"hidden": (8,), "lr": (0.1,), "weight_decay": (0.0, 0.01), "momentum": (0.0, 0.9)}
    rows = grid.run_group(iris, cfg, 8, [0.1], small)
    assert len(rows) == 4 and all(0.0 <= r["val_score"] <= 1.0 for r in rows)
    assert isinstance(grid.best(rows), Hyper)


def test_regression_study_on_sine(tmp_path):
    pytest.importorskip("scikit_posthocs")
    sine = sdata.load("sine")
    cfg = StudyConfig("sine", ("passive", "sasla", "ensemble"), trials=3, hyper=Hyper(16, 0.1, 0.0, 0.9), **SMALL)
    doc = run_study(sine, cfg, tmp_path, progress=False)
    for m, s in doc["methods"].items():
        assert {"mse_mean", "r2_mean", "convergence_rate", "observations_seen_mean"} <= set(s)
        assert np.isfinite(s["mse_mean"]) and s["r2_mean"] <= 1.0
    assert doc["statistics"]["metric"] == "mse"
    with pytest.raises(ValueError, match="entropy"):
        StudyConfig("sine", ("entropy",)).validate("regression")


def test_resume_of_a_finished_study_reruns_nothing(iris, tmp_path):
    # regression: every method complete -> `_chunks([])` divided by zero (range() arg 3 must not be zero)
    cfg = StudyConfig("iris", ("passive", "sasla"), trials=2, hyper=HYPER, **SMALL)
    doc = run_study(iris, cfg, tmp_path, plot=False, progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "trials").glob("*/trial_*.json")}
    doc2 = run_study(iris, cfg, tmp_path, plot=False, progress=False, resume=True)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "trials").glob("*/trial_*.json")} == stamps
    assert doc2["methods"] == doc["methods"]


def test_resume_with_one_method_complete_and_another_missing_trials(iris, tmp_path):
    # as after a Ctrl-C that came when passive had finished all its trials and sasla had not
    cfg = StudyConfig("iris", ("passive", "sasla"), trials=3, hyper=HYPER, **SMALL)
    doc = run_study(iris, cfg, tmp_path, plot=False, progress=False, workers=2)
    for t in (0, 2):
        (tmp_path / "trials" / "sasla" / f"trial_{t:03d}.json").unlink()
    doc2 = run_study(iris, cfg, tmp_path, plot=False, progress=False, workers=2, resume=True)
    assert sorted(p.name for p in (tmp_path / "trials" / "sasla").glob("trial_*.json")) == \
        ["trial_000.json", "trial_001.json", "trial_002.json"]
    assert doc2["methods"]["sasla"]["accuracy_mean"] == pytest.approx(doc["methods"]["sasla"]["accuracy_mean"])


def test_chunks_split_evenly_and_empty_is_empty():
    from mpts_fast.study.runner import _chunks

    assert _chunks([], 4) == []
    assert _chunks([3], 4) == [[3]]
    assert _chunks(list(range(5)), 2) == [[0, 1, 2], [3, 4]]


def test_run_study_refuses_to_mix_studies_in_python_words(iris, tmp_path):
    cfg = StudyConfig("iris", ("passive",), trials=1, hyper=HYPER, **SMALL)
    run_study(iris, cfg, tmp_path, plot=False, progress=False)
    with pytest.raises(FileExistsError, match="resume=True") as e:
        run_study(iris, cfg, tmp_path, plot=False, progress=False)
    assert "--" not in str(e.value)
    other = StudyConfig("iris", ("passive",), trials=1, hyper=HYPER, **{**SMALL, "epochs": 13})
    with pytest.raises(ValueError, match="epochs 12 there, 13 now"):
        run_study(iris, other, tmp_path, plot=False, progress=False, resume=True)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        run_study(iris, cfg, tmp_path / "empty", plot=False, progress=False, resume=True)
    doc = run_study(iris, other, tmp_path, plot=False, progress=False, overwrite=True)
    assert doc["config"]["epochs"] == 13
