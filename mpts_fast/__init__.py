"""mpts-fast: deep active learning with fast C++/CUDA kernels.

The public drop-in ops live in :mod:`mpts_fast.ops`.
"""

__version__ = "0.1.0"

import os as _os
import sys as _sys

if "torch" not in _sys.modules and "OMP_WAIT_POLICY" not in _os.environ:
    # libgomp (torch's OpenMP, and so ours) reads its wait policy once, when torch loads it. By
    # default an idle worker spins for 300,000 pauses (~10 ms on this project's AMD CPU) after
    # every parallel region before it sleeps: where other processes hold cores, that spinning
    # worker keeps a core the main thread needs (badge_select with one core held: 100-120 ms
    # calls instead of 11 quiet). 3,000 spins removed those tails and kept quiet timings (`make run` 9.6 s vs
    # 9.4 s; OMP_WAIT_POLICY=PASSIVE, no spinning, cost 45% there: training launches many small
    # parallel ops). Measured in bench/README.md, "Contended measurement". Only a default: an
    # exported GOMP_SPINCOUNT or OMP_WAIT_POLICY wins, and a program that imported torch first
    # keeps whatever torch loaded with.
    _os.environ.setdefault("GOMP_SPINCOUNT", "3000")

from mpts_fast import ops  # noqa: E402,F401
from mpts_fast.ops import SnapshotAccumulator, SnapshotScores  # noqa: E402,F401


def select_next(*args, **kwargs):
    """The unlabeled pool items to annotate next (`mpts-fast select`); see :func:`mpts_fast.select.select_next`.
    Imported on first call, so `import mpts_fast` stays light."""
    from mpts_fast.select import select_next as _select_next

    return _select_next(*args, **kwargs)
