"""results.json that is damaged (truncated, hand-edited) gets a message naming it and what to do; two processes given
the same output directory never interleave: the second refuses while the first holds <out>/.lock."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from mpts_fast.cli.main import main
from mpts_fast.results import DamagedResultsError, OutputLockedError, load_json, output_lock

FAST = ["--rounds", "2", "--initial", "20", "--budget", "10", "--epochs", "1", "--device", "cpu", "--quiet",
        "-s", "random"]


def test_damaged_results_name_the_file_and_the_way_out(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.json").write_text('{"config": {"strategy": "random",\n "dataset": "dig')
    with pytest.raises(DamagedResultsError) as info:
        load_json(out / "results.json")
    assert str(out / "results.json") in str(info.value) and "damaged" in str(info.value)
    res = CliRunner().invoke(main, ["run", *FAST, "--out", str(out), "--resume"])
    assert res.exit_code == 1
    assert "results.json is damaged" in res.output and "--overwrite" in res.output and "restore" in res.output
    assert "Traceback" not in res.output
    fresh = CliRunner().invoke(main, ["run", *FAST, "--out", str(out), "--overwrite"])
    assert fresh.exit_code == 0, fresh.output
    assert load_json(out / "results.json")["strategy"] == "random"


def test_second_process_on_the_same_out_is_refused(tmp_path):
    out = tmp_path / "busy"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from mpts_fast.results import output_lock
            with output_lock({str(out)!r}):
                print("held", flush=True)
                sys.stdin.read()  # until the test closes stdin
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        res = CliRunner().invoke(main, ["run", *FAST, "--out", str(out)])
        assert res.exit_code == 1, res.output
        assert "in use by another mpts-fast process (pid" in res.output and "choose another --out" in res.output
        assert not (out / "results.json").exists()
        with pytest.raises(OutputLockedError, match=f"pid {holder.pid}"):
            with output_lock(out):
                pass
    finally:
        holder.kill()  # no clean release: the kernel drops the lock of a killed holder
        holder.wait()
    with output_lock(out) as path:
        assert path == out / ".lock"
    res = CliRunner().invoke(main, ["run", *FAST, "--out", str(out)])
    assert res.exit_code == 0, res.output


def test_compare_holds_its_output_directory(tmp_path):
    out = tmp_path / "cmp"
    with output_lock(out):
        res = CliRunner().invoke(main, ["compare", *FAST[:-2], "--strategies", "random,entropy", "--out", str(out)])
    assert res.exit_code == 1 and "in use by another mpts-fast process" in res.output
    assert not (out / "summary.json").exists()
    res = CliRunner().invoke(main, ["compare", *FAST[:-2], "--strategies", "random,entropy", "--out", str(out)])
    assert res.exit_code == 0, res.output
