"""Run a function on N local gloo processes (tests, benchmarks, notebooks): torch.multiprocessing.spawn, a file
rendezvous in a private temporary folder, one thread per process unless told otherwise, each rank's return value
collected.

    results = run_local(fn, 2, arg)   # fn(arg) on ranks 0 and 1 of a gloo group; [result of rank 0, of rank 1]

fn must be importable by the children (a module-level function). An exception on any rank ends every rank and is
re-raised here with that rank's traceback (torch.multiprocessing.ProcessRaisedException).

Teardown. Every rank writes its result, meets the others at a barrier, leaves the group, and ends with os._exit:
interpreter finalisation is skipped, as multiprocessing does for forked children, because c10d and gloo objects
torn down against a half-finalised interpreter have aborted a rank ("terminate called without an active exception",
SIGABRT) after its work was done (twice in CI, on a busy 2-core machine). When a rank is killed by a signal after
*every* rank had written its result, all the work is done and on disk, so run_local returns the results with a
TeardownCrashWarning naming the rank and the signal; a rank killed earlier fails the call, with the phase each rank
had reached in the message.
"""
from __future__ import annotations

import os
import pickle
import sys
import tempfile
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

_PHASES = ("started", "result written", "barrier passed", "group left")


class TeardownCrashWarning(RuntimeWarning):
    """A rank died by a signal while leaving its process group, after every rank's result was written."""


def _mark(out_dir: str, rank: int, phase: str) -> None:
    with open(Path(out_dir) / f"rank{rank}.phase", "w") as f:
        f.write(phase)


def _child(rank: int, fn: Callable, world: int, out_dir: str, threads: int, timeout_s: float, args: tuple) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "OMP_NUM_THREADS": str(threads)})
    import torch
    import torch.distributed as dist

    _mark(out_dir, rank, "started")
    torch.set_num_threads(threads)
    # a FileStore: no port to race for and no store server thread living in rank 0
    dist.init_process_group("gloo", init_method=f"file://{Path(out_dir) / 'store'}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=timeout_s))
    try:
        result = fn(*args)
        with open(Path(out_dir) / f"rank{rank}.pkl", "wb") as f:
            pickle.dump(result, f)
        _mark(out_dir, rank, "result written")
        # no rank tears its gloo context down while a peer may still use it; on an exception the peers fail by their
        # collective's error or timeout instead
        dist.barrier()
        _mark(out_dir, rank, "barrier passed")
    finally:
        dist.destroy_process_group()
    _mark(out_dir, rank, "group left")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_local(fn: Callable[..., Any], world: int, *args: Any, threads: int = 1, timeout_s: float = 60.0) -> list[Any]:
    """fn(*args) on `world` gloo processes on this machine; returns every rank's result, in rank order.
    timeout_s bounds every collective (a rank stuck waiting for a dead peer fails instead of hanging)."""
    import torch.multiprocessing as mp

    if world < 1:
        raise ValueError(f"world: expected at least 1 process, got {world}")
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by the children's OpenMP runtime at start
    try:
        with tempfile.TemporaryDirectory(prefix="mpts-dist-") as out_dir:
            try:
                mp.spawn(_child, args=(fn, world, out_dir, threads, timeout_s, args), nprocs=world, join=True)
            except mp.ProcessExitedException as e:
                phases = _phases(out_dir, world)
                if not all(p in _PHASES[1:] for p in phases):
                    raise mp.ProcessExitedException(
                        f"{e}; phase each rank had reached: {_describe(phases)}", error_index=e.error_index,
                        error_pid=e.error_pid, exit_code=e.exit_code, signal_name=e.signal_name) from e
                warnings.warn(f"run_local: {e} while leaving the process group, after every rank had written its "
                              f"result ({_describe(phases)}); the results are returned", TeardownCrashWarning,
                              stacklevel=2)
            return _collect(out_dir, world)
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved


def _phases(out_dir: str, world: int) -> list[str]:
    phases = []
    for r in range(world):
        path = Path(out_dir) / f"rank{r}.phase"
        phases.append(path.read_text() if path.exists() else "not started")
    return phases


def _describe(phases: list[str]) -> str:
    return ", ".join(f"rank {r}: {p}" for r, p in enumerate(phases))


def _collect(out_dir: str, world: int) -> list[Any]:
    results = []
    for r in range(world):
        with open(Path(out_dir) / f"rank{r}.pkl", "rb") as f:
            results.append(pickle.load(f))
    return results
