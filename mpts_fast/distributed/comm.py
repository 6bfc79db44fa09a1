"""The few collectives the distributed ops use, with one error for a peer that failed.

Every helper works without a process group (one process: it returns its input), so the distributed ops run
unchanged in a single process. Buffers are float64 (exact for float16/32/64 values and for indices below 2**53).
"""
from __future__ import annotations

from typing import Any, Callable, TypeVar

import torch
import torch.distributed as dist

from mpts_fast.distributed.group import comm_device, is_distributed, rank

T = TypeVar("T")


class PeerFailedError(RuntimeError):
    """A collective failed: another rank raised, was killed, or stopped answering within the timeout."""


def _guard(what: str, fn: Callable[[], T], group=None) -> T:
    try:
        return fn()
    except RuntimeError as e:  # DistBackendError / gloo connection errors / timeouts are RuntimeErrors
        raise PeerFailedError(f"{what}: a collective failed on rank {rank(group)}; another rank probably failed, was "
                              f"killed or timed out (its own message is the root cause; torchrun reports it). "
                              f"Backend said: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"
                              ) from e


def all_gather_rows(values: torch.Tensor, what: str, group=None) -> torch.Tensor:
    """values: (m,) on any device → (world, m) float64 on the CPU, row r from rank r (m equal on every rank)."""
    v = values.detach().to(device=comm_device(group), dtype=torch.float64).reshape(-1)
    if not is_distributed(group):
        return v.cpu().unsqueeze(0)
    out = torch.empty(dist.get_world_size(group), v.numel(), dtype=torch.float64, device=v.device)
    # all_gather into row views of one buffer: the list form exists in every torch >= 2.1 and on every backend
    _guard(what, lambda: dist.all_gather(list(out.unbind(0)), v, group=group), group)
    return out.cpu()


def broadcast_buffer(values: torch.Tensor, src: int, what: str, group=None) -> torch.Tensor:
    """values: (m,) meaningful on rank `src` (same shape elsewhere) → rank `src`'s values on every rank, float64 on
    the comm device (the GPU for nccl); callers move them where they need them."""
    v = values.detach().to(device=comm_device(group), dtype=torch.float64).reshape(-1).contiguous()
    if not is_distributed(group):
        return v
    global_src = dist.get_global_rank(group, src) if group is not None else src
    _guard(what, lambda: dist.broadcast(v, src=global_src, group=group), group)
    return v


def all_gather_objects(obj: Any, what: str, group=None) -> list[Any]:
    """Picklable `obj` from every rank, in rank order (used once per call, for metadata and errors)."""
    if not is_distributed(group):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size(group)
    _guard(what, lambda: dist.all_gather_object(out, obj, group=group), group)
    return out


def broadcast_object(obj: Any, src: int, what: str, group=None) -> Any:
    """Rank `src`'s picklable `obj` on every rank."""
    if not is_distributed(group):
        return obj
    box = [obj]
    global_src = dist.get_global_rank(group, src) if group is not None else src
    _guard(what, lambda: dist.broadcast_object_list(box, src=global_src, group=group), group)
    return box[0]


def raise_if_any(error: BaseException | None, what: str, group=None) -> None:
    """Every rank raises when any rank met `error` (the lowest such rank's, named), so none waits in a later
    collective for a rank that has already given up."""
    found = all_gather_objects(None if error is None else (type(error), str(error)), what, group)
    for r, item in enumerate(found):
        if item is not None:
            kind, message = item
            if error is not None and r == rank(group):
                try:
                    named = type(error)(f"rank {r}: {error}")
                except Exception:
                    raise error from None
                raise named from error
            exc_type = kind if isinstance(kind, type) and issubclass(kind, Exception) else RuntimeError
            try:
                raised = exc_type(f"rank {r}: {message}")
            except Exception:
                raised = RuntimeError(f"rank {r}: {message}")
            raise raised
