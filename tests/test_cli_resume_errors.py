"""What `run`, `compare` and `export` say when a resume cannot go on as asked: the resume command printed on Ctrl-C
works as printed; a damaged or incomplete results.json / summary.json and an output directory that cannot be written
get a message naming the file and the way out in the command line's words (never a traceback, never the Python
API's argument names)."""
from __future__ import annotations

import json
import os
import shlex

import pytest
from click.testing import CliRunner

from al_fixtures import interrupt_after_rounds
from mpts_fast.cli.main import main

FAST = ["--rounds", "2", "--initial", "20", "--budget", "10", "--epochs", "1", "--device", "cpu", "--quiet"]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _clean_error(res, code: int = 1) -> str:
    assert res.exit_code == code, res.output
    assert isinstance(res.exception, SystemExit), repr(res.exception)  # a message and an exit code, no traceback
    assert "Traceback" not in res.output
    return res.output


def _printed_resume_command(output: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.strip().startswith("mpts-fast "))
    words = shlex.split(line)
    assert words[0] == "mpts-fast"
    return words[1:]


# ------------------------------------------------------------------------------------------- Ctrl-C in compare

def test_compare_interrupted_in_a_later_strategy_prints_a_resume_command_that_works(tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    with monkeypatch.context() as m:
        interrupt_after_rounds(m, 3)  # random's two rounds, entropy's first: Ctrl-C in entropy's second round
        res = cli("compare", *FAST, "-s", "random,entropy", "--data-dir", tmp_path / "data", "--out", out)
    assert res.exit_code == 130, res.output
    command = _printed_resume_command(res.output)
    assert command[:4] == ["compare", "--out", str(out), "--resume"]  # the comparison, not entropy's sub-directory
    assert "--data-dir" in command and "--device" in command  # what results.json does not record
    again = cli(*command)
    assert again.exit_code == 0, again.output
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["strategies"]) == ["random", "entropy"]
    assert all(s["n_labeled"] == [20, 30] for s in summary["strategies"].values())


def test_run_interrupted_prints_a_resume_command_that_works(tmp_path, monkeypatch):
    out = tmp_path / "r"
    with monkeypatch.context() as m:
        interrupt_after_rounds(m, 1)
        res = cli("run", *FAST, "-s", "random", "--out", out)
    assert res.exit_code == 130, res.output
    command = _printed_resume_command(res.output)
    assert command[:4] == ["run", "--out", str(out), "--resume"]
    assert cli(*command).exit_code == 0
    assert [len(r["rounds"]) for r in json.loads((out / "results.json").read_text())["runs"]] == [2]


# ------------------------------------------------------------------------------------- damaged / incomplete files

def _finished_compare(tmp_path):
    out = tmp_path / "cmp"
    assert cli("compare", *FAST, "-s", "random,entropy", "--out", out).exit_code == 0
    return out


def test_compare_resume_on_a_damaged_summary_names_it_and_the_way_out(tmp_path):
    out = _finished_compare(tmp_path)
    (out / "summary.json").write_text('{"dataset": "digits", "config": {"rou')
    msg = _clean_error(cli("compare", "--out", out, "--resume", "-q"))
    assert f"{out / 'summary.json'} is damaged" in msg and "not valid JSON" in msg
    assert "Delete it" in msg and "--overwrite" in msg and "overwrite=True" not in msg
    (out / "summary.json").write_text("[1, 2]")  # valid JSON, not a summary
    msg = _clean_error(cli("compare", "--out", out, "--resume", "-q"))
    assert "summary.json is damaged" in msg and "not a compare summary" in msg
    (out / "summary.json").unlink()  # the way out the message gives
    res = cli("compare", "--out", out, "--resume", "--device", "cpu", "-q")
    assert res.exit_code == 0, res.output


def test_compare_resume_on_a_damaged_strategy_results_names_it_and_the_way_out(tmp_path):
    out = _finished_compare(tmp_path)
    (out / "entropy" / "results.json").write_text('{"dataset": "digits", "runs": [{"seed": 0, "rou')
    msg = _clean_error(cli("compare", "--out", out, "--resume", "-q"))
    assert f"{out / 'entropy' / 'results.json'} is damaged" in msg and "overwrite=True" not in msg
    assert f"Delete {out / 'entropy'} to run entropy again" in msg
    (out / "entropy" / "results.json").write_text(json.dumps({"dataset": "digits", "strategy": "entropy"}))
    msg = _clean_error(cli("compare", "--out", out, "--resume", "-q"))
    assert "entropy/results.json is damaged" in msg and "'config' is missing" in msg
    (out / "entropy" / "results.json").unlink()
    res = cli("compare", "--out", out, "--resume", "--device", "cpu", "-q")
    assert res.exit_code == 0, res.output
    assert json.loads((out / "entropy" / "results.json").read_text())["runs"][0]["complete"]


@pytest.mark.parametrize("damage", ["drop_runs", "drop_config_key", "drop_round_key", "not_an_object"])
def test_run_resume_and_export_on_an_incomplete_results_file(tmp_path, damage):
    out = tmp_path / "r"
    assert cli("run", *FAST, "-s", "random", "--out", out).exit_code == 0
    saved = json.loads((out / "results.json").read_text())
    if damage == "drop_runs":
        del saved["runs"]
        expected = "'runs' is missing"
    elif damage == "drop_config_key":
        del saved["config"]["budget"]
        expected = "'config' lacks 'budget'"
    elif damage == "drop_round_key":
        del saved["runs"][0]["rounds"][1]["test_accuracy"]
        expected = "runs[0]['rounds'][1] lacks 'test_accuracy'"
    else:
        saved = [saved]
        expected = "expected an object at the top"
    (out / "results.json").write_text(json.dumps(saved))
    msg = _clean_error(cli("run", "--out", out, "--resume", "-q"))
    assert "results.json is damaged" in msg and expected in msg, msg
    assert "saved" not in msg and "given" not in msg  # no options the user never gave are blamed
    assert "--overwrite" in msg and "overwrite=True" not in msg
    msg = _clean_error(cli("export", out))
    assert "cannot export" in msg and expected in msg and "--overwrite" not in msg and "overwrite=True" not in msg
    res = cli("run", *FAST, "-s", "random", "--out", out, "--overwrite")  # the way out the message gives
    assert res.exit_code == 0, res.output


def test_damaged_file_messages_name_the_interface_they_come_from(tmp_path):
    from mpts_fast.loop import RunConfig, run_experiment
    from mpts_fast.results import DamagedResultsError

    out = tmp_path / "p"
    out.mkdir()
    (out / "results.json").write_text('{"config": ')
    with pytest.raises(DamagedResultsError) as info:
        run_experiment(RunConfig(strategy="random", rounds=2, initial=20, budget=10, epochs=1), out, resume=True,
                       device="cpu", progress=False)
    assert "overwrite=True" in str(info.value) and "--" not in str(info.value)
    msg = _clean_error(cli("run", *FAST, "-s", "random", "--out", out, "--resume"))
    assert "--overwrite" in msg and "overwrite=True" not in msg
    msg = _clean_error(cli("export", out))
    assert "overwrite" not in msg and "Restore it from a copy" in msg


# ------------------------------------------------------------------------------------- unwritable output directory

def test_an_output_directory_under_a_regular_file_is_named(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    out = blocker / "sub"
    for command in (["run", *FAST, "-s", "random"], ["compare", *FAST, "-s", "random,entropy"]):
        msg = _clean_error(cli(*command, "--out", out))
        assert f"cannot write to the output directory {out}" in msg and f"{blocker} is a file" in msg, msg
        assert "--out" in msg
    done = tmp_path / "done"
    assert cli("run", *FAST, "-s", "random", "--out", done).exit_code == 0
    msg = _clean_error(cli("export", done, "--output", out / "x.csv"))
    assert f"cannot write {out / 'x.csv'}" in msg and f"{blocker} is a file" in msg and "--output" in msg


def test_run_resume_where_the_lock_cannot_be_written_is_named(tmp_path):
    out = tmp_path / "r"
    assert cli("run", *FAST, "-s", "random", "--out", out).exit_code == 0
    (out / ".lock").unlink()
    (out / ".lock").mkdir()  # the lock file cannot be opened (works as root too, unlike a chmod)
    msg = _clean_error(cli("run", "--out", out, "--resume", "--repeats", 2, "-q"))
    assert f"cannot write to the output directory {out}" in msg and ".lock" in msg and "--out" in msg
    (out / "results.csv").unlink()
    (out / "results.csv").mkdir()
    msg = _clean_error(cli("export", out))
    assert f"cannot write {out / 'results.csv'}" in msg and "--output" in msg and ".tmp" not in msg


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only directories, so chmod cannot make one unwritable")
def test_read_only_output_directory_is_named(tmp_path):
    out = tmp_path / "r"
    assert cli("run", *FAST, "-s", "random", "--out", out).exit_code == 0
    (out / ".lock").unlink()
    out.chmod(0o555)
    try:
        msg = _clean_error(cli("run", "--out", out, "--resume", "--repeats", 2, "-q"))
        assert f"cannot write to the output directory {out}" in msg and "Permission denied" in msg
        msg = _clean_error(cli("export", out))
        assert f"cannot write {out / 'results.csv'}" in msg and "Permission denied" in msg
        msg = _clean_error(cli("run", *FAST, "-s", "random", "--out", out / "new"))
        assert "Permission denied" in msg and "--out" in msg
    finally:
        out.chmod(0o755)


def test_library_resume_on_an_incomplete_results_file_names_the_damage(tmp_path):
    """run_experiment(resume=True) on valid JSON that lacks a config key: DamagedResultsError naming it, not a
    KeyError or a ResumeMismatchError blaming settings the caller never gave."""
    from mpts_fast.loop import RunConfig, run_experiment
    from mpts_fast.results import DamagedResultsError

    out = tmp_path / "lib"
    cfg = RunConfig(strategy="random", rounds=2, initial=20, budget=10, epochs=1)
    run_experiment(cfg, out, device="cpu", progress=False)
    saved = json.loads((out / "results.json").read_text())
    del saved["config"]["budget"]
    (out / "results.json").write_text(json.dumps(saved))
    with pytest.raises(DamagedResultsError, match="'config' lacks 'budget'"):
        run_experiment(cfg, out, resume=True, device="cpu", progress=False)
