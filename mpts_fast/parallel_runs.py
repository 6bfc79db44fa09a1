"""The seeds of one experiment (`--repeats`) trained side by side in worker processes, with results, picks and files
exactly as in a sequential run.

Every round's randomness is derived from (seed, round, role) (training/trainer.py, derive_seed), never from the
history of a process, so a seed's rounds are the same whichever process computes them. The workers send each finished
round to the parent, which alone writes results.json (atomically, after every round, as the sequential loop does) and
prints; so Ctrl-C keeps every finished round of every seed, and `resume` continues each seed from its last one.
Workers ignore Ctrl-C: the parent stops them.

The workers live as long as the parent process (one pool per job count, started on first use): starting one costs
seconds (spawn, importing torch), which `compare` pays once rather than once per strategy and seed.

Threads: each worker runs with the parent's count and the same per-model rule (training/threads.py), so every round
runs on the thread count it would get sequentially and its float results are the same. For the small models the rule
puts on one thread, N jobs use N cores; for larger models the workers share the cores' threads (oversubscribed):
--jobs pays for small models.
"""
from __future__ import annotations

import atexit
import itertools
import multiprocessing as mp
import queue as queue_module
import signal
import traceback
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from mpts_fast.loop import ActiveLearningRun

_POOLS: dict[tuple, "_Pool"] = {}
_TOKENS = itertools.count()


class _Pool:
    def __init__(self, jobs: int, threads: int, chosen: bool) -> None:
        ctx = mp.get_context("spawn")
        self.tasks, self.messages = ctx.Queue(), ctx.Queue()
        self.procs = [ctx.Process(target=_worker, args=(self.tasks, self.messages, threads, chosen), daemon=True,
                                  name=f"mpts-fast worker {k}") for k in range(jobs)]
        for p in self.procs:
            p.start()

    def dead(self) -> list[mp.Process]:
        return [p for p in self.procs if p.exitcode is not None]

    def close(self, graceful: bool = True) -> None:
        if graceful:  # idle workers leave their loop on a None task
            for _ in self.procs:
                self.tasks.put(None)
            for p in self.procs:
                p.join(timeout=5)
        for p in self.procs:
            if p.is_alive():
                p.terminate()
        for p in self.procs:
            p.join()
        for q in (self.tasks, self.messages):
            q.close()
            q.join_thread()


def _pool(jobs: int) -> _Pool:
    from mpts_fast.training.threads import user_chose_threads

    # the parent's count, not a share of it: a round runs on the count the per-model rule gives (one thread for small
    # models) or on this one, as in a sequential run, so that the float results are the same
    chosen, threads = user_chose_threads(), torch.get_num_threads()
    key = (jobs, threads, chosen)
    pool = _POOLS.get(key)
    if pool is None or pool.dead():
        if pool is not None:
            pool.close(graceful=False)
        pool = _POOLS[key] = _Pool(jobs, threads, chosen)
    return pool


def shutdown(graceful: bool = True) -> None:
    """Stops every worker: at exit (graceful: idle workers finish), and after an interrupted or failed run (not
    graceful: its workers may be mid-round)."""
    while _POOLS:
        _POOLS.popitem()[1].close(graceful)


atexit.register(shutdown)


def run_seeds_in_parallel(al: "ActiveLearningRun", results: dict, pending: list[int], jobs: int) -> None:
    """Runs results["runs"][i] for i in pending on `jobs` worker processes; the parent applies every finished round
    through al._round_done (results.json written, the round callback called). A worker's error stops the workers and
    is raised here with the worker's traceback."""
    pool = _pool(jobs)
    token = next(_TOKENS)
    for i in pending:
        pool.tasks.put((token, i, al.cfg, al.data, str(al.device), al.lockstep, results["runs"][i]))
    left = set(pending)
    try:
        while left:
            try:
                tok, kind, i, payload = pool.messages.get(timeout=1.0)
            except queue_module.Empty:
                if pool.dead():
                    raise RuntimeError(f"a worker process died (exit code {pool.dead()[0].exitcode}) before "
                                       f"finishing its seed's rounds") from None
                continue
            if tok != token:
                continue
            if kind == "round":
                al._round_done(results, results["runs"][i], payload)
            elif kind == "done":
                left.discard(i)
            else:
                raise RuntimeError(f"seed {results['runs'][i]['seed']} failed in its worker process:\n{payload}")
    except BaseException:
        shutdown(graceful=False)  # workers still busy with this run's seeds: stop them, a later run starts fresh ones
        raise


def _worker(tasks, messages, threads: int, chosen: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    from mpts_fast.loop import ActiveLearningRun
    from mpts_fast.training.threads import adopt_threads

    adopt_threads(threads, chosen)
    while True:
        task = tasks.get()
        if task is None:
            return
        token, index, cfg, data, device, lockstep, run = task
        try:
            al = ActiveLearningRun(cfg, "unused", device=device, data=data, progress=False, lockstep=lockstep)

            def send(results, run_record, record, token=token, index=index):
                run_record["rounds"].append(record)
                messages.put((token, "round", index, record))

            al._round_done = send
            al._run_one(None, run, data.x_train.to(al.device))
            messages.put((token, "done", index, None))
        except Exception:
            messages.put((token, "error", index, traceback.format_exc()))
