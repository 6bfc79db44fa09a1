"""The local spawn harness (mpts_fast.distributed.spawn.run_local): results in rank order, a rank killed by a signal
before its result fails the call with every rank's phase in the message, and a rank killed while leaving the group
after every result was written returns the results with a TeardownCrashWarning."""
from __future__ import annotations

import os
import time

import pytest

from mpts_fast.distributed.spawn import TeardownCrashWarning, run_local


def _rank_and_world(offset: int) -> tuple[int, int]:
    import torch.distributed as dist

    return dist.get_rank() + offset, dist.get_world_size()


def test_results_come_back_in_rank_order():
    assert run_local(_rank_and_world, 2, 10) == [(10, 2), (11, 2)]


def test_world_must_be_positive():
    with pytest.raises(ValueError, match="world: expected at least 1"):
        run_local(_rank_and_world, 0, 0)


def _rank_1_aborts_in_fn():
    import torch.distributed as dist

    if dist.get_rank() == 1:
        os.abort()
    time.sleep(3)  # rank 1's death reaches spawn first; rank 0 is then ended by spawn
    return "rank 0"


def test_a_rank_killed_before_its_result_fails_with_the_phases():
    import torch.multiprocessing as mp

    with pytest.raises(mp.ProcessExitedException, match=r"SIGABRT.*rank 0: started, rank 1: started"):
        run_local(_rank_1_aborts_in_fn, 2, timeout_s=30)


def _rank_0_aborts_while_leaving():
    import torch.distributed as dist

    if dist.get_rank() == 0:
        dist.destroy_process_group = lambda *a, **k: os.abort()  # what a crash inside gloo's teardown looks like
    return dist.get_rank()


def test_a_rank_killed_while_leaving_after_every_result_returns_the_results_with_a_warning():
    with pytest.warns(TeardownCrashWarning, match=r"process 0 terminated with signal SIGABRT.*rank 0: barrier passed"):
        assert run_local(_rank_0_aborts_while_leaving, 2, timeout_s=30) == [0, 1]
