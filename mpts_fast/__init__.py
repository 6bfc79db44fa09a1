"""mpts-fast: deep active learning with fast C++/CUDA kernels.

The public drop-in ops live in :mod:`mpts_fast.ops`.
"""

__version__ = "0.1.0"

from mpts_fast import ops  # noqa: E402,F401
from mpts_fast.ops import SnapshotAccumulator, SnapshotScores  # noqa: E402,F401


def select_next(*args, **kwargs):
    """The unlabeled pool items to annotate next (`mpts-fast select`); see :func:`mpts_fast.next_batch.select_next`.
    Imported on first call, so `import mpts_fast` stays light."""
    from mpts_fast.next_batch import select_next as _select_next

    return _select_next(*args, **kwargs)
