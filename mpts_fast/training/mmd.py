"""The MPTS regulariser (SPEC §1.2–1.3): biased MMD² between labeled embeddings and embeddings of a batch from L ∪ U."""
from __future__ import annotations

import torch

from mpts_fast import ops


def mmd_penalty(z_labeled: torch.Tensor, z_all: torch.Tensor, num_kernels: int = 5) -> torch.Tensor:
    """MMD²(Z_L, Z_*) under the DAN ladder Σ_q exp(−‖a−b‖²/(2σ_q²)), 2σ_q² = h·2^(q−2), h = mean pairwise squared distance
    of the joint batch (no gradient through h). Gradients flow into both embeddings.

    z_labeled: (n, D), z_all: (m, D) → 0-dim tensor.
    """
    if num_kernels == 5:
        # rbf_mmd2's default bandwidths are exactly this ladder, computed inside the op without another validation pass
        return ops.rbf_mmd2(z_labeled, z_all, None, estimator="biased")
    with torch.no_grad():
        sigmas = ops.mmd_bandwidths(z_labeled.detach(), z_all.detach(), num=num_kernels, mul=2.0)
    return ops.rbf_mmd2(z_labeled, z_all, sigmas, estimator="biased")
