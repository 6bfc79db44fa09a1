"""Where the time went: per-round seconds summed per strategy (mpts_fast/time_split.py), recorded in compare's
summary.json and printed by compare and run."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mpts_fast.cli.main import main
from mpts_fast.time_split import time_split, time_table

FAST = ["--dataset", "digits", "--rounds", "2", "--epochs", "1", "--recipe", "paper", "--quiet"]


def test_time_split_sums_rounds_and_tolerates_old_files():
    results = {"runs": [{"rounds": [{"train_seconds": 1.0, "selection_train_seconds": 2.0, "evaluate_seconds": 0.5,
                                     "select_seconds": 0.25},
                                    {"train_seconds": 1.0, "select_seconds": 0.25}]},  # written before the split
                        {"rounds": [{"train_seconds": 3.0, "evaluate_seconds": 0.5, "select_seconds": 0.5}]}]}
    s = time_split(results)
    assert s == pytest.approx({"train_task_s": 5.0, "train_selection_s": 2.0, "evaluate_s": 1.0, "select_s": 1.0,
                               "total_s": 9.0, "rounds": 3})
    lines = time_table({"mpts": s})
    assert lines[1].split()[0] == "mpts" and lines[1].split()[-1] == "78%"  # (5 + 2) / 9 training


def test_compare_records_and_prints_the_split(tmp_path):
    out = tmp_path / "cmp"
    res = CliRunner().invoke(main, ["compare", *FAST, "--strategies", "random,mpts", "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    for name in ("random", "mpts"):
        s = summary["strategies"][name]["seconds"]
        assert s["rounds"] == 2 and s["total_s"] > 0 and s["train_task_s"] > 0
    assert summary["strategies"]["random"]["seconds"]["train_selection_s"] == 0  # random trains no selection model
    assert summary["strategies"]["mpts"]["seconds"]["train_selection_s"] > 0
    rounds = json.loads((out / "mpts" / "results.json").read_text())["runs"][0]["rounds"]
    assert all(rd["evaluate_seconds"] >= 0 and rd["train_threads"] >= 1 for rd in rounds)
    assert "train task" in res.output and "training" in res.output
