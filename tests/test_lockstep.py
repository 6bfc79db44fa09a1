"""Lockstep training (training/lockstep.py, training/stacked.py): several independent trainings as one stacked model.

What it promises: each model is exactly what it would be trained alone through the stack (its floats do not depend
on what else is stacked), its own seed, data order, learning rate schedule and stopping point are kept, and it agrees
with the sequential trainer (torch's unbatched ops) to float rounding, with the same stopping decisions; the AL
loop's picks equal the sequential trainer's on fixed seeds; what cannot be stacked trains one by one and says why.
"""
import pytest
import torch

from mpts_fast.models import build_model
from mpts_fast.training import TrainConfig, Trainer
from mpts_fast.training.stacked import StackedAdam, StackedModels, stacking_obstacle

from al_fixtures import tiny_digits

N, D, C = 600, 12, 5


def _pool(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=g)
    y = (x[:, :C].argmax(1) + (torch.rand(N, generator=g) < 0.1).long()) % C  # learnable, a little noise
    return x, y


def _labeled(sizes, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randperm(N, generator=g)[:n] for n in sizes]


def _factory(dropout=0.0, model="mlp", shape=(D,)):
    return lambda: build_model(model, shape, C, dropout=dropout)


def _params(trained):
    return [torch.cat([p.detach().reshape(-1) for p in m.parameters()]) for m in trained.members]


PAPER = TrainConfig(epochs=6, lr=1e-2, batch_size=32, recipe="paper")
FIT = TrainConfig(epochs=None, lr=1e-2, batch_size=32, recipe="fit", steps=240)
ENSEMBLE = TrainConfig(epochs=4, lr=1e-2, batch_size=32, recipe="paper", ensemble_size=3)
# MPTS's selection model: the MMD term, the cyclic phase's snapshots, their SWA average, the λ probe
MPTS_PAPER = TrainConfig(epochs=8, lr=1e-2, batch_size=32, recipe="paper", mmd_weight=0.01, snapshots=None)
MPTS_FIT = TrainConfig(epochs=None, lr=1e-2, batch_size=32, recipe="fit", steps=240, mmd_weight=0.01, snapshots=5)
MMD_ONLY = TrainConfig(epochs=None, lr=1e-2, batch_size=32, recipe="fit", steps=240, mmd_weight=0.5, snapshots=0)
CONFIGS = [PAPER, FIT, ENSEMBLE, MPTS_PAPER, MPTS_FIT, MMD_ONLY]
IDS = ["paper", "fit", "ensemble", "mpts-paper", "mpts-fit", "mmd-only"]


def _snapshots_equal(a, b):
    return len(a.snapshots) == len(b.snapshots) and all(
        torch.equal(x[k], y[k]) for x, y in zip(a.snapshots, b.snapshots) for k in x)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_a_stacked_model_is_the_same_whatever_is_stacked_with_it(cfg):
    x, y = _pool()
    labs = _labeled([97] * 4)  # 97 labels in batches of 32: tensor_split's unequal batches (25, 24, 24, 24)
    seeds = [11, 12, 13, 14]
    together = Trainer(_factory(), cfg).fit_many(x, labs, [y[lab] for lab in labs], seeds)
    for lab, seed, t in zip(labs, seeds, together):
        alone = Trainer(_factory(), cfg).fit(x, lab, y[lab], seed)
        assert t.lockstep == 4 * cfg.ensemble_size and alone.lockstep == cfg.ensemble_size
        for a, b in zip(_params(t), _params(alone)):
            assert torch.equal(a, b)  # bit for bit
        assert (t.fit_steps, t.fit_stop, t.fit_running_accuracy, t.lr_trace, t.gradient_probe, t.trajectory) == \
               (alone.fit_steps, alone.fit_stop, alone.fit_running_accuracy, alone.lr_trace, alone.gradient_probe,
                alone.trajectory)
        assert _snapshots_equal(t, alone)
        if t.swa_model is not None:
            assert all(torch.equal(p, q) for p, q in zip(t.swa_model.parameters(), alone.swa_model.parameters()))


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_stacked_training_agrees_with_the_sequential_trainer(cfg):
    x, y = _pool()
    labs = _labeled([97] * 4)
    seeds = [11, 12, 13, 14]
    stacked = Trainer(_factory(), cfg).fit_many(x, labs, [y[lab] for lab in labs], seeds)
    one_by_one = Trainer(_factory(), cfg, lockstep=False).fit_many(x, labs, [y[lab] for lab in labs], seeds)
    stops = set()
    for s, q in zip(stacked, one_by_one):
        assert q.lockstep is None
        # the same decisions: steps, why training stopped, the running accuracy it stopped at, every step's LR
        assert (s.fit_steps, s.fit_stop, s.fit_running_accuracy, s.lr_trace, s.total_steps, s.trajectory) == \
               (q.fit_steps, q.fit_stop, q.fit_running_accuracy, q.lr_trace, q.total_steps, q.trajectory)
        assert len(s.snapshots) == len(q.snapshots) and (s.swa_model is None) == (q.swa_model is None)
        if cfg.mmd_weight > 0:  # the λ probe sampled the same steps and measured the same to rounding
            assert s.gradient_probe["grad_samples"] == q.gradient_probe["grad_samples"] > 0
            assert s.gradient_probe["grad_ratio"] == pytest.approx(q.gradient_probe["grad_ratio"],
                                                                   rel=1e-3 if cfg.recipe == "paper" else 2e-2)
        stops.add(s.fit_steps)
        for a, b in zip(_params(s), _params(q)):
            # float rounding of a batched GEMM against torch.mm, grown over the training's steps: the paper runs
            # (24 and 16 steps) stay within 1e-6; the fit run's 160-240 steps at lr 1e-2 let Adam turn rounding in
            # near-zero gradients into whole steps (measured up to 3e-3, docs/benchmarks.md)
            assert torch.allclose(a, b, rtol=0, atol=1e-5 if cfg.recipe == "paper" else 1e-2)
            assert torch.allclose(s.logits(x), q.logits(x), rtol=0, atol=1e-4 if cfg.recipe == "paper" else 5e-2)
    if cfg.recipe == "fit" and cfg.snapshots == 0:
        assert len(stops) > 1  # models that stop at different steps: the stack goes on without the stopped ones


def test_labeled_sets_of_different_sizes_stack_by_size():
    x, y = _pool()
    labs = _labeled([40, 64, 40])
    out = Trainer(_factory(), PAPER).fit_many(x, labs, [y[lab] for lab in labs], [1, 2, 3])
    assert [t.lockstep for t in out] == [2, 1, 2]
    alone = Trainer(_factory(), PAPER).fit(x, labs[2], y[labs[2]], 3)
    assert all(torch.equal(a, b) for a, b in zip(_params(out[2]), _params(alone)))


@pytest.mark.parametrize("cfg, dropout, model, shape, why", [
    (PAPER, 0.3, "mlp", (D,), "dropout"),
    (PAPER, 0.0, "cnn1d", (40,), "no stacked forward"),
    (PAPER, 0.0, "resnet18", (3, 8, 8), "BatchNorm"),
])
def test_what_cannot_stack_trains_one_by_one_and_says_why(cfg, dropout, model, shape, why):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, *shape, generator=g), torch.randint(C, (64,), generator=g)
    trainer = Trainer(_factory(dropout, model, shape), cfg)
    if model == "resnet18":  # building one is enough to see the obstacle; training it here would be slow
        assert why in stacking_obstacle(_factory(dropout, model, shape)())
        return
    labs = [torch.arange(0, 32), torch.arange(32, 64)]
    out = trainer.fit_many(x, labs, [y[lab] for lab in labs], [1, 2])
    assert why in trainer.lockstep_obstacle and all(t.lockstep is None for t in out)
    assert Trainer(_factory(dropout, model, shape), cfg, lockstep=False).fit_many(
        x, labs, [y[lab] for lab in labs], [1, 2]) and True


def test_stacked_adam_is_torch_adam_per_model_with_its_own_lr_and_stop():
    torch.manual_seed(0)
    S, shape = 3, (4, 7)
    for weight_decay in (0.0, 0.05):
        start = torch.randn(S, *shape)
        stacked = start.clone().requires_grad_()
        opt = StackedAdam([stacked], weight_decay=weight_decay)
        singles = [start[s].clone().requires_grad_() for s in range(S)]
        opts = [torch.optim.Adam([p], lr=1e-3, weight_decay=weight_decay) for p in singles]
        lrs = [[1e-3, 1e-3, 1e-3], [1e-3, 3e-3, 1e-3], [2e-2, 1e-3, 5e-4], [1e-3, 1e-3, 1e-3]]
        active = [[True] * 3, [True] * 3, [True, False, True], [True, False, True]]  # model 1 stops after step 2
        for step in range(4):
            grads = torch.randn(S, *shape)
            stacked.grad = grads.clone()
            opt.step(lrs[step], active[step])
            for s in range(S):
                if active[step][s]:
                    opts[s].param_groups[0]["lr"] = lrs[step][s]
                    singles[s].grad = grads[s].clone()
                    opts[s].step()
        for s in range(S):
            assert torch.equal(stacked.detach()[s], singles[s].detach())


def test_stacked_models_refuse_a_backbone_without_a_stacked_forward():
    with pytest.raises(ValueError, match="no stacked forward for CNN1D"):
        StackedModels([build_model("cnn1d", (40,), C, dropout=0.0)])
    with pytest.raises(ValueError, match="at least one model"):
        StackedModels([])


def test_a_diverging_stacked_training_is_named():
    x, y = _pool()
    x = x.clone()
    x[0] = float("inf")  # the first labeled row poisons the model that trains on it
    labs = [torch.arange(0, 64), torch.arange(64, 128)]
    with pytest.raises(FloatingPointError, match="training diverged"):
        Trainer(_factory(), PAPER).fit_many(x, labs, [y[lab] for lab in labs], [1, 2])


# --- the loop ------------------------------------------------------------------------------------------------------

from mpts_fast.loop import ActiveLearningRun, RunConfig  # noqa: E402


def _run(tmp_path, name, lockstep=True, **kw):
    cfg = RunConfig(dataset="digits", **kw)
    return ActiveLearningRun(cfg, tmp_path / name, data=tiny_digits(), progress=False, device="cpu",
                             lockstep=lockstep).run()


def _rounds(res):
    return [[{k: v for k, v in rd.items() if "seconds" not in k} for rd in run["rounds"]] for run in res["runs"]]


@pytest.mark.parametrize("strategy, recipe", [("entropy", "paper"), ("margin", "fit"), ("ensemble_variance", "paper"),
                                              ("mpts", "paper"), ("mpts", "fit")])
def test_the_loop_picks_as_the_sequential_trainer_does(tmp_path, strategy, recipe):
    kw = dict(strategy=strategy, repeats=3, recipe=recipe, **({"steps": 120} if recipe == "fit" else {}))
    stacked = _run(tmp_path, "stacked", **kw)
    one_by_one = _run(tmp_path, "seq", lockstep=False, **kw)
    for a, b in zip(stacked["runs"], one_by_one["runs"]):
        assert [rd["selected"] for rd in a["rounds"]] == [rd["selected"] for rd in b["rounds"]]
        assert all(rd["train_stacked"] for rd in a["rounds"]) and not any(rd["train_stacked"] for rd in b["rounds"])
        assert all(rd.get("selection_train_stacked", True) for rd in a["rounds"])
        for x, y in zip(a["rounds"], b["rounds"]):
            assert abs(x["test_accuracy"] - y["test_accuracy"]) <= 1 / 90 + 1e-12  # one test item of 90, at most


@pytest.mark.parametrize("lockstep, order", [(True, [(0, 0), (1, 0), (0, 1), (1, 1)]),
                                             (False, [(0, 0), (0, 1), (1, 0), (1, 1)])])
def test_stacked_runs_go_round_by_round_and_the_others_seed_by_seed(tmp_path, lockstep, order):
    # round-major only where models stack: otherwise one seed's models (and snapshots) at a time are held in memory
    seen = []
    cfg = RunConfig(dataset="digits", strategy="entropy", repeats=2, rounds=2)
    ActiveLearningRun(cfg, tmp_path / "o", data=tiny_digits(), progress=False, device="cpu", lockstep=lockstep,
                      on_round=lambda seed, rd: seen.append((seed, rd["round"]))).run()
    assert seen == order


def test_the_same_stacked_run_twice_gives_the_same_rounds(tmp_path):
    kw = dict(strategy="mpts", repeats=2, recipe="fit", steps=120)
    assert _rounds(_run(tmp_path, "one", **kw)) == _rounds(_run(tmp_path, "two", **kw))


def test_a_seed_in_a_stack_runs_as_that_seed_alone(tmp_path):
    together = _run(tmp_path, "together", strategy="margin", repeats=3)
    alone = _run(tmp_path, "alone", strategy="margin", repeats=1, seed=2)
    assert _rounds(together)[2] == _rounds(alone)[0]


# --- the command line ----------------------------------------------------------------------------------------------

def test_no_lockstep_is_kept_by_the_printed_resume_command(tmp_path, monkeypatch):
    import json
    import shlex

    from click.testing import CliRunner

    from al_fixtures import interrupt_after_rounds
    from mpts_fast.cli.main import main

    out = tmp_path / "r"
    fast = ["--rounds", "2", "--initial", "20", "--budget", "10", "--epochs", "1", "--device", "cpu", "--quiet",
            "--repeats", "2"]
    with monkeypatch.context() as m:
        interrupt_after_rounds(m, 2)  # both seeds' first round, then Ctrl-C
        res = CliRunner().invoke(main, ["run", *fast, "-s", "entropy", "--no-lockstep", "--out", str(out)])
    assert res.exit_code == 130, res.output
    line = next(line for line in res.output.splitlines() if line.strip().startswith("mpts-fast "))
    command = shlex.split(line)[1:]
    assert "--no-lockstep" in command  # the rounds left train with the arithmetic of the rounds already run
    assert CliRunner().invoke(main, command).exit_code == 0
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [len(r["rounds"]) for r in runs] == [2, 2]
    assert not any(rd["train_stacked"] for r in runs for rd in r["rounds"])


def test_fit_many_of_nothing_trains_nothing_and_refuses_mismatched_lists():
    x, y = _pool()
    assert Trainer(_factory(), PAPER).fit_many(x, [], [], []) == []
    with pytest.raises(ValueError, match="one per training"):
        Trainer(_factory(), PAPER).fit_many(x, [torch.arange(4)], [], [1])
    with pytest.raises(ValueError, match="y_labeled: expected shape"):
        Trainer(_factory(), PAPER).fit_many(x, [torch.arange(4)], [y[:3]], [1])
