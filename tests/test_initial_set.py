"""The initial labeled set is stratified (one item per class first, the rest uniform), drawn from a seeded generator,
recorded in results.json as the run's "initial_rule", for registered sets and own data alike; a results.json written
before the rule existed resumes with its stored initial set."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from al_fixtures import blobs, tiny_digits
from mpts_fast.cli.main import main
from mpts_fast.data import ALDefaults, Dataset
from mpts_fast.initial_set import INITIAL_RULE, stratified_initial
from mpts_fast.loop import ActiveLearningRun, RunConfig


def _skewed_labels(n=300, k=3):
    """Class 0 for all but one item of each other class (a uniform draw of 3 items would usually miss them)."""
    y = torch.zeros(n, dtype=torch.int64)
    y[torch.arange(1, k) * 97 % n] = torch.arange(1, k)
    return y


def test_one_item_per_class_first_then_uniform(gen):
    y = _skewed_labels()
    for seed in range(20):
        picked = stratified_initial(y, 3, torch.Generator().manual_seed(seed))
        assert sorted(y[picked].tolist()) == [0, 1, 2]
    picked = stratified_initial(y, 40, gen)
    assert picked.dtype == torch.int64 and picked.numel() == 40 and picked.unique().numel() == 40
    assert set(y[picked].tolist()) == {0, 1, 2} and set(y[picked[:3]].tolist()) == {0, 1, 2}


def test_fewer_items_than_classes_gives_distinct_classes_and_absent_classes_are_skipped():
    y = torch.tensor([0, 0, 1, 1, 3, 3, 4, 4, 4, 4])  # class 2 has no item
    for seed in range(10):
        picked = stratified_initial(y, 3, torch.Generator().manual_seed(seed))
        assert len(set(y[picked].tolist())) == 3 and 2 not in y[picked].tolist()
    picked = stratified_initial(y, 10, torch.Generator().manual_seed(0))
    assert sorted(picked.tolist()) == list(range(10))
    with pytest.raises(ValueError, match="size must be in"):
        stratified_initial(y, 11, torch.Generator())


def test_the_draw_is_deterministic_per_seed_and_differs_between_seeds():
    y = torch.arange(500) % 7
    a = stratified_initial(y, 30, torch.Generator().manual_seed(5))
    assert torch.equal(a, stratified_initial(y, 30, torch.Generator().manual_seed(5)))
    assert not torch.equal(a, stratified_initial(y, 30, torch.Generator().manual_seed(6)))


def _run(tmp_path, data, **kw):
    cfg = RunConfig(dataset=data.name, strategy="random", **{"rounds": 2, "epochs": 1, **kw})
    return ActiveLearningRun(cfg, tmp_path / "out", data=data, progress=False, device="cpu")


def test_runs_start_stratified_and_record_the_rule(tmp_path):
    d = tiny_digits()
    skewed = Dataset("digits", d.x_train, torch.where(torch.arange(240) < 230, 0, d.y_train), d.x_test, d.y_test, 10,
                     defaults=ALDefaults(initial=10, budget=5, rounds=2, epochs=1))
    present = set(skewed.y_train.tolist())
    run = _run(tmp_path, skewed, repeats=3)
    for rep in range(3):
        record = run._new_run(rep)
        assert set(skewed.y_train[record["initial"]].tolist()) == present and len(record["initial"]) == 10
        assert record["initial_rule"] == INITIAL_RULE == "stratified"
    results = _run(tmp_path, blobs(), initial=3, budget=3).run()
    assert results["runs"][0]["initial_rule"] == "stratified"
    assert sorted(blobs().y_train[results["runs"][0]["initial"]].tolist()) == [0, 1, 2]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["runs"][0]["initial_rule"] == "stratified"


def test_a_results_file_from_before_the_rule_resumes_with_its_stored_initial_set(tmp_path):
    data = blobs()
    run = _run(tmp_path, data, initial=3, budget=3)
    run.run()
    path = tmp_path / "out" / "results.json"
    saved = json.loads(path.read_text())
    old = saved["runs"][0]
    old.pop("initial_rule")
    old["initial"] = [0, 3, 6]  # every item of class 0: what a uniform draw could give
    old["rounds"], old["complete"] = old["rounds"][:1], False
    old["rounds"][0]["selected"] = [1, 2, 4]
    path.write_text(json.dumps(saved))
    resumed = _run(tmp_path, data, initial=3, budget=3, repeats=2).run(resume=True)
    first, second = resumed["runs"]
    assert first["initial"] == [0, 3, 6] and "initial_rule" not in first and first["complete"]
    assert first["rounds"][1]["n_labeled"] == 6
    assert second["initial_rule"] == "stratified" and sorted(data.y_train[second["initial"]].tolist()) == [0, 1, 2]


def test_own_data_starts_with_every_class(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    y = np.zeros(150, dtype=np.int64)
    y[[10, 20]] = [1, 2]  # one item each of classes 1 and 2
    np.savez(tmp_path / "few.npz", x_train=rng.normal(size=(150, 4)).astype(np.float32), y_train=y,
             x_test=rng.normal(size=(9, 4)).astype(np.float32), y_test=np.arange(9) % 3)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["run", "-d", "few.npz", "-s", "random", "--rounds", "2", "--epochs", "1",
                                    "--repeats", "2", "--device", "cpu", "-q"])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "runs" / "few-random" / "results.json").read_text())
    assert saved["config"]["initial"] == 3
    for run in saved["runs"]:
        assert sorted(y[run["initial"]].tolist()) == [0, 1, 2] and run["initial_rule"] == "stratified"
