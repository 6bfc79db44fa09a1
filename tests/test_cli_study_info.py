"""`mpts-fast study`, `info` and `demo` as a user types them: resume and overwrite rules, exit codes (usage 2,
runtime 1, Ctrl-C 130), option spellings, and the messages a user reads."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from mpts_fast.cli.main import main

# a study of a few seconds: 2 trials of passive and SASLA on iris, 12 epochs, explicit hyperparameters
SMALL = ["--trials", "2", "--workers", "1", "--epochs", "12", "--hidden", "16", "--lr", "0.1", "--weight-decay",
         "0.001", "--momentum", "0.9", "--methods", "passive,sasla", "--no-plots", "-q"]


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env)


def trial_stamps(out) -> dict:
    return {p.name + p.parent.name: p.stat().st_mtime_ns for p in (out / "trials").glob("*/trial_*.json")}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished small study (upper-case data set name on purpose); tests copy it before changing it."""
    out = tmp_path_factory.mktemp("study") / "iris"
    res = invoke("study", "-d", "IRIS", "-o", str(out), *SMALL)
    assert res.exit_code == 0, res.output
    return out


def copy_of(finished, tmp_path):
    import shutil

    return shutil.copytree(finished, tmp_path / "iris")


def test_resume_of_a_finished_study_as_typed_in_the_issue(finished, tmp_path):
    # regression (bug 1): resuming a finished study crashed with "range() arg 3 must not be zero"
    out = copy_of(finished, tmp_path)
    stamps = trial_stamps(out)
    res = invoke("study", "--dataset", "iris", "--out", str(out), *SMALL, "--resume")
    assert res.exit_code == 0, res.output
    assert "passive" in res.output and "sasla" in res.output
    assert trial_stamps(out) == stamps  # nothing recomputed
    assert "patterns" not in res.output  # -q: the result lines only
    # --resume alone takes every setting from the study's config.json
    res = invoke("study", "-o", str(out), "--resume", "--no-plots")
    assert res.exit_code == 0, res.output
    assert trial_stamps(out) == stamps
    assert "(resumed)" in res.output and "'hidden': 16" in res.output


def test_resume_with_one_method_complete_and_another_missing_trials(finished, tmp_path):
    # regression (bug 1): as after a Ctrl-C when passive had finished and sasla had not
    out = copy_of(finished, tmp_path)
    (out / "trials" / "sasla" / "trial_001.json").unlink()
    passive = trial_stamps(out)
    res = invoke("study", "-o", str(out), "--resume", "-q", "--no-plots")
    assert res.exit_code == 0, res.output
    assert (out / "trials" / "sasla" / "trial_001.json").exists()
    assert {k: v for k, v in trial_stamps(out).items() if "passive" in k} == \
        {k: v for k, v in passive.items() if "passive" in k}
    doc = json.loads((out / "study.json").read_text())
    assert doc["trials"] == 2 and len(doc["methods"]) == 2


def test_resume_may_add_trials_but_not_change_settings(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    res = invoke("study", "-o", str(out), "--resume", "--epochs", "13", "--lr", "0.5")
    assert res.exit_code == 2
    assert "--epochs 13" in res.output and "--lr 0.5" in res.output and "--overwrite" in res.output
    res = invoke("study", "-o", str(out), "--resume", "-d", "wine")
    assert res.exit_code == 2 and "--dataset" in res.output
    res = invoke("study", "-o", str(out), "--resume", "--trials", "3", "--methods", "PASSIVE,Sasla", "-q",
                 "--no-plots", "--workers", "1")
    assert res.exit_code == 0, res.output
    assert len(list((out / "trials" / "passive").glob("trial_*.json"))) == 3
    assert json.loads((out / "config.json").read_text())["trials"] == 3


def test_existing_output_needs_resume_or_overwrite(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    res = invoke("study", "-d", "iris", "-o", str(out), *SMALL)
    assert res.exit_code == 1 and "already holds a study" in res.output and "--overwrite" in res.output
    res = invoke("study", "-d", "iris", "-o", str(out), *SMALL, "--resume", "--overwrite")
    assert res.exit_code == 2
    (out / "trials" / "passive" / "trial_007.json").write_text("{}")  # a stale file of the old study
    res = invoke("study", "-d", "iris", "-o", str(out), *SMALL, "--overwrite")
    assert res.exit_code == 0, res.output
    assert not (out / "trials" / "passive" / "trial_007.json").exists()
    assert len(list((out / "trials").glob("*/trial_*.json"))) == 4


def test_resume_of_nothing_says_so(tmp_path):
    res = invoke("study", "-o", str(tmp_path / "none"), "--resume")
    assert res.exit_code == 1 and "nothing to resume" in res.output


def test_usage_errors_exit_2_and_name_the_option(tmp_path):
    out = str(tmp_path / "x")
    res = invoke("study", "-o", out)
    assert res.exit_code == 2 and "--dataset" in res.output
    res = invoke("study", "-d", "irsi", "-o", out)
    assert res.exit_code == 2 and "did you mean iris" in res.output
    res = invoke("study", "-d", "iris", "-o", out, "--epochs", "0")
    assert res.exit_code == 2 and "--epochs" in res.output
    res = invoke("study", "-d", "sine", "-o", out, "--methods", "entropy")
    assert res.exit_code == 2 and "--methods" in res.output and "ensemble" in res.output
    res = invoke("study", "-d", "iris", "-o", out, "--hidden", "8")
    assert res.exit_code == 2 and "--lr" in res.output
    assert not os.path.exists(out)  # nothing written for a refused command


def test_help_speaks_to_users():
    res = invoke("study", "--help")
    assert res.exit_code == 0
    for word in ("SPEC", "docs/", "bench/", "the report", "session", "shared/"):
        assert word not in res.output, word
    assert "-d, --dataset" in res.output and "-o, --out" in res.output and "-q, --quiet" in res.output


def test_ctrl_c_exits_130_with_a_resume_hint(tmp_path, monkeypatch):
    # regression (bug 5): Ctrl-C exited 1 with "Aborted!"
    from mpts_fast.study import runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_trials", interrupted)
    out = tmp_path / "iris"
    res = invoke("study", "-d", "iris", "-o", str(out), *SMALL)
    assert res.exit_code == 130
    assert "Aborted" not in res.output and f"-o {out} --resume" in res.output


def test_ctrl_c_with_worker_processes_leaves_no_tracebacks(tmp_path):
    # regression (bug 5): the spawned workers printed "Process SpawnPoolWorker-1:" tracebacks
    out = tmp_path / "iris"
    cmd = [sys.executable, "-m", "mpts_fast.cli.main", "study", "-d", "iris", "-o", str(out), "--trials", "4",
           "--workers", "2", "--epochs", "1000000", "--hidden", "16", "--lr", "0.1", "--weight-decay", "0",
           "--momentum", "0.9", "--methods", "passive,sasla", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "config.json").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the workers are starting or training
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground process group
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "SpawnPoolWorker" not in err and "Aborted" not in err, err
    assert "--resume" in err


def test_info_with_a_bogus_backend_is_a_clear_error():
    # regression (bug 11): a traceback
    res = invoke("info", env={"MPTS_FAST_BACKEND": "bogus"})
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert "MPTS_FAST_BACKEND" in res.output and "auto, native or reference" in res.output and "'bogus'" in res.output
    assert "invalid: 'bogus'" in res.output  # the other facts are still shown
    res = invoke("demo", env={"MPTS_FAST_BACKEND": "bogus"})
    assert res.exit_code == 1 and "MPTS_FAST_BACKEND" in res.output
    res = invoke("info", env={"MPTS_FAST_BACKEND": "Reference"})
    assert res.exit_code == 0 and "reference" in res.output


def test_library_imports_with_a_bogus_backend_and_its_ops_name_the_variable():
    code = ("import torch, mpts_fast\nfrom mpts_fast import ops\n"
            "try:\n    ops.rbf_mmd2(torch.ones(2, 3), torch.zeros(2, 3))\nexcept ValueError as e:\n    print(e)\n")
    env = {**os.environ, "MPTS_FAST_BACKEND": "bogus"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "MPTS_FAST_BACKEND" in res.stdout and "auto, native or reference" in res.stdout


def test_demo_labels_its_indices_as_rows_of_load_digits():
    # regression (bug 11): dataset indices were labelled "pool index"
    from sklearn.datasets import load_digits

    res = invoke("demo", "--epochs", "2")
    assert res.exit_code == 0, res.output
    assert "pool index" not in res.output and "row of load_digits()" in res.output
    target = load_digits().target
    lines = [ln for ln in res.output.splitlines() if ", row " in ln and "top-5" not in ln]
    assert len(lines) == 5
    for ln in lines:
        row = int(ln.split(", row ")[1].split(":")[0])
        assert int(ln.rsplit("/", 1)[1]) == target[row]  # the printed label is that row's label
