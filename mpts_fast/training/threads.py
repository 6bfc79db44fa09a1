"""Torch's intra-op threads for one training run, chosen from the size of its optimiser step.

A training step of the small models of AL experiments (the paper's tabular MLPs, the 1-D CNN) is a few MFLOP split
into dozens of tiny ops; sharing each op among threads costs more than it gives (and a thread waiting for a core
another process holds stalls every op). Measured on a 2-core machine
(`python -m bench training`, docs/benchmarks.md): the 16 → 256 → 26 MLP at batch 64 took 1.1-1.7 ms per step with
1 thread against 3.0-5.3 ms with torch's default 2, and a 5-round digits run 21 s against 100 s under load. So a
training whose step is below SMALL_STEP_FLOPS runs on one thread; larger ones keep torch's setting.

The rule is a function of the model and the batch only (FLOPs counted from its layers' shapes, torch's RNG untouched),
never of the machine's load, so a run's thread count, and hence its float reduction order, is the same every time.
On digits, picks and accuracies were identical with 1 and 2 threads (tests/test_training_threads.py checks the
weights of a short training).

The user's choice wins: with OMP_NUM_THREADS or MKL_NUM_THREADS exported, or torch.set_num_threads called after
mpts_fast was imported (a count other than the one torch had then), the count is left alone. A count set before
importing mpts_fast that equals torch's default cannot be told apart from the default; export OMP_NUM_THREADS then.
"""
from __future__ import annotations

import contextlib
import math
import os
from typing import Callable, Iterator

import torch
from torch import nn

# One thread below this many FLOPs per optimiser step (forward + backward of one batch, torch's flop counter). The
# paper's MLPs are 2-50 MFLOP, the MNIST-1D CNN 19. Measured at load 5-7 on 2 cores (1 thread / 2 threads, time per
# step): MLP 784->256->10 at batch 64 (52 MFLOP) 0.12, 838 MFLOP 0.43, a 32x32 ResNet-18 at batch 32 (107 GFLOP) 0.54:
# under load one thread won everywhere; on a quiet machine large GEMMs do use both cores, so models above 1 GFLOP a
# step keep torch's setting.
SMALL_STEP_FLOPS = 1e9

_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_THREADS_AT_IMPORT = torch.get_num_threads()
_CHOSEN = False  # set in a worker process of parallel runs whose parent's user fixed the count


def user_chose_threads() -> bool:
    """Whether the user fixed torch's intra-op threads (an exported OMP_NUM_THREADS / MKL_NUM_THREADS, or
    torch.set_num_threads to another count since this module was imported)."""
    return (_CHOSEN or any(os.environ.get(v, "").strip() for v in _THREAD_ENV)
            or torch.get_num_threads() != _THREADS_AT_IMPORT)


def adopt_threads(threads: int, chosen: bool) -> None:
    """In a worker process of parallel runs (mpts_fast/parallel_runs.py): torch's count becomes `threads`, taken as
    the default the rule may lower (chosen=False: the process's share of the cores) or as the user's choice."""
    global _THREADS_AT_IMPORT, _CHOSEN
    torch.set_num_threads(threads)
    _THREADS_AT_IMPORT, _CHOSEN = threads, chosen


def step_flops(model_factory: Callable[[], nn.Module], input_shape: tuple[int, ...], batch: int,
               num_classes: int | None = None) -> float | None:
    """FLOPs of one training step (forward + backward of cross-entropy on a (batch, *input_shape) batch), counted
    from the shapes of the model's Linear and convolution layers in a forward pass of one row, times the batch: each
    layer's forward product, its weight gradient, and its input gradient except for the first layer (its input is the
    data). This is torch.utils.flop_counter's count for such models without its cost: any TorchDispatchMode (and
    the meta device) imports torch._dynamo, ~1 s at the first call in a process, a tenth of a small `compare`. The
    model is built and run on the CPU with torch's random state saved and restored. None when the model cannot be
    built or run on one zero row (the caller keeps torch's threads)."""
    counted: list[int] = []

    def count(module: nn.Module, inputs, output) -> None:
        if isinstance(module, nn.Linear):
            counted.append(2 * module.in_features * output.numel())
        else:  # a convolution: every output element is a (C_in / groups)·kernel dot product
            kernel = math.prod(module.kernel_size) * (module.in_channels // module.groups)
            counted.append(2 * kernel * output.numel())

    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            model = model_factory()
            model.eval()  # shapes as in training; BatchNorm takes one row
            hooks = [m.register_forward_hook(count) for m in model.modules()
                     if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
            model(torch.zeros(1, *input_shape))
            for h in hooks:
                h.remove()
    except Exception:  # an exotic model (a library's, custom ops) that cannot run on a zero row: no choice made
        return None
    if not counted:
        return 0.0
    return float(batch * (3 * sum(counted) - counted[0]))


def threads_for(flops: float | None) -> int | None:
    """The intra-op thread count a step of `flops` FLOPs trains with: 1 below SMALL_STEP_FLOPS, else None (torch's
    own setting)."""
    return 1 if flops is not None and flops < SMALL_STEP_FLOPS else None


@contextlib.contextmanager
def training_threads(flops: float | None, device: torch.device) -> Iterator[int]:
    """Within the block torch trains on the thread count the rule gives for a step of `flops` FLOPs (CPU training,
    the user's explicit setting left alone); restored on exit. Yields the count in effect."""
    want = threads_for(flops) if device.type == "cpu" and not user_chose_threads() else None
    saved = torch.get_num_threads()
    if want is None or want == saved:
        yield saved
        return
    torch.set_num_threads(want)
    try:
        yield want
    finally:
        torch.set_num_threads(saved)
