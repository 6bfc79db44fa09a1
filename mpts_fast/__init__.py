"""mpts-fast: deep active learning with fast C++/CUDA kernels.

The public drop-in ops live in :mod:`mpts_fast.ops`.
"""

__version__ = "0.1.0"

from mpts_fast import ops  # noqa: E402,F401
from mpts_fast.ops import SnapshotAccumulator, SnapshotScores  # noqa: E402,F401
