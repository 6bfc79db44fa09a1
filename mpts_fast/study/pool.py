"""Run independent tasks over worker processes (one torch thread each) with a progress bar."""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
from typing import Callable, Iterable, Iterator


def _init_worker() -> None:
    # Ctrl-C reaches every process of the terminal's group: only the parent reacts (it terminates the pool), so
    # the workers print no "Process SpawnPoolWorker-N" tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # the networks are tiny: one thread per process, and one process per core, is the fast layout
    import torch

    torch.set_num_threads(1)


@contextlib.contextmanager
def _sigint_ignored():
    """Ignore SIGINT while the workers start: a spawned child inherits the ignored disposition, so a Ctrl-C
    during its (slow) torch import cannot raise in it before `_init_worker` runs."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be changed from the main thread
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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
        with _sigint_ignored():
            pool = ctx.Pool(min(workers, len(tasks)), initializer=_init_worker)
        with pool:  # leaving it (finished, Ctrl-C or error) terminates the workers
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
