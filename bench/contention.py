"""CPU load for contended measurements: N busy processes, each pinned to one core.

    with BusyCores([0]):          # one core held
        ...time something...
    with BusyCores(range(os.cpu_count())):   # every core held
        ...

Each busy process is a fresh interpreter spinning in pure Python, pinned with
os.sched_setaffinity to its core, so it takes that core from anything else the scheduler puts
there (our kernels' threads included), like a data-loader worker or a second experiment would.

Stopping is reliable: __exit__ (also on an exception or Ctrl-C) kills and reaps every process,
an atexit hook does the same if the block is never left, and each busy process polls its
parent's pid and exits by itself if the parent dies (SIGKILL included), so no load outlives
the measuring process by more than ~0.2 s.
"""
from __future__ import annotations

import atexit
import os
import subprocess
import sys
import time
from typing import Iterable

# The child's whole program: pin, then spin, checking ~every 0.1 s that the parent still lives.
_BUSY = r"""
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
parent = int(sys.argv[2])
print("ready", flush=True)
x = 0
while True:
    t = time.monotonic() + 0.1
    while time.monotonic() < t:
        x += 1
    if os.getppid() != parent:
        break
"""


class BusyCores:
    """Context manager holding each core in `cores` with one pinned busy process."""

    def __init__(self, cores: Iterable[int]) -> None:
        self.cores = list(cores)
        available = os.sched_getaffinity(0)
        bad = [c for c in self.cores if c not in available]
        if bad:
            raise ValueError(f"cores must be among this process's CPUs {sorted(available)}, got {bad}")
        self._procs: list[subprocess.Popen] = []

    def __enter__(self) -> "BusyCores":
        atexit.register(self.stop)
        try:
            for core in self.cores:
                self._procs.append(
                    subprocess.Popen(
                        [sys.executable, "-c", _BUSY, str(core), str(os.getpid())],
                        stdout=subprocess.PIPE,
                        stdin=subprocess.DEVNULL,
                    )
                )
            for p in self._procs:  # wait until every one is pinned and spinning
                if p.stdout.readline().strip() != b"ready":
                    raise RuntimeError(f"busy process {p.pid} did not start (exit code {p.poll()})")
            time.sleep(0.2)  # let the scheduler settle the load in
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Kill and reap every busy process (idempotent)."""
        for p in self._procs:
            if p.poll() is None:
                p.kill()
        for p in self._procs:
            p.wait()
            if p.stdout:
                p.stdout.close()
        self._procs.clear()
        atexit.unregister(self.stop)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (os.getloadavg), recorded next to every figure."""
    return [round(v, 2) for v in os.getloadavg()]
