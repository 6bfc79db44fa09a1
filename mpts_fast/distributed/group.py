"""Process-group setup for torchrun launches: backend, per-rank device, timeouts, rank helpers.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; `setup()` reads them (env:// rendezvous).
Without them (a plain `mpts-fast run`) nothing is initialised and every helper answers as one process (rank 0 of 1).
Backend: nccl when the ranks run on CUDA, gloo otherwise (CPU runs and the tests).
"""
from __future__ import annotations

import inspect
import os
from datetime import timedelta

import torch
import torch.distributed as dist

TIMEOUT_ENV = "MPTS_FAST_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0  # a collective waiting longer than this fails instead of hanging (a peer died silently)


def launched() -> bool:
    """Whether this process was started by torchrun (or another env:// launcher) with more than one rank."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def is_distributed(group=None) -> bool:
    """A process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def rank(group=None) -> int:
    """This process's rank; under torchrun also before the group is joined (RANK), so that rank-0-only work (the
    output lock, printing) is decided the same way before and after setup()."""
    if is_distributed(group):
        return dist.get_rank(group)
    if group is None and launched():
        return int(os.environ.get("RANK", "0"))
    return 0


def world_size(group=None) -> int:
    return dist.get_world_size(group) if is_distributed(group) else 1


def is_primary() -> bool:
    """Rank 0 (or a single process): the one that prints, draws progress bars and writes results."""
    return rank() == 0


def timeout_seconds() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise ValueError(f"{TIMEOUT_ENV} must be positive, got {raw!r}")
    return value


def local_device(device: torch.device) -> torch.device:
    """Under torchrun a CUDA device becomes this rank's local GPU (LOCAL_RANK); other devices stay as they are."""
    if device.type != "cuda" or not launched():
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if local >= torch.cuda.device_count():
        raise ValueError(f"device: LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA devices are visible; "
                         f"start at most that many processes per node (--nproc-per-node)")
    return torch.device("cuda", local)


def setup(device: torch.device | str = "cpu", *, timeout_s: float | None = None) -> torch.device:
    """Join the torchrun job if launched by one (idempotent); returns this rank's device.

    nccl for CUDA devices, gloo otherwise. timeout_s (default MPTS_FAST_DIST_TIMEOUT or 600): the longest a collective
    waits for the other ranks before failing, so a rank that died without closing its sockets cannot hang the rest."""
    device = torch.device(device)
    if not launched():
        return device
    device = local_device(device)
    if dist.is_initialized():
        return device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    seconds = timeout_seconds() if timeout_s is None else timeout_s
    bound = {}
    if backend == "nccl" and "device_id" in inspect.signature(dist.init_process_group).parameters:
        bound = {"device_id": device}  # torch >= 2.3: binds the communicator to this rank's GPU up front
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=seconds), **bound)
    return device


def teardown() -> None:
    """Leave the process group (at the end of a torchrun job; harmless when none is initialised)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def comm_device(group=None) -> torch.device:
    """Where collective buffers live: the current CUDA device for nccl, the CPU for gloo."""
    if is_distributed(group) and dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shard_bounds(n: int, rank_: int | None = None, world: int | None = None, *, align: int = 1) -> tuple[int, int]:
    """[lo, hi) of this rank's contiguous block of n items: blocks of `align` items split as evenly as possible
    (rank order = global order). align = the scoring batch size keeps every forward batch the same rows as in one
    process, so the scores, and hence the picks, are bit-identical."""
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world
    blocks = -(-n // align)
    lo = min(n, (blocks * rank_ // world) * align)
    hi = min(n, (blocks * (rank_ + 1) // world) * align)
    return lo, hi
