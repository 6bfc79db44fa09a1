"""Run a function on N local gloo processes (tests, benchmarks, notebooks): torch.multiprocessing.spawn with a free
port, one thread per process unless told otherwise, each rank's return value collected.

    results = run_local(fn, 2, arg)   # fn(arg) on ranks 0 and 1 of a gloo group; [result of rank 0, of rank 1]

fn must be importable by the children (a module-level function). An exception on any rank ends every rank and is
re-raised here with that rank's traceback (torch.multiprocessing.ProcessRaisedException).
"""
from __future__ import annotations

import os
import pickle
import socket
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child(rank: int, fn: Callable, world: int, port: int, out_dir: str, threads: int, timeout_s: float,
           args: tuple) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "OMP_NUM_THREADS": str(threads)})
    import torch
    import torch.distributed as dist

    torch.set_num_threads(threads)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s))
    try:
        result = fn(*args)
        with open(Path(out_dir) / f"rank{rank}.pkl", "wb") as f:
            pickle.dump(result, f)
        # no rank tears its gloo context down while a peer may still use it (that aborts the peer with
        # "terminate called without an active exception"); on an exception the peers fail by timeout instead
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_local(fn: Callable[..., Any], world: int, *args: Any, threads: int = 1, timeout_s: float = 60.0) -> list[Any]:
    """fn(*args) on `world` gloo processes on this machine; returns every rank's result, in rank order.
    timeout_s bounds every collective (a rank stuck waiting for a dead peer fails instead of hanging)."""
    import torch.multiprocessing as mp

    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by the children's OpenMP runtime at start
    try:
        with tempfile.TemporaryDirectory(prefix="mpts-dist-") as out_dir:
            mp.spawn(_child, args=(fn, world, free_port(), out_dir, threads, timeout_s, args), nprocs=world,
                     join=True)
            return _collect(out_dir, world)
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved


def _collect(out_dir: str, world: int) -> list[Any]:
    results = []
    for r in range(world):
        with open(Path(out_dir) / f"rank{r}.pkl", "rb") as f:
            results.append(pickle.load(f))
    return results
