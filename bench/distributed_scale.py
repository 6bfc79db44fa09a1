"""1 vs 2 gloo processes on this machine: sharded pool scoring and distributed k-center on a synthetic pool.

    nice -n 10 .venv/bin/python bench/distributed_scale.py [--n 1000000] [--out bench/results/distributed-scale.json]

Each configuration runs in fresh processes (mpts_fast.distributed.spawn.run_local, one thread per process unless
--threads says otherwise). Per rank the timed region starts and ends at a barrier; the figure is the slowest rank's.

- scoring: S = 5 snapshots of a small MLP (d -> 256 -> C = 10) stream the rank's shard through
  ops.SnapshotAccumulator in batches of 4096, then the top-b (b = 1000) entropy items are merged across ranks.
- k-center: `--k` picks of greedy k-center on (N, 32) float32 features, labeled rows on rank 0 only (0.1 %).
  Per pick: the fused local kernel, one all-gather of (value, index), one broadcast of the winner's row.

The picks of 2 ranks are checked equal to 1 rank's. The figures depend on the machine's load: record it with them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch


def _pool(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _timed(fn):
    import torch.distributed as dist

    from mpts_fast import distributed

    if distributed.is_distributed():
        dist.barrier()
    t0 = time.perf_counter()
    out = fn()
    if distributed.is_distributed():
        dist.barrier()
    return out, time.perf_counter() - t0


def _scoring(n: int, d: int, snapshots: int, budget: int) -> dict:
    from mpts_fast import distributed, ops

    lo, hi = distributed.shard_bounds(n, align=4096)
    x = _pool(n, d, seed=1)[lo:hi]
    gen = torch.Generator().manual_seed(2)
    weights = [(torch.randn(d, 256, generator=gen) / d ** 0.5, torch.randn(256, 10, generator=gen) / 16)
               for _ in range(snapshots)]

    def run():
        acc = ops.SnapshotAccumulator(x.shape[0], 10)
        for w1, w2 in weights:
            logits = torch.cat([torch.relu(xb @ w1) @ w2 for xb in torch.split(x, 4096)]) if x.shape[0] else \
                torch.zeros(0, 10)
            acc.update(logits)
        entropy = acc.scores().entropy
        return distributed.merged_top_k(entropy, budget, lo)

    picks, seconds = _timed(run)
    return {"seconds": seconds, "picks": picks.tolist()}


def _kcenter(n: int, d: int, k: int) -> dict:
    from mpts_fast import distributed

    lo, hi = distributed.shard_bounds(n)
    x = _pool(n, d)[lo:hi].contiguous()
    labeled = torch.zeros(n, dtype=torch.bool)
    labeled[: n // 1000] = True  # the first 0.1 %: all on rank 0
    mask = labeled[lo:hi]
    picks, seconds = _timed(lambda: distributed.kcenter_greedy(x, k, labeled=mask))
    # the initial nearest-labeled pass is part of `seconds`; time the picks alone as well
    _, init_seconds = _timed(lambda: distributed.kcenter_greedy(x, 1, labeled=mask))
    return {"seconds": seconds, "picks_only_seconds": seconds - init_seconds, "picks": picks.tolist()}


def _per_pick_collectives(d: int, rounds: int = 200) -> dict:
    """The communication of one k-center pick alone: all-gather of (value, index), broadcast of d + 1 numbers."""
    from mpts_fast.distributed.comm import all_gather_rows, broadcast_buffer

    pair, row = torch.zeros(2, dtype=torch.float64), torch.zeros(d + 1, dtype=torch.float64)

    def run():
        for t in range(rounds):
            all_gather_rows(pair, "bench")
            broadcast_buffer(row, t % max(1, _world()), "bench")

    _, seconds = _timed(run)
    return {"seconds": seconds, "microseconds_per_pick": seconds / rounds * 1e6, "picks": []}


def _world() -> int:
    from mpts_fast import distributed

    return distributed.world_size()


def _all(n: int, k: int, snapshots: int, budget: int) -> dict:
    return {"scoring": _scoring(n, 64, snapshots, budget), "kcenter": _kcenter(n, 32, k),
            "collectives": _per_pick_collectives(32)}


def main() -> None:
    from mpts_fast.distributed.spawn import run_local

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--snapshots", type=int, default=5)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--out", default="bench/results/distributed-scale.json")
    parser.add_argument("--note", default="", help="what else ran on the machine (recorded with the figures)")
    args = parser.parse_args()
    rows = []
    for world, threads in ((1, 1), (1, 2), (2, 1)):
        results = run_local(_all, world, args.n, args.k, args.snapshots, args.budget, threads=threads,
                            timeout_s=1800)
        rows.append({"processes": world, "threads_per_process": threads,
                     **{part: {key: max(r[part][key] for r in results) for key in results[0][part] if key != "picks"}
                        for part in ("scoring", "kcenter", "collectives")},
                     "_picks": {part: results[0][part]["picks"] for part in ("scoring", "kcenter")}})
        print(f"{world} process(es) x {threads} thread(s): scoring {rows[-1]['scoring']['seconds']:.2f} s, "
              f"k-center {rows[-1]['kcenter']['seconds']:.2f} s ({args.k} picks), collectives "
              f"{rows[-1]['collectives']['microseconds_per_pick']:.0f} us per pick", flush=True)
    same = all(r["_picks"] == rows[0]["_picks"] for r in rows)
    for r in rows:
        del r["_picks"]
    record = {"n": args.n, "k": args.k, "snapshots": args.snapshots, "budget": args.budget,
              "kcenter_dims": 32, "scoring_dims": 64, "picks_equal_across_configurations": same, "rows": rows,
              "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "load_average_at_end": os.getloadavg(), "torch": torch.__version__},
              "note": args.note}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1))
    print(f"picks equal across configurations: {same}; written {args.out}")


if __name__ == "__main__":
    main()
