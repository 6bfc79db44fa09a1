"""The AL loop on 2 gloo processes (CPU, one thread each): the same picks as one process with one thread, rank 0 alone
writes results.json, and every strategy hooked for sharding (coreset, badge, entropy, mpts) takes its sharded path.

The full `torchrun -m mpts_fast run` check (4 strategies, a killed rank, --resume) is tests/test_distributed_cli.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mpts_fast.distributed.spawn import run_local

STRATEGIES = ("coreset", "badge", "entropy", "mpts")


def _run_all(out_root: str) -> dict:
    from mpts_fast import distributed
    from mpts_fast.loop import ActiveLearningRun, RunConfig

    picks = {}
    for name in STRATEGIES:
        cfg = RunConfig(dataset="digits", strategy=name, rounds=2, epochs=1, initial=20, budget=30)
        results = ActiveLearningRun(cfg, Path(out_root) / name, device="cpu", progress=False).run()
        picks[name] = [rd["selected"] for rd in results["runs"][0]["rounds"]]
    return {"picks": picks, "world": distributed.world_size()}


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
