"""Training recipes: the fitting recipe's stopping rule and step budget, `paper` as the training was before recipes
existed, what results.json records, resume and determinism, and old results files."""
import json

import pytest
import torch
from click.testing import CliRunner
from torch.nn import functional as F

from mpts_fast.loop import ActiveLearningRun, ConfigError, ResumeMismatchError, RunConfig, evaluate
from mpts_fast.models import build_model
from mpts_fast.training import TrainConfig, Trainer, derive_seed
from mpts_fast.training.recipe import FitScheduler, fit_lr_factor

from al_fixtures import tiny_digits


def _factory(d_in=5, classes=3):
    return lambda: build_model("mlp", (d_in,), classes, dropout=0.0)


def _separable(n=60, seed=0):
    """3 far-apart clusters: the running accuracy reaches 99% within a few dozen steps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.eye(3, 5)[y] * 8 + 0.1 * torch.randn(n, 5, generator=g)
    return x, y


def test_fit_lr_factor_warms_up_then_decays_by_cosine():
    assert [fit_lr_factor(s, 10, 2) for s in (0, 1)] == [0.5, 1.0]
    assert fit_lr_factor(2, 10, 2) == 1.0 and fit_lr_factor(6, 10, 2) == pytest.approx(0.5)
    assert 0 < fit_lr_factor(9, 10, 2) < 0.05
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = FitScheduler(opt, 0.1, 100, 5)
    sched.settle(20, 4)  # from step 20 the LR anneals from where it was to 0 over 4 steps
    assert sched.lr_at(20) == pytest.approx(0.1 * fit_lr_factor(20, 100, 5))
    assert sched.lr_at(22) == pytest.approx(sched.lr_at(20) / 2) and sched.lr_at(24) == pytest.approx(0, abs=1e-12)


def test_stopping_rule_stops_at_the_target_and_says_so():
    x, y = _separable()
    lab = torch.arange(60)
    at_once = Trainer(_factory(), TrainConfig(recipe="fit", steps=400, settle=0.0, batch_size=20, lr=1e-2)) \
        .fit(x, lab, y, seed=1)
    assert at_once.fit_stop == "target" and at_once.fit_running_accuracy >= 0.99
    assert at_once.total_steps < 400 and at_once.total_steps % 3 == 0  # an epoch end: 3 steps an epoch
    # settling: as many steps again × settle after the target, the LR annealed to 0 (same seed, same first steps)
    settled = Trainer(_factory(), TrainConfig(recipe="fit", steps=400, settle=1.0, batch_size=20, lr=1e-2)) \
        .fit(x, lab, y, seed=1)
    assert settled.fit_stop == "target" and settled.total_steps == 2 * at_once.total_steps
    assert settled.lr_trace[:at_once.total_steps] == at_once.lr_trace
    settle_lr = settled.lr_trace[at_once.total_steps]  # the settling anneal's first step, at the LR reached
    assert settled.lr_trace[-1] < 0.05 * settle_lr


def test_step_budget_is_the_same_for_100_and_1000_labels():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(1000, 5, generator=g), torch.randint(0, 3, (1000,), generator=g)  # random labels: no early fit
    cfg = TrainConfig(recipe="fit", steps=9, batch_size=16)
    small = Trainer(_factory(), cfg).fit(x, torch.arange(100), y[:100], seed=0)
    large = Trainer(_factory(), cfg).fit(x, torch.arange(1000), y, seed=0)
    assert small.total_steps == large.total_steps == len(small.lr_trace) == len(large.lr_trace) == 9
    assert small.fit_stop == large.fit_stop == "budget"
    assert len(small.epoch_seconds) == 2 and len(large.epoch_seconds) == 1  # 7 steps an epoch at 100 labels


def _hand_paper_training(x, lab, y, cfg: TrainConfig, seed: int):
    """The training of every model before recipes existed, written out: Adam at a constant lr, cfg.epochs epochs of
    nearly equal batches of a fresh permutation, plain cross-entropy."""
    torch.manual_seed(seed)
    model = build_model("mlp", tuple(x.shape[1:]), int(y.max()) + 1, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    steps = -(-lab.numel() // min(cfg.batch_size, lab.numel()))
    model.train()
    for _ in range(cfg.epochs):
        for part in torch.tensor_split(torch.randperm(lab.numel(), generator=gen), steps):
            loss = F.cross_entropy(model(x[lab[part]]), y[part])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


def test_paper_recipe_trains_exactly_as_before(tmp_path):
    data = tiny_digits()
    res = ActiveLearningRun(RunConfig(strategy="entropy", rounds=1, recipe="paper"), tmp_path, data=data,
                            device="cpu", progress=False).run()
    rd, run = res["runs"][0]["rounds"][0], res["runs"][0]
    assert res["config"]["recipe"] == "paper" and res["config"]["steps"] is None and res["config"]["epochs"] == 4
    lab = torch.tensor(run["initial"])
    cfg = TrainConfig(epochs=4, lr=1e-3, batch_size=64)
    seed = derive_seed(derive_seed(run["seed"], 0, "train"), "member", 0)  # the Trainer's first (only) member
    model = _hand_paper_training(data.x_train, lab, data.y_train[lab], cfg, seed)

    class Hand:  # evaluate() reads logits through the TrainedModel interface
        snapshots, swa_model, members, eval_batch_size = [], None, [model], 1024

        @staticmethod
        def logits(x):
            with torch.no_grad():
                return model(x)

    assert {k: rd[k] for k in evaluate(Hand, data)} == evaluate(Hand, data)
    assert rd["train_steps"] == 4 and rd["train_stop"] == "epochs"


def _records(res):
    drop = ("seconds",)
    return [[{k: v for k, v in rd.items() if not any(d in k for d in drop)} for rd in run["rounds"]]
            for run in res["runs"]]


def test_fit_recipe_records_steps_and_stop_and_is_deterministic(tmp_path):
    cfg = RunConfig(strategy="mpts", rounds=2, steps=40, snapshots=3, cycle_steps=2)
    a = ActiveLearningRun(cfg, tmp_path / "a", data=tiny_digits(), device="cpu", progress=False).run()
    b = ActiveLearningRun(cfg, tmp_path / "b", data=tiny_digits(), device="cpu", progress=False).run()
    assert _records(a) == _records(b)
    assert a["config"]["recipe"] == "fit" and a["config"]["steps"] == 40 and a["config"]["epochs"] is None
    for rd in a["runs"][0]["rounds"]:
        assert rd["train_stop"] in ("target", "budget") and 1 <= rd["train_steps"] <= 40
        assert rd["train_stop"] == "budget" or rd["train_accuracy"] >= 0.9
        # MPTS's selection model: the fitting phase, then 3 cycles of 2 steps, one snapshot each
        traj = rd["trajectory"]
        assert traj["cycles"] == traj["snapshots"] == 3 and traj["cyclic_steps"] == 6
        assert rd["selection_train_steps"] == traj["total_steps"] and rd["selection_train_steps"] - 6 <= 40


def test_fit_recipe_resume_after_an_interruption_gives_the_same_rounds(tmp_path):
    cfg = RunConfig(strategy="entropy", rounds=3, steps=30)
    whole = ActiveLearningRun(cfg, tmp_path / "whole", data=tiny_digits(), device="cpu", progress=False).run()

    def stop(seed, record):
        if record["round"] == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ActiveLearningRun(cfg, tmp_path / "cut", data=tiny_digits(), device="cpu", progress=False, on_round=stop).run()
    resumed = ActiveLearningRun(cfg, tmp_path / "cut", data=tiny_digits(), device="cpu", progress=False).run(resume=True)
    assert _records(resumed) == _records(whole)


def test_recipe_settings_are_checked():
    data = tiny_digits()
    with pytest.raises(ConfigError) as e:
        ActiveLearningRun(RunConfig(strategy="random", recipe="paper", steps=10), "unused", data=data, device="cpu")
    assert e.value.field == "steps"
    with pytest.raises(ConfigError) as e:
        ActiveLearningRun(RunConfig(strategy="random", recipe="sgd"), "unused", data=data, device="cpu")
    assert e.value.field == "recipe"
    with pytest.raises(ConfigError) as e:
        ActiveLearningRun(RunConfig(strategy="random", steps=0), "unused", data=data, device="cpu")
    assert e.value.field == "steps"


def _old_results(tmp_path):
    """A results.json as written before recipes existed: one finished round of two, no recipe or steps."""
    out = tmp_path / "old"
    cfg = RunConfig(dataset="digits", strategy="entropy", rounds=2, initial=20, budget=10, epochs=1, recipe="paper")

    def stop(seed, record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ActiveLearningRun(cfg, out, device="cpu", progress=False, on_round=stop).run()
    path = out / "results.json"
    saved = json.loads(path.read_text())
    for key in ("recipe", "steps"):
        del saved["config"][key]
    for rd in saved["runs"][0]["rounds"]:
        del rd["train_steps"], rd["train_stop"]
    path.write_text(json.dumps(saved))
    return cfg, out


def test_old_results_resume_as_the_paper_recipe(tmp_path):
    cfg, out = _old_results(tmp_path)
    with pytest.raises(ResumeMismatchError) as e:  # the library, as for `evaluate`: the saved settings must be given
        ActiveLearningRun(RunConfig(**{**cfg.to_json(), "recipe": "fit"}), out, device="cpu", progress=False) \
            .run(resume=True)
    assert "recipe" in e.value.differences and e.value.differences["recipe"] == ("paper", "fit")
    from mpts_fast.cli.main import main

    res = CliRunner().invoke(main, ["run", "--out", str(out), "--resume", "--device", "cpu", "--quiet"])
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["recipe"] == "paper" and saved["config"]["epochs"] == 1
    assert saved["runs"][0]["complete"] and saved["runs"][0]["rounds"][1]["train_steps"] == 1
    res = CliRunner().invoke(main, ["run", "--out", str(out), "--resume", "--recipe", "fit", "--device", "cpu"])
    assert res.exit_code == 2 and "--recipe" in res.output


def test_cli_recipe_and_steps(tmp_path):
    from mpts_fast.cli.main import main

    out = tmp_path / "fit"
    res = CliRunner().invoke(main, ["run", "-s", "random", "--rounds", "2", "--initial", "20", "--budget", "10",
                                    "--steps", "12", "--device", "cpu", "--quiet", "--out", str(out)])
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["recipe"] == "fit" and saved["config"]["steps"] == 12
    assert all(rd["train_steps"] <= 12 for rd in saved["runs"][0]["rounds"])
    res = CliRunner().invoke(main, ["run", "-s", "random", "--recipe", "paper", "--steps", "12", "--device", "cpu",
                                    "--quiet", "--out", str(tmp_path / "p")])
    assert res.exit_code == 2 and "--steps" in res.output and "fit" in res.output

