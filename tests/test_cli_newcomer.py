"""`run`, `compare`, `export` and `strategies` as a new user types them: resume, refused settings, options
that do not apply, exit codes, names, output formats, file modes, provenance and the CSV export."""
import csv
import json
import os
import stat

import pytest
from click.testing import CliRunner

from al_fixtures import interrupt_after_rounds
from mpts_fast.cli.main import main

FAST = ["--rounds", "2", "--initial", "20", "--budget", "10", "--epochs", "1", "--device", "cpu", "--quiet"]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_resume_takes_the_saved_settings(tmp_path, monkeypatch):
    out = tmp_path / "badge"
    with monkeypatch.context() as m:
        interrupt_after_rounds(m, 3)
        res = cli("run", "--strategy", "badge", "--rounds", 2, "--budget", 5, "--repeats", 3, "--initial", 20,
                  "--epochs", 1, "--device", "cpu", "-q", "--out", out)
    assert res.exit_code == 130, res.output
    assert "--resume" in res.output and str(out) in res.output
    # the example in docs/cli.md: nothing but --out and --resume
    res = cli("run", "--out", out, "--resume", "--device", "cpu", "-q")
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "results.json").read_text())
    assert saved["strategy"] == "badge" and saved["config"]["budget"] == 5 and saved["config"]["repeats"] == 3
    assert [len(r["rounds"]) for r in saved["runs"]] == [2, 2, 2]
    # options given again must agree: the same value is fine, another is refused by name
    assert cli("run", "--out", out, "--resume", "--budget", 5, "-q").exit_code == 0
    res = cli("run", "--out", out, "--resume", "--budget", 50, "-q")
    assert res.exit_code == 2 and "--budget" in res.output and "50" in res.output
    res = cli("run", "--out", out, "--resume", "-s", "entropy", "-q")
    assert res.exit_code == 2 and "badge" in res.output


def test_resume_does_not_shrink_repeats(tmp_path):
    out = tmp_path / "r"
    assert cli("run", *FAST, "-s", "random", "--out", out).exit_code == 0
    assert cli("run", "--out", out, "--resume", "--repeats", 4, "-q").exit_code == 0
    assert cli("run", "--out", out, "--resume", "-q").exit_code == 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["repeats"] == 4 and len(saved["runs"]) == 4


def test_resume_of_nothing_says_so(tmp_path):
    res = cli("run", "--out", tmp_path / "none", "--resume", "-q")
    assert res.exit_code == 2 and "nothing to resume" in res.output
    res = cli("compare", "--out", tmp_path / "none", "--resume", "-q")
    assert res.exit_code == 2 and "nothing to resume" in res.output


def test_settings_refused_before_training_name_the_option(tmp_path, monkeypatch):
    import importlib.util

    from mpts_fast.training import Trainer

    def never(*a, **k):
        raise AssertionError("trained before the settings were checked")

    monkeypatch.setattr(Trainer, "fit_many", never)
    res = cli("run", *FAST, "--snapshots", 0, "--out", tmp_path / "s")
    assert res.exit_code == 2 and "--snapshots" in res.output, res.output
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "timm" else real_find_spec(name, *a))
    res = cli("run", *FAST, "-s", "random", "--model", "vit_small", "--out", tmp_path / "v")
    assert res.exit_code == 2 and "--model" in res.output and "timm" in res.output, res.output
    assert "Traceback" not in res.output


def test_a_failed_first_round_leaves_no_file_that_needs_overwrite(tmp_path, monkeypatch):
    from mpts_fast.training import Trainer

    def boom(*a, **k):
        raise ValueError("simulated failure in round 0")

    out = tmp_path / "f"
    with monkeypatch.context() as m:
        m.setattr(Trainer, "fit_many", boom)
        res = cli("run", *FAST, "-s", "random", "--out", out)
    assert res.exit_code == 1 and "simulated" in res.output
    res = cli("run", *FAST, "-s", "random", "--out", out)
    assert res.exit_code == 0, res.output


def test_options_that_do_not_apply_are_refused(tmp_path):
    res = cli("run", *FAST, "-s", "badge", "--mmd-weight", 5, "--out", tmp_path / "a")
    assert res.exit_code == 2 and "--mmd-weight" in res.output
    res = cli("run", *FAST, "-s", "random", "--mc-passes", 3, "--out", tmp_path / "b")
    assert res.exit_code == 2 and "--mc-passes" in res.output
    res = cli("run", *FAST, "-s", "random", "--option", "gcnal.variant=uncertaingcn", "--out", tmp_path / "c")
    assert res.exit_code == 2 and "gcnal" in res.output and "not in this run" in res.output
    res = cli("compare", *FAST, "-s", "random,entropy", "--option", "gcnal.variant=uncertaingcn",
              "--out", tmp_path / "d")
    assert res.exit_code == 2 and "not in this run" in res.output
    # a bare option in compare: the hint names the strategy that has it
    res = cli("compare", *FAST, "-s", "random,gcnal", "--option", "variant=uncertaingcn", "--out", tmp_path / "e")
    assert res.exit_code == 2 and "gcnal.variant=uncertaingcn" in res.output and "random.variant" not in res.output
    # a bad value is refused before training, naming --option
    res = cli("run", *FAST, "-s", "gcnal", "--option", "variant=nope", "--out", tmp_path / "f")
    assert res.exit_code == 2 and "--option" in res.output and "variant" in res.output


def test_mmd_weight_is_recorded_only_where_used(tmp_path):
    out = tmp_path / "cmp"
    res = cli("compare", *FAST, "-s", "random,mpts", "--mmd-weight", 0.5, "--out", out)
    assert res.exit_code == 0, res.output
    assert json.loads((out / "random" / "results.json").read_text())["config"]["mmd_weight"] is None
    assert json.loads((out / "mpts" / "results.json").read_text())["config"]["mmd_weight"] == 0.5


def test_fraction_option_values(tmp_path):
    from mpts_fast.cli.al_options import _literal

    assert _literal("1/32") == pytest.approx(1 / 32) and _literal("3") == 3 and _literal("None") is None
    assert _literal("uncertaingcn") == "uncertaingcn"
    from mpts_fast.cli.al_options import build_options

    kw = {"mc_passes": 10, "options": ("alpha_cap=1/32",)}
    assert build_options("alfa_mix", kw) == {"alpha_cap": pytest.approx(1 / 32)}


def test_names_are_case_insensitive_with_did_you_mean(tmp_path):
    res = cli("run", *FAST, "-s", "Random", "-d", "DIGITS", "--out", tmp_path / "a")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "a" / "results.json").read_text())["strategy"] == "random"
    res = cli("run", *FAST, "-s", "entropi", "--out", tmp_path / "b")
    assert res.exit_code == 2 and "did you mean 'entropy'" in res.output
    res = cli("run", *FAST, "-d", "digit", "--out", tmp_path / "c")
    assert res.exit_code == 2 and "did you mean 'digits'" in res.output
    res = cli("compare", *FAST, "-s", "random,Least-Confidence,margn", "--out", tmp_path / "d")
    assert res.exit_code == 2 and "did you mean 'margin'" in res.output


def test_compare_reports_sample_std_and_writes_readable_files(tmp_path):
    out = tmp_path / "cmp"
    old = os.umask(0o022)
    try:
        res = cli("compare", *FAST, "-s", "random,entropy", "--repeats", 3, "--out", out)
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    assert "sample std" in res.output and "nan" not in res.output
    summary = json.loads((out / "summary.json").read_text())
    assert "ddof = 1" in summary["std"]
    assert summary["config"]["repeats"] == 3 and summary["config"]["strategies"] == ["random", "entropy"]
    import numpy as np

    for name, s in summary["strategies"].items():
        per_seed = s["aubc_per_seed"]
        assert s["seeds"] == [0, 1, 2] and len(per_seed) == 3
        assert s["aubc_std"] == pytest.approx(np.std(per_seed, ddof=1))
        runs = json.loads((out / name / "results.json").read_text())["runs"]
        final = [r["rounds"][-1]["test_accuracy"] for r in runs]
        assert s["accuracy_std"][-1] == pytest.approx(np.std(final, ddof=1))
    for f in ("summary.json", "results.csv", "comparison.png", "random/results.json"):
        assert stat.S_IMODE((out / f).stat().st_mode) == 0o644, f
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 3 * 2  # strategies × seeds × rounds
    assert {"strategy", "seed", "round", "n_labeled", "test_accuracy"} <= set(rows[0])


def test_compare_resume_takes_the_saved_settings(tmp_path):
    out = tmp_path / "cmp"
    assert cli("compare", *FAST, "-s", "random,entropy", "--out", out).exit_code == 0
    res = cli("compare", "--out", out, "--resume", "--device", "cpu", "-q")
    assert res.exit_code == 0, res.output
    assert "finished earlier" not in res.output  # quiet
    assert sorted(json.loads((out / "summary.json").read_text())["strategies"]) == ["entropy", "random"]
    res = cli("compare", "--out", out, "--resume", "--rounds", 5, "-q")
    assert res.exit_code == 2 and "--rounds" in res.output


def test_run_output_settings_seed_summary_and_no_nan_column(tmp_path):
    res = cli("run", *[a for a in FAST if a != "--quiet"], "-s", "random", "--repeats", 2, "--out", tmp_path / "a")
    assert res.exit_code == 0, res.output
    assert "random on digits" in res.output and "budget=10" in res.output  # resolved settings at start
    assert "snap acc" not in res.output and "nan" not in res.output
    assert "mean over 2 seeds" in res.output and "±" in res.output
    res = cli("run", *[a for a in FAST if a != "--quiet"], "--out", tmp_path / "b")
    assert "sel acc" in res.output and "train acc" in res.output  # mpts selects with a model of its own


def test_provenance_and_export(tmp_path):
    out = tmp_path / "a"
    assert cli("run", *FAST, "-s", "random", "--repeats", 2, "--out", out).exit_code == 0
    saved = json.loads((out / "results.json").read_text())
    prov = saved["provenance"][0]
    for key in ("mpts_fast", "torch", "backend", "torch_threads", "device", "timestamp", "git_commit"):
        assert key in prov
    (out / "results.csv").unlink()
    res = cli("export", out, "--csv")
    assert res.exit_code == 0, res.output
    try:
        import pandas as pd
    except ImportError:
        with open(out / "results.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        seeds = sorted({int(r["seed"]) for r in rows})
    else:
        frame = pd.read_csv(out / "results.csv")
        rows, seeds = frame.to_dict("records"), sorted(frame["seed"].unique().tolist())
        assert frame["test_accuracy"].dtype.kind == "f"
    assert len(rows) == 4 and seeds == [0, 1]
    res = cli("export", tmp_path)
    assert res.exit_code == 0 and (tmp_path / "results.csv").exists()  # a compare-like folder of runs
    res = cli("export", tmp_path / "a" / "..", "--output", tmp_path / "x.csv")
    assert res.exit_code == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("export", empty).exit_code == 2


def test_strategies_lists_every_strategy_with_options():
    from mpts_fast.strategies import strategy_names

    res = cli("strategies")
    assert res.exit_code == 0
    for name in strategy_names():
        assert f"{name}:" in res.output
    assert "variant='coregcn'" in res.output and "alpha_cap=" in res.output and "passes=10" in res.output
    from mpts_fast.cli.strategies import _value

    assert _value(1 / 32) == "1/32" and _value(0.3) == "0.3" and _value(None) == "None"  # defaults as the docs write them


def test_python_api_errors_do_not_name_cli_options(tmp_path):
    from mpts_fast.loop import ConfigError, RunConfig, run_experiment

    cfg = RunConfig(strategy="random", rounds=2, initial=20, budget=10, epochs=1)
    run_experiment(cfg, tmp_path / "p", device="cpu", progress=False)
    with pytest.raises(FileExistsError) as e:
        run_experiment(cfg, tmp_path / "p", device="cpu", progress=False)
    assert "--" not in str(e.value)
    with pytest.raises(ConfigError) as e:
        run_experiment(RunConfig(strategy="mpts", snapshots=0), tmp_path / "q", device="cpu", progress=False)
    assert "--" not in str(e.value)


def test_ctrl_c_in_compare_exits_130_with_a_resume_hint(tmp_path, monkeypatch):
    interrupt_after_rounds(monkeypatch, 1)
    res = cli("compare", *FAST, "-s", "random,entropy", "--out", tmp_path / "c")
    assert res.exit_code == 130 and "mpts-fast compare --out" in res.output and "--resume" in res.output


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    from mpts_fast.results import write_json_atomic, write_text_atomic

    old = os.umask(umask)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        write_text_atomic(tmp_path / "b.csv", "x\n1\n")
    finally:
        os.umask(old)
    for name in ("a.json", "b.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode


def test_compare_interrupted_in_its_first_strategy_resumes_every_strategy(tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    with monkeypatch.context() as m:
        interrupt_after_rounds(m, 0)
        res = cli("compare", *FAST, "-s", "mpts,random", "--mmd-weight", 0.5, "--out", out)
    assert res.exit_code == 130
    res = cli("compare", "--out", out, "--resume", "--device", "cpu", "-q")
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["strategies"]) == ["mpts", "random"] and summary["config"]["mmd_weight"] == 0.5
    assert json.loads((out / "mpts" / "results.json").read_text())["config"]["mmd_weight"] == 0.5


def test_datasets_download_names_are_checked_first(tmp_path):
    res = cli("datasets", "--data-dir", tmp_path, "--download", "svnh")
    assert res.exit_code == 2 and "did you mean 'svhn'" in res.output
