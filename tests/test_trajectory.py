"""MPTS trajectory sampling (MPTS §3.3): cycles counted in optimiser steps, snapshots at cycle ends, their SWA average,
and the posterior-diversity figures recorded every round."""
import itertools
import math

import pytest
import torch
from torch import nn

from mpts_fast import ops
from mpts_fast.models import build_model
from mpts_fast.training import TrainConfig, Trainer
from mpts_fast.training.diversity import DiversityAccumulator, entropy_spearman
from mpts_fast.training.schedule import plan_trajectory

from al_fixtures import blobs


def _fit(cfg, n_labeled, seed=0, factory=None, lockstep=True):
    data = blobs(n=90)
    factory = factory or (lambda: build_model("mlp", data.input_shape, data.num_classes, hidden=16))
    lab = torch.arange(n_labeled)
    return Trainer(factory, cfg, lockstep=lockstep).fit(data.x_train, lab, data.y_train[lab], seed=seed)


def _expected_lrs(epochs, steps_per_epoch, lr, c, hi, lo, shape="linear"):
    """Written independently of the schedule module: ⌈E/2⌉ epochs (plus any remainder) at lr, then whole c-step cycles
    annealing hi·lr → lo·lr with both ends included."""
    total, half = epochs * steps_per_epoch, (epochs // 2) * steps_per_epoch
    c = min(c, half)
    cycles = half // c
    out = [lr] * (total - cycles * c)
    for _ in range(cycles):
        for k in range(c):
            t = 1.0 if c == 1 else k / (c - 1)
            a = t if shape == "linear" else (1 - math.cos(math.pi * t)) / 2
            out.append(lr * (hi * (1 - a) + lo * a))
    return out


@pytest.mark.parametrize("n_labeled,batch_size", [(5, 64), (12, 8), (40, 64), (40, 16), (33, 10)])
@pytest.mark.parametrize("shape", ["linear", "cos"])
def test_lr_at_every_step_is_the_step_counted_cycle(n_labeled, batch_size, shape):
    cfg = TrainConfig(epochs=7, lr=1e-2, batch_size=batch_size, snapshots=None, cycle_steps=3, cycle_max_factor=10.0,
                      cycle_min_factor=0.1, cycle_shape=shape)
    t = _fit(cfg, n_labeled)
    spe = math.ceil(n_labeled / min(batch_size, n_labeled))
    want = _expected_lrs(7, spe, 1e-2, 3, 10.0, 0.1, shape)
    assert len(t.lr_trace) == len(want) == 7 * spe
    torch.testing.assert_close(torch.tensor(t.lr_trace, dtype=torch.float64), torch.tensor(want, dtype=torch.float64),
                               rtol=1e-12, atol=0)
    # the cycle itself does not depend on |L| or the batch size: every cycle is the same 3 LRs
    cyc = t.lr_trace[t.trajectory.cycle_start:]
    assert cyc[:3] == pytest.approx([0.1, 0.0505 if shape == "linear" else 0.0505, 0.001])
    assert t.trajectory.cycles == (3 * spe) // 3


@pytest.mark.parametrize("lockstep", [False, True], ids=["sequential", "stacked"])
def test_snapshots_are_the_weights_at_cycle_ends(monkeypatch, lockstep):
    import mpts_fast.training.course as course_module
    from mpts_fast.training.stacked import StackedAdam

    # the optimiser of the trainer that runs (torch's Adam alone, StackedAdam stacked); both snapshot through course.py
    optimiser = StackedAdam if lockstep else torch.optim.Adam
    steps_done, taken_after = [0], []
    real_step, real_state = optimiser.step, course_module.cpu_state

    def counting_step(self, *a, **k):
        steps_done[0] += 1
        return real_step(self, *a, **k)

    def recording_state(model):
        taken_after.append(steps_done[0] - 1)  # 0-based step the weights come out of
        return real_state(model)

    monkeypatch.setattr(optimiser, "step", counting_step)
    monkeypatch.setattr(course_module, "cpu_state", recording_state)
    cfg = TrainConfig(epochs=10, lr=1e-2, batch_size=8, mmd_weight=1.0, snapshots=4, cycle_steps=3)
    data = blobs(n=90)
    factory = lambda: build_model("mlp", data.input_shape, data.num_classes, hidden=16, dropout=0.0)  # noqa: E731
    t = _fit(cfg, 24, factory=factory, lockstep=lockstep)  # 3 steps per epoch, 15 in the second half: 5 cycles, 4 kept
    assert (t.lockstep is not None) == lockstep
    plan = t.trajectory
    assert plan.cycles == 5 and len(t.snapshots) == 4 and not plan.short
    assert tuple(taken_after) == plan.snapshot_steps
    for s in taken_after:
        assert (s - plan.cycle_start + 1) % 3 == 0  # a cycle's last step ...
        assert t.lr_trace[s] == pytest.approx(1e-3)  # ... at the lowest LR
    assert taken_after[-1] == plan.total_steps - 1  # the final weights are the last snapshot
    for k, v in t.snapshots[-1].items():
        torch.testing.assert_close(v, t.model.state_dict()[k], rtol=0, atol=0)


def test_two_snapshots_of_one_run_differ():
    t = _fit(TrainConfig(epochs=20, lr=1e-2, batch_size=64, mmd_weight=1.0, snapshots=None), 30)
    assert len(t.snapshots) == 2 and t.trajectory.cycles == 2
    a, b = t.snapshots
    gap = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert gap > 1e-3


def test_thinning_spreads_kept_cycles_and_short_second_halves_are_reported():
    # 100 epochs of 2 steps: 100 second-half steps, 25 cycles of 4; 5 kept, spread, the last included
    plan = plan_trajectory(TrainConfig(epochs=100, snapshots=5), 2)
    assert plan.cycles == 25 and len(plan.snapshot_steps) == 5 and not plan.short
    assert plan.snapshot_steps[-1] == 199 and plan.snapshot_steps == (119, 139, 159, 179, 199)
    # default (None): one per cycle, at most ⌊E/2⌋
    assert len(plan_trajectory(TrainConfig(epochs=100, snapshots=None), 2).snapshot_steps) == 25
    assert len(plan_trajectory(TrainConfig(epochs=100, snapshots=None), 8).snapshot_steps) == 50
    # more snapshots asked than cycles fit: fewer kept, and said so
    short = plan_trajectory(TrainConfig(epochs=100, snapshots=50), 1)
    assert len(short.snapshot_steps) == 12 and short.short and short.record()["snapshots_requested"] == 50
    # a second half shorter than one cycle: one shortened cycle, said so
    tiny = plan_trajectory(TrainConfig(epochs=4, snapshots=None, cycle_steps=4), 1)
    assert tiny.cycles == 1 and tiny.cycle_steps == 2 and tiny.short
    # one epoch: no cyclic phase, the final weights are the only snapshot, said so
    one = plan_trajectory(TrainConfig(epochs=1, snapshots=3), 5)
    assert one.cycles == 0 and one.snapshot_steps == (4,) and one.short
    assert plan_trajectory(TrainConfig(epochs=10, snapshots=0), 3).snapshot_steps == ()


@pytest.mark.parametrize("bad,match", [(dict(cycle_steps=0), "cycle_steps"), (dict(cycle_steps=2.5), "cycle_steps"),
                                       (dict(cycle_max_factor=0.0), "cycle_max_factor"),
                                       (dict(cycle_max_factor=float("inf")), "cycle_max_factor"),
                                       (dict(cycle_min_factor=float("nan")), "cycle_min_factor"),
                                       (dict(cycle_max_factor=0.5, cycle_min_factor=1.0), "cycle_min_factor"),
                                       (dict(cycle_shape="triangle"), "cycle_shape")])
def test_bad_cycle_settings_name_the_setting(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)


class _BNNet(nn.Module):
    """A tiny backbone with BatchNorm, so the SWA average needs its statistics recomputed."""

    def __init__(self, d, c):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d, 8), nn.BatchNorm1d(8), nn.ReLU())
        self.classifier = nn.Linear(8, c)
        self.embedding_dim = 8

    def embed(self, x):
        return self.encoder(x)

    def head(self, z):
        return self.classifier(z)

    def forward(self, x):
        return self.head(self.embed(x))


def test_swa_model_averages_the_snapshots_and_recomputes_batchnorm():
    data = blobs(n=90)
    cfg = TrainConfig(epochs=8, lr=1e-2, batch_size=8, snapshots=None, cycle_steps=2)
    t = _fit(cfg, 16, factory=lambda: _BNNet(5, 3))
    assert len(t.snapshots) == 4
    swa = t.swa_model.module
    for name, p in swa.named_parameters():
        torch.testing.assert_close(p, torch.stack([s[name] for s in t.snapshots]).mean(0), rtol=1e-5, atol=1e-6)
    # BatchNorm statistics are those of the averaged weights on the labeled set, not any snapshot's
    x = data.x_train[:16]
    with torch.no_grad():
        h = swa.encoder[0](x)
    torch.testing.assert_close(swa.encoder[1].running_mean, h.mean(0), rtol=1e-4, atol=1e-5)
    assert not t.swa_model.training


def test_diversity_matches_a_direct_computation():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(5, 40, 4, generator=g, dtype=torch.float64) * 2
    final = torch.randn(40, 4, generator=g, dtype=torch.float64)
    acc = DiversityAccumulator(40, 4)
    for one in logits:
        acc.update(one)
    scores, div = acc.result(final)
    votes = logits.argmax(2)  # (S, N)
    pairs = list(itertools.permutations(range(5), 2))
    want_dis = sum(float((votes[a] != votes[b]).double().mean()) for a, b in pairs) / len(pairs)
    assert div.disagreement == pytest.approx(want_dis, abs=1e-9)
    ref = ops.snapshot_uncertainty(logits)
    assert div.mutual_information == pytest.approx(float(ref.bald.mean()), rel=1e-5)
    torch.testing.assert_close(scores.entropy.double(), ref.entropy, rtol=1e-5, atol=1e-6)
    from scipy.stats import spearmanr

    h_final = ops.snapshot_uncertainty(final.unsqueeze(0)).entropy
    assert div.entropy_spearman == pytest.approx(spearmanr(ref.entropy.numpy(), h_final.numpy()).statistic, abs=1e-6)
    assert div.models == 5 and div.items == 40


def test_diversity_edge_cases():
    one = DiversityAccumulator(6, 3)
    one.update(torch.randn(6, 3))
    _, div = one.result(torch.randn(6, 3))
    assert div.models == 1 and div.disagreement == 0.0 and div.mutual_information == pytest.approx(0.0, abs=1e-6)
    assert entropy_spearman(torch.ones(5), torch.arange(5.0)) is None  # constant ranking: undefined
    assert entropy_spearman(torch.ones(1), torch.ones(1)) is None
    same = DiversityAccumulator(4, 3)
    x = torch.randn(4, 3)
    for _ in range(3):
        same.update(x)
    assert same.result(x)[1].disagreement == 0.0


@pytest.mark.parametrize("source", ["snapshots", "ensemble", "mc_dropout"])
def test_posterior_summary_agrees_with_posterior_scores(source):
    data = blobs(n=90)
    cfg = TrainConfig(epochs=6, lr=1e-2, snapshots=None, cycle_steps=1, ensemble_size=3 if source == "ensemble" else 1)
    t = _fit(cfg, 12)
    scores, div = t.posterior_summary(data.x_test, source, passes=4, seed=2)
    want = t.posterior_scores(data.x_test, source, passes=4, seed=2)
    for g, w in zip(scores, want):
        torch.testing.assert_close(g, w)
    assert div.models == {"snapshots": 3, "ensemble": 3, "mc_dropout": 4}[source]
    assert div.items == data.x_test.shape[0] and 0 <= div.disagreement <= 1


@pytest.mark.parametrize("strategy,source", [("mpts", "snapshots"), ("bald", "mc_dropout"),
                                             ("ensemble_variance", "ensemble")])
def test_every_round_records_diversity_and_mpts_its_schedule_and_swa_accuracy(tmp_path, strategy, source):
    from mpts_fast.loop import ActiveLearningRun, RunConfig

    from al_fixtures import tiny_digits

    cfg = RunConfig(strategy=strategy, rounds=2, epochs=4, cycle_steps=1 if strategy == "mpts" else None,
                    recipe="paper")  # the second half's cycles: ⌊4/2⌋ epochs of 1 step
    res = ActiveLearningRun(cfg, tmp_path, data=tiny_digits(), device="cpu", progress=False).run()
    for rd in res["runs"][0]["rounds"]:  # the last round selects nothing but still records its diversity
        d = rd["diversity"]
        assert d["source"] == source and d["items"] == 240 - rd["n_labeled"]
        assert 0 <= d["disagreement"] <= 1 and d["mutual_information"] >= 0 and -1 <= d["entropy_spearman"] <= 1
        # the snapshots are the selection model's (the task model, which scores the curve, has none)
        assert ("trajectory" in rd) == ("selection_swa_accuracy" in rd) == (strategy == "mpts")
    from mpts_fast.results import results_rows

    row = results_rows(res)[0]  # results.csv: nested records become flat columns
    assert row["diversity.source"] == source and "diversity" not in row
    if strategy == "mpts":
        rd = res["runs"][0]["rounds"][0]
        assert rd["trajectory"]["cycles"] == 2 and rd["trajectory"]["snapshots"] == 2 == rd["diversity"]["models"]
        assert res["config"]["cycle_steps"] == 1
    else:
        assert res["config"]["cycle_steps"] is None


def _cli(tmp_path, *args):
    from click.testing import CliRunner

    from mpts_fast.cli.main import main

    fast = ["--rounds", "2", "--initial", "20", "--budget", "10", "--epochs", "2", "--device", "cpu", "--quiet"]
    return CliRunner().invoke(main, ["run", *fast, "--out", str(tmp_path / "o"), *args])


@pytest.mark.parametrize("args,flag", [(["--cycle-steps", "0"], "--cycle-steps"),
                                       (["--cycle-max-factor", "-1"], "--cycle-max-factor"),
                                       (["--cycle-max-factor", "2", "--cycle-min-factor", "3"], "--cycle-min-factor"),
                                       (["-s", "random", "--cycle-steps", "3"], "--cycle-steps")])
def test_cli_refuses_bad_cycle_settings_before_training(tmp_path, monkeypatch, args, flag):
    monkeypatch.setattr("mpts_fast.loop.Trainer.fit_many", lambda *a, **k: pytest.fail("trained"))
    res = _cli(tmp_path, *args)
    assert res.exit_code == 2 and flag in res.output, res.output


def test_cli_cycle_flags_are_recorded(tmp_path):
    import json

    res = _cli(tmp_path, "--cycle-steps", "2", "--cycle-max-factor", "5", "--cycle-min-factor", "0.2")
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "o" / "results.json").read_text())
    assert (saved["config"]["cycle_steps"], saved["config"]["cycle_max_factor"],
            saved["config"]["cycle_min_factor"]) == (2, 5.0, 0.2)
