"""Sharded pool scoring for the AL loop's strategies: each rank scores its contiguous block of the unlabeled items
(the posterior passes stream only that block through ops.SnapshotAccumulator), then the top-b are merged exactly.

Shards are cut at multiples of the scoring batch (TrainedModel.eval_batch_size), so every forward batch holds the
same rows as in one process and the scores are bit-identical; the picks then equal the single-process picks.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch

from mpts_fast import _checks
from mpts_fast.distributed.comm import all_gather_objects, all_gather_rows
from mpts_fast.distributed.group import shard_bounds

if TYPE_CHECKING:
    from mpts_fast.strategies.base import ScoreStrategy, SelectionContext


def merged_top_k(local_scores: torch.Tensor, k: int, offset: int, *, largest: bool = True, group=None) -> torch.Tensor:
    """Global positions of the k best scores over every rank's (n_r,) block starting at global position `offset`,
    compared in float32 as strategies.base.top_k, ties to the lowest global position; the same on every rank.

    Each rank sends its own top-k (value, position) pairs: one all-gather of 2k numbers per rank."""
    _checks.int_option(k, "k", minimum=0)
    vals = local_scores.detach().float().cpu().reshape(-1)
    order = torch.sort(vals, descending=largest, stable=True).indices[:k]
    cand = torch.full((k, 2), -1.0, dtype=torch.float64)  # unused slots: index -1, dropped after the gather
    cand[:, 0] = -torch.inf if largest else torch.inf
    cand[: order.numel(), 0] = vals[order].double()
    cand[: order.numel(), 1] = (order + offset).double()
    gathered = all_gather_rows(cand.reshape(-1), "top-k merge", group).reshape(-1, 2)
    gathered = gathered[gathered[:, 1] >= 0]
    if gathered.shape[0] < k:
        raise ValueError(f"k = {k} exceeds the {gathered.shape[0]} scored items over all ranks")
    by_index = gathered[torch.sort(gathered[:, 1], stable=True).indices]
    best = torch.sort(by_index[:, 0].float(), descending=largest, stable=True).indices[:k]
    return by_index[best, 1].long()


def shard_context(ctx: "SelectionContext", align: int) -> tuple["SelectionContext", int]:
    """(ctx restricted to this rank's block of ctx.unlabeled, the block's first position). The block's extras are
    its own dict, so per-shard figures do not leak into the round's record; its block_of says where the block lies
    (MC dropout draws the masks one process would draw for it)."""
    n = ctx.unlabeled.numel()
    lo, hi = shard_bounds(n, align=align)
    return dataclasses.replace(ctx, unlabeled=ctx.unlabeled[lo:hi], extras={}, block_of=(lo, n)), lo


def _merge_diversity(records: list[dict | None]) -> dict | None:
    """The round's diversity record from the shards' records: counts add, per-item means are item-weighted; the
    Spearman correlation needs every item's ranks together, so it is None under sharding (said in 'sharded')."""
    present = [r for r in records if r]
    if not present:
        return None
    items = sum(r["items"] for r in present)
    merged = dict(present[0])
    merged["items"] = items
    for key in ("disagreement", "mutual_information"):
        merged[key] = (sum(r[key] * r["items"] for r in present) / items) if items else 0.0
    merged["entropy_spearman"] = None
    merged["sharded"] = len(records)
    return merged


def _record_diversity(shard_ctx: "SelectionContext", ctx: "SelectionContext") -> None:
    merged = _merge_diversity(all_gather_objects(shard_ctx.extras.get("diversity"), "diversity record"))
    if merged is not None:
        ctx.extras["diversity"] = merged


def sharded_score_select(strategy: "ScoreStrategy", ctx: "SelectionContext", budget: int) -> torch.Tensor:
    """ScoreStrategy.select with the scoring sharded over the ranks: (budget,) pool indices, the same on every rank."""
    shard_ctx, offset = shard_context(ctx, ctx.trained.eval_batch_size)
    values = strategy.item_scores(shard_ctx)
    positions = merged_top_k(values, budget, offset, largest=strategy.largest)
    if strategy.measures_diversity:  # a class attribute: every rank takes this branch
        _record_diversity(shard_ctx, ctx)
    return ctx.unlabeled[positions.to(ctx.unlabeled.device)]


def sharded_diversity(strategy: "ScoreStrategy", ctx: "SelectionContext") -> None:
    """The last round's diversity record (no selection), its posterior passes sharded as in selection, so no rank
    streams the whole pool through the snapshots."""
    shard_ctx, _ = shard_context(ctx, ctx.trained.eval_batch_size)
    strategy.scores(shard_ctx)
    _record_diversity(shard_ctx, ctx)
