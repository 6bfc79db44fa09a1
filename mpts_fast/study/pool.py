"""Run independent tasks over worker processes (one torch thread each) with a progress bar."""
from __future__ import annotations

import multiprocessing as mp
import os
from typing import Callable, Iterable, Iterator


def _init_worker() -> None:
    # the networks are tiny: one thread per process, and one process per core, is the fast layout
    import torch

    torch.set_num_threads(1)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def imap(fn: Callable, tasks: Iterable, workers: int, progress: bool, desc: str, unit: str,
         weight: Callable | None = None) -> Iterator:
    """Yield fn(task) for every task as they finish (unordered when workers > 1). `weight(task)` is the
    amount the progress bar advances per task (default 1)."""
    from tqdm import tqdm

    tasks = list(tasks)
    weight = weight or (lambda t: 1)
    bar = tqdm(total=sum(weight(t) for t in tasks), desc=desc, unit=unit, disable=None if progress else True,
               leave=False)
    try:
        if workers <= 1 or len(tasks) <= 1:
            for t in tasks:
                out = fn(t)
                bar.update(weight(t))
                yield out
            return
        # spawn: a forked child would inherit the parent's OpenMP/MKL thread pools
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        ctx = mp.get_context("spawn")
        with ctx.Pool(min(workers, len(tasks)), initializer=_init_worker) as pool:
            for t, out in pool.imap_unordered(_Tagged(fn), list(enumerate(tasks))):
                bar.update(weight(tasks[t]))
                yield out
    finally:
        bar.close()


class _Tagged:
    """Picklable wrapper returning (task index, result)."""

    def __init__(self, fn: Callable) -> None:
        self.fn = fn

    def __call__(self, item):
        i, task = item
        return i, self.fn(task)
