"""The MPTS regulariser (MPTS Eq. 6–7): biased MMD² between labeled embeddings and embeddings of a batch from L ∪ U."""
from __future__ import annotations

import torch

from mpts_fast import _checks, ops


def mmd_penalty(
    z_labeled: torch.Tensor, z_all: torch.Tensor, num_kernels: int = 5, *, check_finite: bool | None = None
) -> torch.Tensor:
    """MMD²(Z_L, Z_*) under the DAN ladder Σ_q exp(−‖a−b‖²/(2σ_q²)), 2σ_q² = h·2^(q−num_kernels//2), h = mean pairwise
    squared distance of the joint batch (no gradient through h; never read to the host). Gradients flow into both
    embeddings.

    z_labeled: (n, D), z_all: (m, D) → 0-dim tensor.

    check_finite: True raises ValueError naming z_labeled or z_all when an embedding holds NaN/inf (a diverged model);
    False leaves that to the result, which is then NaN, with no host read (nothing waits on the GPU); None (the default)
    checks where the embeddings are in host memory, where the check waits on nothing, and not on an accelerator or
    while torch.compile traces.
    """
    num_kernels = _checks.integer(num_kernels, "num_kernels", minimum=1, what="a positive number of kernels")
    if check_finite is None:
        check_finite = isinstance(z_labeled, torch.Tensor) and z_labeled.device.type == "cpu" and not torch.compiler.is_compiling()
    if check_finite:
        for name, z in (("z_labeled", z_labeled), ("z_all", z_all)):
            _checks.tensor(z, name, 2)
            try:
                _checks.finite(z, name)
            except ValueError as exc:
                raise ValueError(f"{exc}: the embeddings diverged (try a lower learning rate or mmd_weight)") from None
    return ops.rbf_mmd2_ladder(z_labeled, z_all, num_kernels, 2.0, estimator="biased")
