"""The public drop-in ops. Each runs the native kernel (C++/OpenMP on CPU, CUDA on GPU) when one
serves the tensors' device and dtype, and the plain-PyTorch version in
:mod:`mpts_fast.reference` otherwise (see :mod:`mpts_fast._native` for MPTS_FAST_BACKEND).

Dtypes: float32 and float64 on CPU; float32, float16 and bfloat16 on CUDA (fp32 accumulation;
float64 on CUDA runs the reference). float16/bfloat16 on CPU are computed in float32.

One module per op family, each holding its public functions, the fakes (meta implementations)
of its kernels and their autograd: :mod:`~mpts_fast.ops.mmd`, :mod:`~mpts_fast.ops.snapshot`,
:mod:`~mpts_fast.ops.output_sensitivity`, :mod:`~mpts_fast.ops.selection`; the dtype policy and
the native-or-reference choice they share live in :mod:`~mpts_fast.ops.dispatch`.
"""
from __future__ import annotations

from mpts_fast import _native  # noqa: F401  (tests ask ops._native which devices have kernels)
from mpts_fast._types import SnapshotScores
from mpts_fast.ops.mmd import BandwidthArg, mmd_bandwidths, rbf_mmd2, rbf_mmd2_ladder
from mpts_fast.ops.output_sensitivity import sensitivity, sensitivity_matrix
from mpts_fast.ops.selection import LabeledArg, badge_select, kcenter_greedy, kmeanspp
from mpts_fast.ops.snapshot import SnapshotAccumulator, snapshot_uncertainty

# Internals the tests pin (the norm codes of the sensitivity kernel, the logits dtype of the
# accumulator's kernel); BandwidthArg and LabeledArg type the sigmas and labeled arguments.
from mpts_fast.ops.output_sensitivity import _NORM_CODES  # noqa: E402,F401
from mpts_fast.ops.snapshot import _accumulate_logits_dtype  # noqa: E402,F401

__all__ = [
    "rbf_mmd2",
    "rbf_mmd2_ladder",
    "mmd_bandwidths",
    "snapshot_uncertainty",
    "SnapshotAccumulator",
    "SnapshotScores",
    "sensitivity",
    "sensitivity_matrix",
    "kcenter_greedy",
    "kmeanspp",
    "badge_select",
]
