"""Greedy k-center, k-means++ and BADGE over a pool sharded across ranks: each rank passes its contiguous block of
rows (rank order = global order) and every rank gets the same (k,) global row indices, equal to what
mpts_fast.ops picks on the whole pool with the same generator.

Per pick, on every rank:
  1. the fused local kernel of mpts_fast._C (or the reference loop) folds the newest centre into the rank's
     min-distance state `mind`;
  2. one small all-gather: k-center sends (largest mind, its global index), the lowest global index winning ties as
     in one process; k-means++/BADGE send (sum of the weights, eligible rows), and the winner is found by inverting
     the global CDF with the pick's uniform, which every rank holds (drawn from the shared generator, rank 0's copy
     broadcast once);
  3. one broadcast from the winner's owner: its row (k-center, k-means++: d numbers; BADGE: q, h and |g|^2,
     C + D + 1 numbers) and its global index.

Reusing the fused kernels: their entry points run whole pick loops over one tensor, so each rank keeps its shard
behind two extra rows (one copy of the shard): row 1 holds the newest centre and is given as `first`, row 0 is a
sentinel that wins the kernel's own pick (inf features; mind +inf for the arg-max, weight 1 with u = 0 for the
draws), so a 2-pick call is exactly "fold centre row 1 into mind" and leaves the shard's mind untouched otherwise.
The per-row distances are therefore the very numbers the single-process kernel computes.

Exactness of the draws: the global total and the running sums are float64 sums in another grouping than the
kernel's 512-row blocks; they agree exactly whenever those float64 sums are exact (float32 weights spanning less than
~2**29 / N in ratio), and otherwise can differ only when a uniform lands within rounding of a CDF boundary.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from mpts_fast import _checks, reference
from mpts_fast.distributed.comm import all_gather_objects, all_gather_rows, broadcast_buffer, raise_if_any
from mpts_fast.distributed.group import rank as _rank
from mpts_fast.coverage import engine, nearest, seeding, validate

_INF = float("inf")


@dataclass(frozen=True)
class Shard:
    """This rank's place in the pool. sizes, labeled: rows and labeled rows of every rank, in rank order."""

    rank: int
    sizes: tuple[int, ...]
    labeled: tuple[int, ...]

    @property
    def offset(self) -> int:
        return sum(self.sizes[: self.rank])

    @property
    def n(self) -> int:
        return self.sizes[self.rank]

    @property
    def total(self) -> int:
        return sum(self.sizes)

    @property
    def labeled_total(self) -> int:
        return sum(self.labeled)

    def owner(self, g: int) -> tuple[int, int]:
        """(rank holding global row g, its local index there)."""
        start = 0
        for r, size in enumerate(self.sizes):
            if g < start + size:
                return r, g - start
            start += size
        raise IndexError(f"global row {g} is outside the pool of {self.total} rows")


def _rows_ok(x, name: str) -> None:
    """A shard may be empty (0 rows) but must be 2-D with columns; non-empty shards get the full checks."""
    if isinstance(x, torch.Tensor) and x.dim() == 2 and x.shape[0] == 0 and x.shape[1] >= 1:
        return
    validate.features(x, name)


def _agree(op: str, n: int, cols: tuple[int, ...], k, mask_fn: Callable[[], torch.Tensor | None],
           check: Callable[[], None], group) -> tuple[Shard, int, torch.Tensor | None]:
    """Runs the local checks, then one all-gather of every rank's (rows, columns, k, labeled rows, error): every
    rank raises the same error if any rank's input is bad or the ranks disagree, so none is left waiting."""
    error, mask, n_lab = None, None, 0
    try:
        check()
        k = validate.count(k)
        mask = mask_fn()
        n_lab = 0 if mask is None else int(mask.sum())
    except (TypeError, ValueError) as e:
        error = e
    raise_if_any(error, f"{op}: checking the shards", group)
    infos = all_gather_objects((n, cols, k, n_lab), f"{op}: checking the shards", group)
    for r, (_, c, kk, _) in enumerate(infos):
        if c != infos[0][1]:
            raise ValueError(f"{op}: every rank's shard must have the same columns; rank 0 has {infos[0][1]}, "
                             f"rank {r} has {c}")
        if kk != infos[0][2]:
            raise ValueError(f"{op}: k must be the same on every rank; rank 0 passed {infos[0][2]}, rank {r} {kk}")
    shard = Shard(_rank(group), tuple(i[0] for i in infos), tuple(i[3] for i in infos))
    free = shard.total - shard.labeled_total
    if k > free:
        what = "unlabeled rows" if shard.labeled_total else "rows"
        raise ValueError(f"k: expected at most the {free} {what} that can be picked (over all {len(infos)} ranks), got {k}")
    return shard, k, mask


def _gather_labeled(rows: torch.Tensor, mask: torch.Tensor | None, shard: Shard, op: str, group) -> torch.Tensor:
    """The labeled rows of every rank, (L, cols) in global order, in rows' dtype on rows' device."""
    width = rows.shape[1]
    most = max(shard.labeled)
    mine = rows[mask] if mask is not None else rows[:0]
    padded = torch.zeros(most, width, dtype=torch.float64, device=rows.device)
    padded[: mine.shape[0]] = mine.double()
    gathered = all_gather_rows(padded.reshape(-1), f"{op}: gathering the labeled rows", group)
    parts = [gathered[r].reshape(most, width)[:count] for r, count in enumerate(shard.labeled)]
    return torch.cat(parts).to(device=rows.device, dtype=rows.dtype)


def _argmax_winner(values: torch.Tensor, shard: Shard, op: str, group) -> int:
    """Global index of the largest value (values < 0 are ineligible); ties go to the lowest global index."""
    if values.numel():
        i = int(values.argmax())  # the first maximum: the lowest local index
        mine = [float(values[i]), float(shard.offset + i)]
    else:
        mine = [-_INF, -1.0]
    g = all_gather_rows(torch.tensor(mine, dtype=torch.float64), f"{op}: finding the pick", group)
    best = float(g[:, 0].max())
    return int(min(float(idx) for v, idx in g.tolist() if v == best and idx >= 0))


def _draw_winner(mind: torch.Tensor, u: float, shard: Shard, op: str, group) -> tuple[int, int]:
    """(owner rank, local index on the owner or -1 elsewhere) of row i drawn with probability mind_i / sum over the
    eligible rows (mind >= 0) of all ranks; the floor(u * count)-th eligible row when every weight is 0 (as the
    single-process kernel and reference._draw)."""
    w = mind.clamp_min(0).double()
    cs = torch.cumsum(w, 0)
    eligible = int((mind >= 0).sum())
    mine = [float(cs[-1]) if w.numel() else 0.0, float(eligible)]
    g = all_gather_rows(torch.tensor(mine, dtype=torch.float64), f"{op}: drawing the pick", group).tolist()
    total = 0.0
    for tot, _ in g:
        total += tot
    me = shard.rank
    if total > 0 and total != _INF:
        target = u * total
        prefix, owner = 0.0, -1
        for r, (tot, _) in enumerate(g):
            if tot > 0 and prefix + tot > target:
                owner = r
                break
            prefix += tot
        if owner < 0:  # rounding put the target at or past the end: the last positive-weight row
            owner = max(r for r, (tot, _) in enumerate(g) if tot > 0)
            target = _INF
        if owner != me:
            return owner, -1
        i = int(torch.searchsorted(cs + prefix, torch.tensor([target], dtype=torch.float64, device=cs.device),
                                   right=True)[0])
        if i < w.shape[0] and w[i] > 0:
            return owner, i
        positive = (w[: min(i, w.shape[0] - 1) + 1] > 0).nonzero().squeeze(1)
        return owner, int(positive[-1])
    count = int(sum(c for _, c in g))
    j = min(int(u * count), count - 1)
    for r, (_, c) in enumerate(g):
        if j < c:
            if r != me:
                return r, -1
            return r, int((mind >= 0).nonzero()[j, 0])
        j -= int(c)
    raise RuntimeError(f"{op}: no eligible row is left to draw")  # excluded by the k check of _agree


def _pick_loop(k: int, mind: torch.Tensor, shard: Shard, first: tuple[int, int] | None, u: torch.Tensor | None,
               row_of: Callable[[int], torch.Tensor], width: int, fold: Callable[[torch.Tensor], None],
               op: str, group) -> list[int]:
    """The per-pick loop shared by the three ops. first: (owner rank, local index there or -1 elsewhere) of pick 0,
    or None to take pick 0 from mind;
    u: (k,) uniforms for draws, None for the arg-max; row_of(local) → (width,) the buffer a centre is sent as;
    fold(buffer) folds a centre into mind."""
    picks: list[int] = []
    uu = u.tolist() if u is not None else None
    centre = None
    for t in range(k):
        if t == 0 and first is not None:
            owner, local = first
        else:
            if t > 0:
                fold(centre)
            if uu is None:
                owner, local = shard.owner(_argmax_winner(mind, shard, op, group))
                local = local if owner == shard.rank else -1
            else:
                owner, local = _draw_winner(mind, uu[t], shard, op, group)
        buf = torch.zeros(width + 1, dtype=torch.float64, device=mind.device)
        if owner == shard.rank:
            mind[local] = -1
            buf[:width] = row_of(local).double()
            buf[width] = shard.offset + local
        centre = broadcast_buffer(buf, owner, f"{op}: sending pick {t}", group).to(mind.device)
        picks.append(int(centre[width]))
    return picks


def _with_slots(rows: torch.Tensor, sentinel: float) -> torch.Tensor:
    """(n + 2, cols) copy: row 0 = sentinel value, row 1 = the centre slot, rows 2.. = rows."""
    out = torch.empty(rows.shape[0] + 2, rows.shape[1], dtype=rows.dtype, device=rows.device)
    out[0] = sentinel
    out[1] = 0
    out[2:] = rows
    return out


def _mind_with_slots(mind: torch.Tensor) -> torch.Tensor:
    out = torch.empty(mind.shape[0] + 2, dtype=mind.dtype, device=mind.device)
    out[2:] = mind
    return out


def _shared_uniforms(k: int, generator: torch.Generator | None, device: torch.device, op: str, group) -> torch.Tensor:
    """k uniforms from the shared generator, drawn on every rank (each generator advances as in one process), then
    rank 0's broadcast so the ranks agree even if their generators were seeded differently."""
    u = seeding.uniforms(k, generator, torch.device("cpu"))
    return broadcast_buffer(u, 0, f"{op}: sharing the uniforms", group).to(device)


def _features_fold(xb: torch.Tensor, mindb: torch.Tensor, native: bool, draws: bool) -> Callable[[torch.Tensor], None]:
    d = xb.shape[1]
    zeros_u = torch.zeros(2, dtype=torch.float64, device=xb.device)

    def fold(centre: torch.Tensor) -> None:
        xb[1] = centre[:d].to(xb.dtype)
        mindb[0] = 1.0 if draws else _INF  # the sentinel wins the kernel's pick 1 (u = 0 / arg-max)
        mindb[1] = 0.0
        if draws:
            (torch.ops.mpts_fast.select_kmeanspp(xb, mindb, 1, 2, zeros_u) if native
             else reference.kmeanspp_loop(xb, mindb, 1, 2, zeros_u))
        else:
            (torch.ops.mpts_fast.select_kcenter(xb, mindb, 1, 2) if native
             else reference.kcenter_loop(xb, mindb, 1, 2))

    return fold


def _initial_mind(x: torch.Tensor, mask: torch.Tensor | None, shard: Shard, dtype: torch.dtype, op: str,
                  group, native: bool) -> torch.Tensor:
    if not shard.labeled_total:
        return torch.full((x.shape[0],), _INF, dtype=dtype, device=x.device)
    lab = _gather_labeled(x, mask, shard, op, group)
    z = torch.cat([x, lab])
    zmask = torch.zeros(z.shape[0], dtype=torch.bool, device=x.device)
    zmask[x.shape[0]:] = True
    # the same kernel as one process (engine._initial_state) takes, so both find the same minima
    mind = nearest.min_sqdist_to_labeled(z, zmask, dtype, native=native)[: x.shape[0]].clone()
    if mask is not None:
        mind[mask] = -1
    return mind


def _farthest_from_mean(x: torch.Tensor, shard: Shard, op: str, group) -> int:
    total = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    for _, c in seeding._row_chunks(x):
        total += c.sum(0, dtype=torch.float64)
    mean = all_gather_rows(total, f"{op}: the pool mean", group).sum(0).to(x.device) / shard.total
    dist = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
    for s, c in seeding._row_chunks(x):
        dist[s: s + c.shape[0]] = (c.double() - mean).pow_(2).sum(1)
    return _argmax_winner(dist, shard, op, group)


def _masked(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return values if mask is None else values.masked_fill(mask, -1.0)


def kcenter_greedy(local_features: torch.Tensor, k: int, labeled=None, *, group=None) -> torch.Tensor:
    """Greedy k-center over the pool formed by every rank's `local_features` (n_r, d), rows in rank order.

    labeled: this rank's labeled rows (bool mask (n_r,) or local row indices; None/empty: none here). A shard may be
    empty. Returns (k,) int64 global row indices in pick order, the same on every rank, equal to
    ops.kcenter_greedy on the concatenated pool. Memory: one copy of the shard plus O(n_r + L d)."""
    op = "kcenter_greedy"
    n = local_features.shape[0] if isinstance(local_features, torch.Tensor) else -1
    cols = tuple(local_features.shape[1:]) if isinstance(local_features, torch.Tensor) else ()
    shard, k, mask = _agree(op, n, cols, k, lambda: validate.labeled_mask(labeled, n, local_features.device),
                            lambda: _rows_ok(local_features, "local_features"), group)
    with torch.no_grad():
        x, dtype, native = engine._prepare(local_features.detach(), op)
        mind = _initial_mind(x, mask, shard, dtype, op, group, native)
        first = None if shard.labeled_total else shard_first(_farthest_from_mean(x, shard, op, group), shard)
        xb, mindb = _with_slots(x, _INF), _mind_with_slots(mind)
        picks = _pick_loop(k, mindb[2:], shard, first, None, lambda i: x[i], x.shape[1],
                           _features_fold(xb, mindb, native, draws=False), op, group)
    return torch.tensor(picks, dtype=torch.long, device=local_features.device)


def kmeanspp(local_features: torch.Tensor, k: int, *, generator: torch.Generator | None = None,
             first: str = "norm", labeled=None, group=None) -> torch.Tensor:
    """k-means++ seeding over the sharded pool, as ops.kmeanspp (first="norm" or "random"). Every rank passes a
    generator in the same state (the usual case: the same seed); rank 0's uniforms are used. Returns (k,) int64
    global row indices, the same on every rank."""
    op = "kmeanspp"
    n = local_features.shape[0] if isinstance(local_features, torch.Tensor) else -1
    cols = tuple(local_features.shape[1:]) if isinstance(local_features, torch.Tensor) else ()

    def check() -> None:
        _rows_ok(local_features, "local_features")
        _checks.choice(first, "first", ("norm", "random"))
        validate.generator(generator)

    shard, k, mask = _agree(op, n, cols, k, lambda: validate.labeled_mask(labeled, n, local_features.device),
                            check, group)
    with torch.no_grad():
        x, dtype, native = engine._prepare(local_features.detach(), op)
        u = _shared_uniforms(k, generator, x.device, op, group)
        if first == "norm":
            first_g = shard_first(_argmax_winner(_masked(seeding.row_sqnorms(x), mask), shard, op, group), shard)
        else:
            first_g = _uniform_free_row(float(u[0]), mask, shard)
        mind = _initial_mind(x, mask, shard, dtype, op, group, native)
        xb, mindb = _with_slots(x, _INF), _mind_with_slots(mind)
        picks = _pick_loop(k, mindb[2:], shard, first_g, u, lambda i: x[i], x.shape[1],
                           _features_fold(xb, mindb, native, draws=True), op, group)
    return torch.tensor(picks, dtype=torch.long, device=local_features.device)


def _uniform_free_row(u0: float, mask: torch.Tensor | None, shard: Shard) -> tuple[int, int]:
    """(owner, local index on the owner or -1 elsewhere) of the floor(u0 * m)-th of the m unlabeled rows of the pool
    (seeding.uniform_row over the whole pool); every rank knows the free rows per rank, only the owner its mask."""
    free = [s - lab for s, lab in zip(shard.sizes, shard.labeled)]
    j = min(int(u0 * sum(free)), sum(free) - 1)
    for r, f in enumerate(free):
        if j < f:
            if r != shard.rank:
                return r, -1
            return r, (j if mask is None else int((~mask).nonzero()[j, 0]))
        j -= f
    raise RuntimeError("kmeanspp: no unlabeled row to start from")  # excluded by the k check of _agree


def badge_select(local_probs: torch.Tensor, local_embeddings: torch.Tensor, k: int, *,
                 generator: torch.Generator | None = None, labeled=None, group=None) -> torch.Tensor:
    """BADGE over the sharded pool, as ops.badge_select: this rank's softmax outputs (n_r, C) and penultimate
    embeddings (n_r, D). Each pick reads the shard's C + D numbers per row and sends C + D + 2 numbers from the
    winner's owner. Returns (k,) int64 global row indices, the same on every rank."""
    op = "badge_select"
    ok = isinstance(local_probs, torch.Tensor) and isinstance(local_embeddings, torch.Tensor)
    n = local_probs.shape[0] if ok else -1
    cols = (tuple(local_probs.shape[1:]), tuple(local_embeddings.shape[1:])) if ok else ()

    def check() -> None:
        if ok and local_probs.dim() == 2 and local_embeddings.dim() == 2 and local_probs.shape[0] == 0 \
                and local_embeddings.shape[0] == 0 and local_probs.shape[1] >= 1 and local_embeddings.shape[1] >= 1:
            pass  # an empty shard
        else:
            validate.probs_and_embeddings(local_probs, local_embeddings)
        validate.generator(generator)

    shard, k, mask = _agree(op, n, cols, k, lambda: validate.labeled_mask(labeled, n, local_probs.device), check,
                            group)
    with torch.no_grad():
        h, dtype, native = engine._prepare(local_embeddings.detach(), op)
        q = engine.badge_factors(local_probs.detach(), h, dtype)
        u = _shared_uniforms(k, generator, h.device, op, group)
        a = torch.ops.mpts_fast.select_badge_sqnorms(q, h) if native and q.shape[0] else reference.badge_sqnorms(q, h)
        if shard.labeled_total:
            lab = _gather_labeled(torch.cat([q, h.to(q.dtype)], 1), mask, shard, op, group)
            C = q.shape[1]
            zq, zh = torch.cat([q, lab[:, :C]]), torch.cat([h, lab[:, C:].to(h.dtype)])
            zmask = torch.zeros(zq.shape[0], dtype=torch.bool, device=q.device)
            zmask[q.shape[0]:] = True
            mind = nearest.min_sqdist_to_labeled_badge(zq, zh, zmask, dtype)[: q.shape[0]].clone()
            if mask is not None:
                mind[mask] = -1
        else:
            mind = torch.full((q.shape[0],), _INF, dtype=dtype, device=q.device)
        first_g = _argmax_winner(_masked(a, mask), shard, op, group)  # the largest gradient embedding
        C, D = q.shape[1], h.shape[1]
        qb, hb = _with_slots(q, 0.0), _with_slots(h, 0.0)
        ab, mindb = _mind_with_slots(a), _mind_with_slots(mind)
        ab[0] = _INF  # the sentinel: |g|^2 = inf, so its distance to any centre is inf and its weight stays 1
        zeros_u = torch.zeros(2, dtype=torch.float64, device=q.device)

        def fold(centre: torch.Tensor) -> None:
            qb[1] = centre[:C].to(qb.dtype)
            hb[1] = centre[C: C + D].to(hb.dtype)
            ab[1] = centre[C + D].to(ab.dtype)
            mindb[0], mindb[1] = 1.0, 0.0
            (torch.ops.mpts_fast.select_badge_kmeanspp(qb, hb, ab, mindb, 1, 2, zeros_u) if native
             else reference.badge_loop(qb, hb, ab, mindb, 1, 2, zeros_u))

        def row_of(i: int) -> torch.Tensor:
            return torch.cat([q[i].double(), h[i].double(), a[i].double().reshape(1)])

        picks = _pick_loop(k, mindb[2:], shard, shard_first(first_g, shard), u, row_of, C + D + 1, fold, op, group)
    return torch.tensor(picks, dtype=torch.long, device=local_probs.device)


def shard_first(g: int, shard: Shard) -> tuple[int, int]:
    """(owner, local index on the owner or -1 elsewhere) of global row g."""
    owner, local = shard.owner(g)
    return owner, (local if owner == shard.rank else -1)
