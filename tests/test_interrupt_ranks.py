"""Ctrl-C under torchrun: every rank exits 130, rank 0 alone prints how to resume, a second SIGINT (torchrun forwards
the one it got to its workers, after the terminal's) cannot turn the exit into a traceback.

The end-to-end check starts the two ranks of `python -m mpts_fast run` the way torchrun does (RANK, WORLD_SIZE,
MASTER_ADDR / MASTER_PORT in the environment, one process group) and sends SIGINT to the group after round 0, as a
terminal does, then once more to each rank, as torchrun does. It takes 20-40 s on 2 busy cores, so it runs with
MPTS_FAST_SLOW_TESTS=1 like the other torchrun checks. With torchrun in between, torch's launcher itself then raises
SignalException and exits 1 (tests/test_distributed_cli.py checks that the hint is printed once there too)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import mpts_fast.loop
from mpts_fast.__main__ import _interrupt_once
from mpts_fast.cli.main import main

HINT = "to continue, run"


class _InterruptedRun:
    """Stands in for ActiveLearningRun: Ctrl-C in the middle of the run."""

    def __init__(self, cfg, *args, **kwargs) -> None:
        self.cfg = cfg
        self.device = "cpu"

    def run(self, **kwargs):
        raise KeyboardInterrupt


@pytest.mark.parametrize("rank", ["0", "1"])
def test_only_rank_0_prints_the_resume_hint(monkeypatch, tmp_path, rank):
    monkeypatch.setattr(mpts_fast.loop, "ActiveLearningRun", _InterruptedRun)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    res = CliRunner().invoke(main, ["run", "-s", "random", "--dataset", "digits", "--out", str(tmp_path / "r"),
                                    "--quiet"])
    assert res.exit_code == 130, res.output
    assert (HINT in res.stderr) == (rank == "0"), res.stderr


def test_a_second_sigint_is_ignored_while_the_first_is_handled():
    before = signal.getsignal(signal.SIGINT)
    try:
        _interrupt_once()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler runs at the next bytecode; never reached
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # kept through interpreter shutdown
        os.kill(os.getpid(), signal.SIGINT)  # the second: nothing raised
        time.sleep(0.01)
    finally:
        signal.signal(signal.SIGINT, before)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rounds(out: Path) -> int:
    try:
        return len(json.loads((out / "results.json").read_text())["runs"][0]["rounds"])
    except (OSError, ValueError, KeyError, IndexError):
        return 0


@pytest.mark.skipif(not os.environ.get("MPTS_FAST_SLOW_TESTS"),
                    reason="starts two ranks (20-40 s); set MPTS_FAST_SLOW_TESTS=1 to run it")
def test_sigint_to_two_ranks_exits_130_with_one_hint(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPTS_FAST_DIST_TIMEOUT": "60", "WORLD_SIZE": "2",
           "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    cmd = [sys.executable, "-m", "mpts_fast", "run", "-s", "random", "--dataset", "digits", "--rounds", "50",
           "--epochs", "1", "--quiet", "--out", str(out)]
    ranks = []
    for rank in (0, 1):
        ranks.append(subprocess.Popen(cmd, env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      process_group=0 if rank == 0 else ranks[0].pid))  # one group, as a job
    try:
        deadline = time.monotonic() + 240
        while _rounds(out) < 1 and time.monotonic() < deadline and all(p.poll() is None for p in ranks):
            time.sleep(0.05)
        assert all(p.poll() is None for p in ranks), [p.communicate() for p in ranks]
        os.killpg(ranks[0].pid, signal.SIGINT)  # the terminal's Ctrl-C: the whole process group
        time.sleep(0.02)
        for p in ranks:  # torchrun's forwarded SIGINT, a moment later
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        results = [p.communicate(timeout=120) for p in ranks]
    finally:
        for p in ranks:
            if p.poll() is None:
                p.kill()
    codes = [p.returncode for p in ranks]
    stderr = [e for _, e in results]
    assert codes == [130, 130], stderr
    assert HINT in stderr[0] and f"--out {out}" in stderr[0] and HINT not in stderr[1], stderr
    assert not any("Traceback" in e for e in stderr), stderr
    assert 1 <= _rounds(out) < 50
