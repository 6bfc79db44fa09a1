"""The AL loop on 2 gloo processes (CPU, one thread each): the same picks as one process with one thread, rank 0 alone
writes results.json, and every strategy with a sharding hook (every score strategy through ScoreStrategy, coreset and
badge through their own select_sharded) takes its sharded path.

The full `torchrun -m mpts_fast run` check (4 strategies, a killed rank, --resume) is tests/test_distributed_cli.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mpts_fast.distributed.spawn import run_local


def _sharding() -> tuple[str, ...]:
    """Every registered strategy that overrides the replicated default of Strategy.select_sharded."""
    from mpts_fast.strategies import STRATEGIES, Strategy

    return tuple(sorted(n for n, cls in STRATEGIES.items() if cls.select_sharded is not Strategy.select_sharded))


STRATEGIES = _sharding()


def _run_all(out_root: str) -> dict:
    from mpts_fast import distributed
    from mpts_fast.loop import ActiveLearningRun, RunConfig
    from mpts_fast.strategies import ScoreStrategy

    scored: dict[str, list[int]] = {}  # how many items each item_scores call saw: a shard's under torchrun
    item_scores = ScoreStrategy.item_scores

    def counting(self, ctx):
        scored.setdefault(self.name, []).append(ctx.unlabeled.numel())
        return item_scores(self, ctx)

    ScoreStrategy.item_scores = counting
    picks = {}
    try:
        for name in STRATEGIES:
            cfg = RunConfig(dataset="digits", strategy=name, rounds=2, epochs=1, initial=20, budget=30)
            results = ActiveLearningRun(cfg, Path(out_root) / name, device="cpu", progress=False).run()
            picks[name] = [rd["selected"] for rd in results["runs"][0]["rounds"]]
    finally:
        ScoreStrategy.item_scores = item_scores
    return {"picks": picks, "world": distributed.world_size(), "scored": scored}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    import torch

    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same threads per process as the ranks: training is then bit-identical
    try:
        single = _run_all(str(one))
    finally:
        torch.set_num_threads(threads)
    sharded = run_local(_run_all, 2, str(two))
    return single, sharded, one, two


@pytest.mark.parametrize("name", STRATEGIES)
def test_two_ranks_select_what_one_process_selects(runs, name):
    single, sharded, one, two = runs
    assert single["world"] == 1 and sharded[0]["world"] == 2
    assert len(single["picks"][name][0]) == 30
    assert sharded[0]["picks"][name] == single["picks"][name]
    assert sharded[1]["picks"][name] == single["picks"][name]
    written = json.loads((two / name / "results.json").read_text())
    assert [rd["selected"] for rd in written["runs"][0]["rounds"]] == single["picks"][name]
    assert written["provenance"][-1]["world_size"] == 2
    if name in single["scored"]:  # a score strategy: each rank scored its block only, the two blocks the whole pool
        assert sharded[0]["scored"][name][0] + sharded[1]["scored"][name][0] == single["scored"][name][0]
        assert 0 < sharded[0]["scored"][name][0] < single["scored"][name][0]


def test_every_score_strategy_shards():
    from mpts_fast.strategies import STRATEGIES as REGISTERED, ScoreStrategy

    score = {n for n, cls in REGISTERED.items() if issubclass(cls, ScoreStrategy)}
    assert {"entropy", "margin", "least_confidence", "bald", "ensemble_variance", "mpts"} <= score
    assert score | {"coreset", "badge"} <= set(STRATEGIES)


def test_only_rank_0_writes(runs):
    _, _, _, two = runs
    leftovers = sorted(p.name for p in (two / "coreset").iterdir())
    assert leftovers == [".lock", "results.json"]  # one writer: no second lock holder, no stray temporary files


def test_mpts_diversity_record_merges_the_shards(runs):
    _, _, one, two = runs
    single = json.loads((one / "mpts" / "results.json").read_text())["runs"][0]["rounds"][0]["diversity"]
    sharded = json.loads((two / "mpts" / "results.json").read_text())["runs"][0]["rounds"][0]["diversity"]
    assert sharded["items"] == single["items"] and sharded["sharded"] == 2
    assert sharded["mutual_information"] == pytest.approx(single["mutual_information"], rel=1e-6, abs=1e-12)
    assert sharded["disagreement"] == pytest.approx(single["disagreement"], abs=1e-12)
    assert sharded["entropy_spearman"] is None  # needs every item's ranks together: not computed under sharding
    last = json.loads((two / "mpts" / "results.json").read_text())["runs"][0]["rounds"][-1]["diversity"]
    assert last["sharded"] == 2 and last["items"] == single["items"] - 30  # the last round's passes sharded too


def test_rank_is_known_from_torchrun_env_before_the_group_is_joined(monkeypatch):
    """compare takes its output lock before the first run joins the group: rank 1 must already know it is not rank 0."""
    from mpts_fast import distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert distributed.launched() and distributed.rank() == 1 and not distributed.is_primary()
    monkeypatch.setenv("RANK", "0")
    assert distributed.is_primary()


@pytest.mark.parametrize("cuts", [(0, 16, 40, 53), (0, 8, 53), (0, 53, 53)])
def test_mc_dropout_blocks_draw_the_masks_of_one_pass_over_all_rows(cuts):
    """A rank's block (offset a multiple of the scoring batch) gets the MC-dropout logits the passes over every row
    give it: the other rows' masks are drawn (replayed) without running the model on them."""
    import torch

    from mpts_fast.models import build_model
    from mpts_fast.training.posterior import TrainedModel

    torch.manual_seed(0)
    trained = TrainedModel(model=build_model("mlp", (6,), 4, dropout=0.3).eval(), snapshots=[], members=[],
                           eval_batch_size=8)
    x = torch.randn(53, 6)  # 6 full batches of 8 and one of 5
    whole = torch.stack(list(trained.posterior_logits(x, "mc_dropout", passes=3, seed=5)))
    blocks = [torch.stack(list(trained.posterior_logits(x[lo:hi], "mc_dropout", passes=3, seed=5, block_of=(lo, 53))))
              for lo, hi in zip(cuts, cuts[1:]) if hi > lo]
    assert torch.equal(torch.cat(blocks, dim=1), whole)
    plain = torch.stack(list(trained.posterior_logits(x[8:16], "mc_dropout", passes=3, seed=5)))
    assert not torch.equal(plain, whole[:, 8:16])  # without block_of a block draws other masks
    with pytest.raises(ValueError, match="block_of"):
        next(trained.posterior_logits(x[3:16], "mc_dropout", seed=5, block_of=(3, 53)))
