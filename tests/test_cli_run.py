import json

from click.testing import CliRunner

from mpts_fast.cli.main import main

FAST = ["--rounds", "2", "--initial", "20", "--budget", "10", "--epochs", "2", "--device", "cpu", "--quiet"]


def test_run_writes_results_and_plot(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["run", *FAST, "--out", str(out)])
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "results.json").read_text())
    assert saved["strategy"] == "mpts" and saved["dataset"] == "digits"
    assert (out / "learning_curve.png").stat().st_size > 1000
    again = CliRunner().invoke(main, ["run", *FAST, "--out", str(out)])
    assert again.exit_code == 2 and "--resume" in again.output
    fresh = CliRunner().invoke(main, ["run", *FAST, "--out", str(out), "--overwrite"])
    assert fresh.exit_code == 0, fresh.output
    resumed = CliRunner().invoke(main, ["run", *FAST, "--out", str(out), "--resume"])
    assert resumed.exit_code == 0, resumed.output


def test_compare_writes_summary_and_plot(tmp_path):
    out = tmp_path / "cmp"
    res = CliRunner().invoke(main, ["compare", *FAST, "--strategies", "random,entropy", "--repeats", "2",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    for name in ("random", "entropy"):
        s = summary["strategies"][name]
        assert {"aubc_mean", "aubc_std", "accuracy_mean", "accuracy_std", "n_labeled"} <= set(s)
        assert s["n_labeled"] == [20, 30] and len(s["accuracy_std"]) == 2
    assert (out / "comparison.png").stat().st_size > 1000


def test_unknown_names_list_the_valid_ones(tmp_path):
    res = CliRunner().invoke(main, ["run", "--strategy", "nope", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "mpts" in res.output and "random" in res.output  # a usage error
    res = CliRunner().invoke(main, ["compare", "--strategies", "random,nope", "--out", str(tmp_path / "y")])
    assert res.exit_code == 2 and "nope" in res.output
    res = CliRunner().invoke(main, ["run", "--dataset", "nope", "--out", str(tmp_path / "z")])
    assert res.exit_code == 2 and "digits" in res.output


def test_strategy_options_reach_the_strategy(tmp_path):
    out = tmp_path / "opt"
    res = CliRunner().invoke(main, ["run", *FAST, "-s", "bald", "--option", "passes=3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "results.json").read_text())["config"]["strategy_options"] == {"passes": 3}
    bad = CliRunner().invoke(main, ["run", *FAST, "-s", "bald", "--option", "nope=1", "--out", str(tmp_path / "b")])
    assert bad.exit_code != 0 and "nope" in bad.output
    unnamed = CliRunner().invoke(main, ["compare", *FAST, "-s", "bald", "--option", "passes=3",
                                        "--out", str(tmp_path / "c")])
    assert unnamed.exit_code != 0 and "bald.passes=3" in unnamed.output


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    res = CliRunner().invoke(main, ["run", "--rounds", "2", "--epochs", "1", "--device", "cuda", "--quiet",
                                    "--out", str(tmp_path / "g")])
    assert res.exit_code != 0 and "CUDA is not available" in res.output


def test_a_declared_option_is_checked_naming_its_flag(tmp_path, monkeypatch):
    from mpts_fast.training import Trainer

    monkeypatch.setattr(Trainer, "fit_many", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    res = CliRunner().invoke(main, ["run", *FAST, "-s", "bald", "--mc-passes", "0", "--out", str(tmp_path / "a")])
    assert res.exit_code == 2 and "'--mc-passes'" in res.output and "positive integer" in res.output, res.output
    # --option sets the same constructor keyword and wins; its bad value names --option
    res = CliRunner().invoke(main, ["run", *FAST, "-s", "bald", "--option", "passes=0", "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "'--option'" in res.output and "passes" in res.output, res.output
    # the help of a declared option names the strategies that use it
    help_text = CliRunner().invoke(main, ["run", "--help"]).output
    assert "MC-dropout passes. Used by bald." in " ".join(help_text.split())
