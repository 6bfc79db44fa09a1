"""Diversity selection on large pools: greedy k-center (Coreset), k-means++ seeding and BADGE.

The public entry points are :func:`mpts_fast.ops.kcenter_greedy`, :func:`mpts_fast.ops.kmeanspp`
and :func:`mpts_fast.ops.badge_select`; this package holds their pieces:

- ``validate``: argument checks (errors name the argument).
- ``nearest``: the initial squared distance of every row to its nearest labeled row (faiss on
  CPU when installed, else a chunked GEMM; never an N x L matrix), refined exactly.
- ``seeding``: first picks (farthest from the mean, largest norm, uniform) and the uniforms
  drawn from a torch.Generator.
- ``engine``: the three flows, running the fused per-pick loops of ``mpts_fast._C``
  (csrc/kernels/select.h) or the plain-PyTorch loops of :mod:`mpts_fast.reference`.
"""
from mpts_fast.coverage.engine import badge_select, kcenter_greedy, kmeanspp

__all__ = ["kcenter_greedy", "kmeanspp", "badge_select"]
