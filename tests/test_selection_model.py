"""The task model and the selection model: what each strategy declares, which model trains with which seed stream,
and that the split leaves the strategies that select with the task model unchanged."""
import pytest

from mpts_fast.strategies import Needs, get_strategy, strategy_names
from mpts_fast.strategies.registry import model_dropout
from mpts_fast.training.config import DEFAULT_MMD_WEIGHT


def test_strategies_declare_how_their_selection_model_trains():
    own = {name for name in strategy_names() if get_strategy(name).needs.own_model}
    assert own == {"mpts", "bald", "ensemble_variance"}
    assert model_dropout("bald") == get_strategy("bald").needs.dropout == 0.3
    assert all(model_dropout(n) == 0.0 for n in strategy_names() if n != "bald")


@pytest.mark.parametrize("bad, match", [({"dropout": 1.0}, "dropout"), ({"dropout": True}, "dropout"),
                                        ({"ensemble_size": 0}, "ensemble_size")])
def test_needs_refuses_impossible_declarations(bad, match):
    with pytest.raises(ValueError, match=match):
        Needs(**bad)


# --- the split in the loop -------------------------------------------------------------------------------------------

import json  # noqa: E402

import torch  # noqa: E402

from mpts_fast.loop import ActiveLearningRun, RunConfig, evaluate, task_train_config, train_config  # noqa: E402
from mpts_fast.models import build_model  # noqa: E402
from mpts_fast.strategies import SelectionContext, build_strategy  # noqa: E402
from mpts_fast.training import Trainer, derive_seed  # noqa: E402

from al_fixtures import tiny_digits  # noqa: E402


def _run(tmp_path, strategy, name="out", data=None, **kw):
    cfg = RunConfig(dataset="digits", strategy=strategy, **kw)
    return ActiveLearningRun(cfg, tmp_path / name, data=data or tiny_digits(), progress=False, device="cpu")


def _fits(monkeypatch):
    """Records (TrainConfig, seed) of every training (Trainer.fit_many trains one per seed; fit goes through it)."""
    calls, real = [], Trainer.fit_many

    def fit_many(self, x_pool, labeled, y_labeled, seeds):
        calls.extend((self.config, seed) for seed in seeds)
        return real(self, x_pool, labeled, y_labeled, seeds)

    monkeypatch.setattr(Trainer, "fit_many", fit_many)
    return calls


def _one_model_loop(res: dict, data) -> list[tuple[list[int], dict]]:
    """The loop as it was before the split, by hand: each round one model, the strategy's own recipe on the "train"
    seed stream, scores the curve and selects. [(picks, metrics)] per round of the first run."""
    cfg = RunConfig(**{**res["config"], "evaluate": "selection"})
    strategy = build_strategy(cfg.strategy, **cfg.strategy_options)
    run, labeled, out = res["runs"][0], list(res["runs"][0]["initial"]), []
    factory = lambda: build_model(cfg.model, data.input_shape, data.num_classes,  # noqa: E731
                                  dropout=strategy.needs.dropout)
    for r in range(cfg.rounds):
        lab = torch.tensor(labeled, dtype=torch.int64)
        trained = Trainer(factory, train_config(cfg, strategy)).fit(data.x_train, lab, data.y_train[lab],
                                                                    seed=derive_seed(run["seed"], r, "train"))
        mask = torch.ones(data.x_train.shape[0], dtype=torch.bool)
        mask[lab] = False
        seed = derive_seed(run["seed"], r, "select")
        ctx = SelectionContext(x_pool=data.x_train, labeled=lab, y_labeled=data.y_train[lab],
                               unlabeled=mask.nonzero().squeeze(1), trained=trained, num_classes=data.num_classes,
                               generator=torch.Generator().manual_seed(seed), seed=seed)
        picks = strategy.select(ctx, cfg.budget).tolist() if r < cfg.rounds - 1 else []
        out.append((picks, evaluate(trained, data)))
        labeled += picks
    return out


def _as_run(res: dict) -> list[tuple[list[int], dict]]:
    return [(rd["selected"], {k: rd[k] for k in metrics}) for rd, (_, metrics) in
            zip(res["runs"][0]["rounds"], _one_model_loop(res, tiny_digits()))]


@pytest.mark.parametrize("strategy", ["entropy", "coreset", "badge"])
def test_a_strategy_selecting_with_the_task_model_trains_once_and_is_unchanged(tmp_path, monkeypatch, strategy):
    calls = _fits(monkeypatch)
    res = _run(tmp_path, strategy).run()
    assert len(calls) == 3 and all(c == task_train_config(RunConfig(**res["config"])) for c, _ in calls)
    assert _as_run(res) == _one_model_loop(res, tiny_digits())  # picks and every figure, bit for bit
    for rd in res["runs"][0]["rounds"]:
        assert rd["scored_by"] == "task" and rd["selection_model"] == "same"
        assert not [k for k in rd if k.startswith("selection_") and k != "selection_model"]


@pytest.mark.parametrize("strategy", ["mpts", "bald"])
def test_evaluate_selection_is_the_loop_before_the_split(tmp_path, monkeypatch, strategy):
    calls = _fits(monkeypatch)
    res = _run(tmp_path, strategy, evaluate="selection").run()
    assert len(calls) == 3
    assert _as_run(res) == _one_model_loop(res, tiny_digits())
    assert all(rd["scored_by"] == "selection" and rd["selection_model"] == "same" for rd in res["runs"][0]["rounds"])


def test_mpts_trains_a_task_and_a_selection_model_on_independent_seeds(tmp_path, monkeypatch):
    calls = _fits(monkeypatch)
    res = _run(tmp_path, "mpts").run()
    cfg = RunConfig(**res["config"])
    own = train_config(cfg, build_strategy("mpts"))
    assert own != task_train_config(cfg) and own.mmd_weight == DEFAULT_MMD_WEIGHT
    assert calls == [c for r in range(3) for c in ((task_train_config(cfg), derive_seed(0, r, "train")),
                                                   (own, derive_seed(0, r, "selection")))]
    assert len({seed for _, seed in calls}) == 6
    rounds = res["runs"][0]["rounds"]
    for rd in rounds:
        assert rd["scored_by"] == "task" and rd["selection_model"] == "separate"
        assert {"selection_test_accuracy", "selection_snapshot_accuracy", "selection_swa_accuracy",
                "selection_train_accuracy", "selection_train_loss", "selection_train_seconds", "trajectory",
                "mmd"} <= set(rd)
        assert "snapshot_accuracy" not in rd  # the task model has no snapshots
        assert {"grad_ratio", "grad_cosine", "mmd2_labeled_pool", "mmd2_pool_null", "task_mmd2_labeled_pool",
                "task_mmd2_pool_null"} <= set(rd["mmd"]) and rd["mmd"]["weight"] == DEFAULT_MMD_WEIGHT
    # the task model is the one every strategy trains on these labels: entropy's first round, figure for figure
    entropy = _run(tmp_path, "entropy", name="entropy").run()["runs"][0]["rounds"][0]
    same = ("test_accuracy", "f1_macro", "mcc", "train_accuracy", "train_loss")
    assert {k: rounds[0][k] for k in same} == {k: entropy[k] for k in same}


def test_bald_selects_with_its_dropout_model_and_the_curve_is_plain(tmp_path, monkeypatch):
    import mpts_fast.loop as loop

    built = []
    real = loop.build_model
    def counting(*a, **k):
        model = real(*a, **k)
        if next(model.parameters()).device.type != "meta":  # not the trainer's look at the model's kind
            built.append(k["dropout"])
        return model

    monkeypatch.setattr(loop, "build_model", counting)
    # the thread rule builds a model to count a step's FLOPs (training/threads.py): not a training
    monkeypatch.setattr("mpts_fast.training.trainer.step_flops", lambda *a, **k: 1.0)
    res = _run(tmp_path, "bald", rounds=2, epochs=2).run()
    assert built == [0.0, 0.3, 0.0, 0.3]  # per round: the task model, then BALD's MC-dropout model
    assert "diversity" in res["runs"][0]["rounds"][0] and "selection_test_accuracy" in res["runs"][0]["rounds"][0]


def test_resume_of_a_file_written_before_the_split(tmp_path):
    """A results.json without `evaluate` was made by the strategy's own model: it resumes as evaluate="selection"."""
    from mpts_fast.loop import ResumeMismatchError

    out = tmp_path / "old"
    full = _run(tmp_path, "mpts", name="full", evaluate="selection").run()
    partial = json.loads(json.dumps(full))
    del partial["config"]["evaluate"]
    partial["runs"][0]["complete"] = False
    partial["runs"][0]["rounds"] = [{k: v for k, v in partial["runs"][0]["rounds"][0].items()
                                     if k not in ("train_accuracy", "train_loss", "scored_by", "selection_model",
                                                  "mmd")}]
    out.mkdir()
    (out / "results.json").write_text(json.dumps(partial))
    with pytest.raises(ResumeMismatchError, match="evaluate"):
        _run(tmp_path, "mpts", name="old").run(resume=True)
    resumed = _run(tmp_path, "mpts", name="old", evaluate="selection").run(resume=True)
    picks = lambda res: [rd["selected"] for rd in res["runs"][0]["rounds"]]  # noqa: E731
    assert picks(resumed) == picks(full)
    assert [rd["test_accuracy"] for rd in resumed["runs"][0]["rounds"]] == \
        [rd["test_accuracy"] for rd in full["runs"][0]["rounds"]]


# --- the CLI: --evaluate, compare --curve, old files, the CSV, the underfitting warning ---------------------------------

from click.testing import CliRunner  # noqa: E402

from mpts_fast.cli.main import main  # noqa: E402

FAST = ["--rounds", "2", "--initial", "20", "--budget", "10", "--epochs", "2", "--device", "cpu", "--quiet"]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_resumes_a_file_written_before_the_split_as_it_was_made(tmp_path):
    out = tmp_path / "old"
    assert cli("run", *FAST, "-s", "mpts", "--evaluate", "selection", "--out", out).exit_code == 0
    full = json.loads((out / "results.json").read_text())
    old = json.loads(json.dumps(full))
    del old["config"]["evaluate"]
    old["runs"][0]["complete"], old["runs"][0]["rounds"] = False, old["runs"][0]["rounds"][:1]
    (out / "results.json").write_text(json.dumps(old))
    res = cli("run", "--out", out, "--resume", "--device", "cpu", "-q")
    assert res.exit_code == 0, res.output
    resumed = json.loads((out / "results.json").read_text())
    assert resumed["config"]["evaluate"] == "selection"
    assert [rd["selected"] for rd in resumed["runs"][0]["rounds"]] == [rd["selected"] for rd in full["runs"][0]["rounds"]]
    res = cli("run", "--out", out, "--resume", "--evaluate", "task", "--device", "cpu", "-q")
    assert res.exit_code == 2 and "--evaluate task (saved: selection)" in res.output
    assert cli("export", out).exit_code == 0


def test_compare_plots_either_curve_and_the_csv_carries_both_models(tmp_path):
    import csv

    out = tmp_path / "cmp"
    res = cli("compare", *FAST, "-s", "entropy,mpts", "--curve", "selection", "--out", out)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    mpts = json.loads((out / "mpts" / "results.json").read_text())
    assert summary["config"]["evaluate"] == "task" and summary["strategies"]["mpts"]["curve"] == "selection"
    assert summary["strategies"]["mpts"]["accuracy_mean"] == [rd["selection_test_accuracy"]
                                                              for rd in mpts["runs"][0]["rounds"]]
    entropy = json.loads((out / "entropy" / "results.json").read_text())  # selects with its task model
    assert summary["strategies"]["entropy"]["accuracy_mean"] == [rd["test_accuracy"]
                                                                 for rd in entropy["runs"][0]["rounds"]]
    with open(out / "results.csv") as f:
        header = next(csv.reader(f))
    assert {"scored_by", "train_accuracy", "train_loss", "selection_test_accuracy", "selection_train_accuracy",
            "mmd.grad_ratio", "mmd.grad_cosine", "mmd.mmd2_labeled_pool", "mmd.mmd2_pool_null"} <= set(header)
    res = cli("compare", *FAST, "-s", "entropy", "--evaluate", "selection", "--curve", "task", "--out", tmp_path / "x")
    assert res.exit_code == 2 and "--curve" in res.output


def test_an_underfitting_run_is_said_once_and_goes_on(tmp_path):
    res = CliRunner().invoke(main, ["run", *FAST, "-s", "entropy", "--epochs", "1", "--lr", "1e-5", "--out",
                                    str(tmp_path / "u")])
    assert res.exit_code == 0, res.output
    assert res.stderr.count("underfitting") == 1 and "training accuracy" in res.stderr
    saved = json.loads((tmp_path / "u" / "results.json").read_text())
    assert all(rd["train_accuracy"] < 0.9 for rd in saved["runs"][0]["rounds"])
