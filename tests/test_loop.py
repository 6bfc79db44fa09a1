import json

import pytest
import torch

from mpts_fast.data import ALDefaults, Dataset
from mpts_fast.loop import ActiveLearningRun, ConfigError, ResumeMismatchError, RunConfig
from mpts_fast.results import aubc, summarize_runs, write_json_atomic

from al_fixtures import blobs, tiny_digits


def _run(tmp_path, strategy="mpts", data=None, name="out", **kw):
    cfg = RunConfig(dataset="digits", strategy=strategy, **kw)
    return ActiveLearningRun(cfg, tmp_path / name, data=data or tiny_digits(), progress=False, device="cpu")


def test_results_schema_and_round_bookkeeping(tmp_path):
    res = _run(tmp_path, repeats=2).run()
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved == res
    assert {"dataset", "strategy", "config", "runs"} <= set(saved)
    assert [r["seed"] for r in saved["runs"]] == [0, 1]
    for run in saved["runs"]:
        assert run["complete"] and len(run["initial"]) == 20
        rounds = run["rounds"]
        assert [r["round"] for r in rounds] == [0, 1, 2]
        assert [r["n_labeled"] for r in rounds] == [20, 30, 40]
        assert [len(r["selected"]) for r in rounds] == [10, 10, 0]
        picked = run["initial"] + sum((r["selected"] for r in rounds), [])
        assert len(set(picked)) == len(picked)
        for r in rounds:
            assert {"test_accuracy", "f1_macro", "precision_macro", "recall_macro", "mcc", "train_accuracy",
                    "train_loss", "selection_test_accuracy", "selection_snapshot_accuracy", "train_seconds",
                    "selection_train_seconds", "select_seconds"} <= set(r)
            assert 0 <= r["test_accuracy"] <= 1


def test_same_seed_same_picks(tmp_path):
    a = _run(tmp_path, "entropy", name="a").run()
    b = _run(tmp_path, "entropy", name="b").run()
    strip = lambda res: [[(r["selected"], r["test_accuracy"]) for r in run["rounds"]] for run in res["runs"]]  # noqa
    assert strip(a) == strip(b)


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("strategy", ["mpts", "random", "bald"])  # mpts, bald: a task and a selection model per round
def test_resume_after_a_kill_gives_the_uninterrupted_results(tmp_path, strategy):
    full = _run(tmp_path, strategy, name="full", repeats=2).run()

    def kill_after_first(seed, record):
        if seed == 0 and record["round"] == 0:
            raise KeyboardInterrupt

    cut = _run(tmp_path, strategy, name="cut", repeats=2)
    cut.on_round = kill_after_first
    with pytest.raises(KeyboardInterrupt):
        cut.run()
    partial = json.loads((tmp_path / "cut" / "results.json").read_text())
    assert len(partial["runs"][0]["rounds"]) == 1 and not partial["runs"][0]["complete"]
    resumed = _run(tmp_path, strategy, name="cut", repeats=2).run(resume=True)
    drop_times = lambda res: [[{k: v for k, v in r.items() if "seconds" not in k} for r in run["rounds"]]  # noqa
                              for run in res["runs"]]
    assert drop_times(resumed) == drop_times(full)


def test_resume_refuses_other_settings_and_fresh_run_refuses_existing_dir(tmp_path):
    _run(tmp_path, "random").run()
    with pytest.raises(FileExistsError, match="resume=True") as exists:
        _run(tmp_path, "random").run()
    with pytest.raises(ResumeMismatchError, match="budget") as mismatch:
        _run(tmp_path, "random", budget=5).run(resume=True)
    assert mismatch.value.differences == {"budget": (10, 5)}
    # the Python API speaks Python: no CLI option names in its messages (the CLI translates)
    for message in (str(exists.value), str(mismatch.value)):
        assert "--" not in message


def test_impossible_settings_are_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="pool"):
        _run(tmp_path, budget=1000)
    with pytest.raises(ValueError, match="strategy"):
        _run(tmp_path, "nope")
    with pytest.raises(ValueError, match="initial"):
        _run(tmp_path, initial=0)
    reg = blobs()
    reg = Dataset("sine", reg.x_train, reg.y_train.float(), reg.x_test, reg.y_test.float(), 0, task="regression")
    with pytest.raises(ValueError, match="regression"):
        _run(tmp_path, data=reg)


def test_strategy_needing_every_class_refuses_a_short_initial_set(tmp_path, monkeypatch):
    from mpts_fast.strategies import Needs
    from mpts_fast.strategies.entropy import EntropyStrategy

    monkeypatch.setattr(EntropyStrategy, "needs", Needs(every_class=True))
    with pytest.raises(ValueError, match="every class"):
        _run(tmp_path, "entropy", initial=5)
    d = tiny_digits()
    skewed = Dataset("digits", d.x_train, torch.where(torch.arange(240) < 200, 0, d.y_train), d.x_test, d.y_test, 10,
                     defaults=ALDefaults(initial=12, budget=5, rounds=2, epochs=2))
    # the initial set is stratified: a pool of mostly one class still starts with every class
    initial = _run(tmp_path, "entropy", data=skewed)._new_run(0)["initial"]
    assert set(skewed.y_train[initial].tolist()) == set(range(10))
    lacking = Dataset("digits", d.x_train, torch.where(d.y_train == 9, 0, d.y_train), d.x_test, d.y_test, 10,
                      defaults=ALDefaults(initial=12, budget=5, rounds=2, epochs=2))
    with pytest.raises(ValueError, match=r"the pool holds no item of classes \[9\]"):
        _run(tmp_path, "entropy", data=lacking).run()
    # a later repeat's bad initial set is refused before the first repeat trains
    trained = []
    monkeypatch.setattr("mpts_fast.loop.Trainer.fit_many", lambda *a, **k: trained.append(1))
    full = Dataset("digits", d.x_train, d.y_train, d.x_test, d.y_test, 10,
                   defaults=ALDefaults(initial=12, budget=5, rounds=2, epochs=2))
    import mpts_fast.loop as loop_module

    real_new_run = loop_module.ActiveLearningRun._new_run

    def fail_second(self, rep):
        if rep == 1:
            raise ValueError("initial: misses classes (simulated)")
        return real_new_run(self, rep)

    monkeypatch.setattr(loop_module.ActiveLearningRun, "_new_run", fail_second)
    with pytest.raises(ValueError, match="misses classes"):
        _run(tmp_path, "entropy", data=full, name="two", repeats=2).run()
    assert trained == []


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "results.json"
    write_json_atomic(path, {"ok": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_aubc_and_summary():
    assert aubc([100, 200, 300], [0.5, 0.7, 0.9]) == pytest.approx(0.7)
    assert aubc([100], [0.4]) == pytest.approx(0.4)
    runs = [{"seed": i, "complete": True,
             "rounds": [{"n_labeled": 10, "test_accuracy": a}, {"n_labeled": 20, "test_accuracy": b}]}
            for i, (a, b) in enumerate([(0.5, 0.7), (0.7, 0.9)])]
    s = summarize_runs({"strategy": "x", "runs": runs + [{"complete": False, "rounds": []}]})
    # sample std (ddof = 1), as in the study: AUBCs 0.6 and 0.8 → 0.1414, not the population 0.1
    assert s["aubc_mean"] == pytest.approx(0.7) and s["aubc_std"] == pytest.approx(0.1414213)
    assert s["accuracy_std"] == pytest.approx([0.1414213, 0.1414213])
    assert s["accuracy_mean"] == pytest.approx([0.6, 0.8]) and s["n_labeled"] == [10, 20]
    assert s["aubc_per_seed"] == pytest.approx([0.6, 0.8])
    one = summarize_runs({"strategy": "x", "runs": runs[:1]})
    assert one["aubc_std"] is None and one["accuracy_std"] is None  # undefined with one seed, not 0


@pytest.mark.parametrize("strategy", ["random", "entropy", "least_confidence", "margin", "bald", "ensemble_variance",
                                      "mpts", "coreset", "badge"])
def test_every_core_strategy_runs_end_to_end(tmp_path, strategy):
    res = _run(tmp_path, strategy, data=blobs(n=90), rounds=2, epochs=2).run()
    rounds = res["runs"][0]["rounds"]
    assert [r["n_labeled"] for r in rounds] == [6, 10] and len(rounds[0]["selected"]) == 4


def test_unused_settings_are_recorded_as_none(tmp_path):
    res = _run(tmp_path, "badge", data=blobs(n=90), rounds=2, epochs=2, mmd_weight=5.0, snapshots=3).run()
    assert res["config"]["mmd_weight"] is None and res["config"]["snapshots"] is None
    res = _run(tmp_path, "mpts", name="m", rounds=2, epochs=2, mmd_weight=5.0, recipe="paper").run()
    assert res["config"]["mmd_weight"] == 5.0 and res["config"]["snapshots"] is None  # None: one per cycle
    res = _run(tmp_path, "mpts", name="f", rounds=2, epochs=2, mmd_weight=5.0).run()
    assert res["config"]["snapshots"] == 25  # the fitting recipe: one cycle per snapshot, 25 unless given
    assert res["config"]["cycle_steps"] == 4 and res["config"]["cycle_max_factor"] == 10.0


def test_settings_that_cannot_work_are_refused_before_training(tmp_path, monkeypatch):
    import importlib.util

    trained = []
    monkeypatch.setattr("mpts_fast.loop.Trainer.fit_many", lambda *a, **k: trained.append(1))
    with pytest.raises(ConfigError, match="snapshots") as e:
        _run(tmp_path, "mpts", snapshots=0).run()
    assert e.value.field == "snapshots"
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "timm" else real_find_spec(name, *a))
    with pytest.raises(ConfigError, match="timm") as e:
        _run(tmp_path, "entropy", model="vit_small").run()
    assert e.value.field == "model"
    with pytest.raises(ConfigError, match="unknown backbone"):
        _run(tmp_path, "entropy", model="resnet1")
    assert trained == []


def test_a_failed_first_round_does_not_block_the_next_run(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("out of memory (simulated)")

    with monkeypatch.context() as m:
        m.setattr("mpts_fast.loop.Trainer.fit_many", boom)
        with pytest.raises(RuntimeError, match="simulated"):
            _run(tmp_path, "random", rounds=2, epochs=1).run()
    res = _run(tmp_path, "random", rounds=2, epochs=1).run()  # no overwrite=True needed: nothing was finished
    assert res["runs"][0]["complete"]


def test_resume_with_fewer_repeats_keeps_every_stored_run(tmp_path):
    _run(tmp_path, "random", rounds=2, epochs=1, repeats=2).run()
    res = _run(tmp_path, "random", rounds=2, epochs=1, repeats=1).run(resume=True)
    assert res["config"]["repeats"] == 2 and len(res["runs"]) == 2
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["config"]["repeats"] == 2


def test_results_file_mode_and_provenance(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        res = _run(tmp_path, "random", rounds=2, epochs=1).run()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out" / "results.json").stat().st_mode) == 0o644
    prov = res["provenance"][0]
    assert {"timestamp", "mpts_fast", "torch", "backend", "torch_threads", "device", "git_commit"} <= set(prov)
    assert prov["backend"] in ("native", "reference") and prov["device"] == "cpu"
    res = _run(tmp_path, "random", rounds=2, epochs=1).run(resume=True)
    assert len(res["provenance"]) == 2
