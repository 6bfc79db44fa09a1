"""`--ddp` (DistributedDataParallel training) on 2 gloo processes, one thread each: the ranks end with identical weights
and snapshots, the loss falls, the DDP run equals one process trained on the same global batches (float64, within
float summation order), and the AL loop's picks agree across ranks and are written once by rank 0. Plus the
single-process rules: --ddp refused without torchrun, world size 1 = the plain path, resume must agree on --ddp."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from mpts_fast.distributed.spawn import run_local

N_POOL, N_LABELED, DIM, CLASSES, SEED = 96, 40, 6, 3, 11


class TinyNet(nn.Module):
    """No BatchNorm, no dropout: DDP over a split global batch is then the single-process step by construction."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(DIM, 16), nn.Tanh())
        self.out = nn.Linear(16, CLASSES)

    def embed(self, x):
        return self.body(x)

    def head(self, z):
        return self.out(z)

    def forward(self, x):
        return self.head(self.embed(x))


class TinyBNNet(TinyNet):
    """With BatchNorm: per-rank statistics, so only rank agreement is claimed, not single-process equality."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(DIM, 16), nn.BatchNorm1d(16), nn.Tanh())


def _data(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N_POOL, DIM, generator=g, dtype=dtype)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    labeled = torch.randperm(N_POOL, generator=g)[:N_LABELED]
    return x, labeled, y[labeled]


def _mean_loss(model, x, labeled, y) -> float:
    with torch.no_grad():
        return float(nn.functional.cross_entropy(model(x[labeled]), y))


def _factory(bn: bool):
    return lambda: (TinyBNNet() if bn else TinyNet()).double()


def _train(bn: bool, mmd_weight: float, snapshots: int | None, epochs: int, batch_size: int) -> dict:
    from mpts_fast import distributed
    from mpts_fast.training import TrainConfig, Trainer

    x, labeled, y = _data()
    cfg = TrainConfig(epochs=epochs, lr=0.01, batch_size=batch_size, mmd_weight=mmd_weight, snapshots=snapshots)
    torch.manual_seed(SEED)
    before = _mean_loss(_factory(bn)(), x, labeled, y)
    trained = Trainer(_factory(bn), cfg, "cpu", ddp=True).fit(x, labeled, y, seed=SEED)
    return {"world": distributed.world_size(), "state": {k: v.clone() for k, v in trained.model.state_dict().items()},
            "snapshots": trained.snapshots, "before": before, "after": _mean_loss(trained.model, x, labeled, y),
            "swa": {k: v.clone() for k, v in trained.swa_model.state_dict().items()} if trained.swa_model else None}


def _train_all() -> dict:
    # cross-entropy only, no snapshots: the equality case; MPTS-like (BatchNorm, MMD, snapshots): rank agreement
    return {"plain": _train(False, 0.0, 0, epochs=6, batch_size=8),
            "mpts": _train(True, 1.0, None, epochs=4, batch_size=10)}


@pytest.fixture(scope="module")
def ranks():
    return run_local(_train_all, 2)


def _single_process_reference(epochs: int, batch_size: int) -> dict[str, torch.Tensor]:
    """One process, no DDP: Adam on the global batches DDP used (rank 0's k-th part, then rank 1's)."""
    from mpts_fast.distributed.ddp import epoch_parts
    from mpts_fast.training.trainer import derive_seed

    x, labeled, y = _data()
    seed = derive_seed(SEED, "member", 0)  # Trainer.fit's seed of its first member
    torch.manual_seed(seed)
    model = _factory(False)()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    steps = -(-N_LABELED // batch_size)
    for epoch in range(epochs):
        shares = [epoch_parts(N_LABELED, steps, epoch, seed, r, 2) for r in range(2)]
        for k in range(steps):
            part = torch.cat([shares[0][k], shares[1][k]])
            loss = nn.functional.cross_entropy(model(x[labeled[part]]), y[part])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.state_dict()


def test_ranks_end_with_identical_weights_and_snapshots(ranks):
    for case in ("plain", "mpts"):
        assert [r[case]["world"] for r in ranks] == [2, 2]
        a, b = ranks[0][case], ranks[1][case]
        for k in a["state"]:
            assert torch.equal(a["state"][k], b["state"][k]), (case, k)
    a, b = ranks[0]["mpts"], ranks[1]["mpts"]
    assert len(a["snapshots"]) == len(b["snapshots"]) >= 2  # trajectory snapshots taken at the same steps
    for sa, sb in zip(a["snapshots"], b["snapshots"]):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)  # BatchNorm running statistics included
    assert all(torch.equal(a["swa"][k], b["swa"][k]) for k in a["swa"])


def test_loss_decreases(ranks):
    for case in ("plain", "mpts"):
        r = ranks[0][case]
        assert r["after"] < 0.8 * r["before"], (case, r["before"], r["after"])


def test_ddp_equals_one_process_on_the_same_global_batches(ranks):
    """No BatchNorm, no dropout, no MMD, batch 8 = 2 x 4: DDP's averaged gradient of two 4-item mean losses is the
    gradient of the 8-item mean loss; float64 leaves only summation-order differences."""
    reference = _single_process_reference(epochs=6, batch_size=8)
    for k, v in ranks[0]["plain"]["state"].items():
        torch.testing.assert_close(v, reference[k], rtol=1e-9, atol=1e-10)
    moved = max(float((v - reference[k]).abs().max()) for k, v in ranks[0]["plain"]["state"].items())
    assert moved < 1e-9


def test_world_size_one_is_the_single_process_path():
    from mpts_fast.training import TrainConfig, Trainer

    x, labeled, y = _data()
    cfg = TrainConfig(epochs=2, lr=0.01, batch_size=8, mmd_weight=1.0, snapshots=1)
    runs = [Trainer(_factory(True), cfg, "cpu", ddp=flag).fit(x, labeled, y, seed=SEED) for flag in (False, True)]
    for k, v in runs[0].model.state_dict().items():
        assert torch.equal(v, runs[1].model.state_dict()[k])


def test_batch_smaller_than_world_is_refused():
    from mpts_fast.distributed.ddp import check_ddp_sizes

    with pytest.raises(ValueError, match="batch_size: --ddp on 4 ranks"):
        check_ddp_sizes(100, 3, 4)
    with pytest.raises(ValueError, match="labeled"):
        check_ddp_sizes(3, 64, 4)
    check_ddp_sizes(3, 2, 1)  # one process: anything goes


def test_epoch_parts_cover_the_epoch_once_with_equal_part_sizes():
    from mpts_fast.distributed.ddp import epoch_parts

    shares = [epoch_parts(40, 5, 3, 7, r, 2) for r in range(2)]
    assert [p.numel() for p in shares[0]] == [p.numel() for p in shares[1]] == [4] * 5
    assert sorted(torch.cat([torch.cat(s) for s in shares]).tolist()) == list(range(40))
    padded = [epoch_parts(41, 5, 0, 7, r, 2) for r in range(2)]  # 2 x 21 = 42: one item repeated (the sampler's pad)
    assert set(torch.cat([torch.cat(s) for s in padded]).tolist()) == set(range(41))


# --- the AL loop ---------------------------------------------------------------------------------------------------


def _loop(out_root: str) -> dict:
    from mpts_fast import distributed
    from mpts_fast.loop import ActiveLearningRun, RunConfig

    cfg = RunConfig(dataset="digits", strategy="mpts", rounds=2, epochs=2, initial=40, budget=20, batch_size=16,
                    ddp=True)
    results = ActiveLearningRun(cfg, Path(out_root), device="cpu", progress=False).run()
    return {"picks": [rd["selected"] for rd in results["runs"][0]["rounds"]], "world": distributed.world_size()}


def test_loop_picks_agree_across_ranks_and_rank_0_writes_once(tmp_path):
    ranks = run_local(_loop, 2, str(tmp_path))
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["picks"] == ranks[1]["picks"] and len(ranks[0]["picks"][0]) == 20
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["config"]["ddp"] is True
    assert [rd["selected"] for rd in written["runs"][0]["rounds"]] == ranks[0]["picks"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "results.json"]


def test_ddp_refused_without_torchrun(monkeypatch, tmp_path):
    from mpts_fast.loop import ActiveLearningRun, ConfigError, RunConfig

    for name in ("WORLD_SIZE", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="ddp: .*torchrun") as err:
        ActiveLearningRun(RunConfig(strategy="random", rounds=2, epochs=1, ddp=True), tmp_path, device="cpu",
                          progress=False)
    assert err.value.field == "ddp"


def test_cli_refuses_ddp_without_torchrun(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from mpts_fast.cli.main import main as cli

    for name in ("WORLD_SIZE", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(cli, ["run", "-s", "random", "--ddp", "--rounds", "2", "--epochs", "1", "-q",
                                      "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "'--ddp'" in result.output and "torchrun" in result.output


def test_resume_must_agree_on_ddp(monkeypatch, tmp_path):
    """torchrun with one rank (WORLD_SIZE=1): --ddp is accepted and trains as one process; resuming it without
    --ddp (or a replicated run with it) is refused."""
    from mpts_fast.loop import ResumeMismatchError, RunConfig, run_experiment

    monkeypatch.setenv("WORLD_SIZE", "1")
    cfg = RunConfig(strategy="random", rounds=2, epochs=1, initial=20, budget=10, ddp=True)
    first = run_experiment(cfg, tmp_path, device="cpu", progress=False)
    assert first["config"]["ddp"] is True
    with pytest.raises(ResumeMismatchError, match="ddp") as err:
        run_experiment(RunConfig(strategy="random", rounds=2, epochs=1, initial=20, budget=10), tmp_path,
                       device="cpu", progress=False, resume=True)
    assert err.value.differences == {"ddp": (True, False)}
