"""--jobs: the seeds of --repeats trained in worker processes (mpts_fast/parallel_runs.py) give the same results.json
rounds as a sequential run, timing fields aside, and a finished run resumes as one."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mpts_fast.cli.main import main
from mpts_fast.loop import ActiveLearningRun, ConfigError, RunConfig

FAST = ["--dataset", "wine", "--rounds", "2", "--epochs", "2", "--recipe", "paper", "--repeats", "2", "--quiet"]
TIMING = {"train_seconds", "selection_train_seconds", "evaluate_seconds", "select_seconds", "epoch_seconds_mean",
          "selection_epoch_seconds_mean"}


def _runs(path):
    runs = json.loads(path.read_text())["runs"]
    return [{**r, "rounds": [{k: v for k, v in rd.items() if k not in TIMING} for rd in r["rounds"]]} for r in runs]


def test_compare_jobs_2_writes_the_rounds_of_jobs_1(tmp_path):
    for jobs in ("1", "2"):
        res = CliRunner().invoke(main, ["compare", *FAST, "--strategies", "entropy,mpts", "--jobs", jobs,
                                        "--out", str(tmp_path / jobs)])
        assert res.exit_code == 0, res.output
    for name in ("entropy", "mpts"):
        one, two = _runs(tmp_path / "1" / name / "results.json"), _runs(tmp_path / "2" / name / "results.json")
        assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)
        assert len(two) == 2 and all(r["complete"] and len(r["rounds"]) == 2 for r in two)
    again = CliRunner().invoke(main, ["compare", *FAST, "--strategies", "entropy,mpts", "--jobs", "2", "--resume",
                                      "--out", str(tmp_path / "2")])
    assert again.exit_code == 0 and "finished earlier" not in again.output  # --quiet; nothing retrained
    assert _runs(tmp_path / "2" / "mpts" / "results.json") == _runs(tmp_path / "1" / "mpts" / "results.json")


@pytest.mark.parametrize("jobs", [0, 1.5, True])
def test_jobs_must_be_a_positive_whole_number(tmp_path, jobs):
    with pytest.raises(ConfigError, match="jobs"):
        ActiveLearningRun(RunConfig(dataset="wine", strategy="random", rounds=2, epochs=1, recipe="paper"),
                          tmp_path, progress=False, jobs=jobs)


def test_interrupt_keeps_finished_rounds_and_resume_matches_sequential(tmp_path):
    cfg = RunConfig(dataset="wine", strategy="entropy", rounds=3, epochs=2, recipe="paper", repeats=2)

    def interrupt(seed, record):
        raise KeyboardInterrupt  # Ctrl-C in the parent right after the first round arrived

    with pytest.raises(KeyboardInterrupt):
        ActiveLearningRun(cfg, tmp_path / "par", progress=False, jobs=2, on_round=interrupt).run()
    saved = json.loads((tmp_path / "par" / "results.json").read_text())
    assert sum(len(r["rounds"]) for r in saved["runs"]) == 1  # the finished round is on disk
    ActiveLearningRun(cfg, tmp_path / "par", progress=False, jobs=2).run(resume=True)
    ActiveLearningRun(cfg, tmp_path / "seq", progress=False).run()
    assert _runs(tmp_path / "par" / "results.json") == _runs(tmp_path / "seq" / "results.json")
