"""1 vs 2 gloo processes on this machine: sharded pool scoring and distributed k-center on a synthetic pool.

    nice -n 10 python -m bench distributed-scale [--n 1000000]   # results/distributed-scale/distributed-scale.json
    python -m bench distributed-scale --quick                     # N = 20,000, 10 picks: written under build/bench/

Each configuration runs in fresh processes (mpts_fast.distributed.spawn.run_local, one thread per process unless
--threads says otherwise). Per rank the timed region (harness.time_calls, one call) starts and ends at a barrier; the
figure is the slowest rank's.

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
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


def _pool(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _timed(fn):
    import torch.distributed as dist

    from mpts_fast import distributed

    def call_then_wait_for_every_rank() -> None:
        out.append(fn())
        if distributed.is_distributed():
            dist.barrier()

    if distributed.is_distributed():
        dist.barrier()
    out: list = []
    timing = harness.time_calls(call_then_wait_for_every_rank, warmup=0, reps=1)
    return out[-1], timing["best_s"]


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
    parser.add_argument("--n", type=int, default=None, help="pool items (default 1,000,000; 20,000 with --quick)")
    parser.add_argument("--k", type=int, default=None, help="k-center picks (default 100; 10 with --quick)")
    parser.add_argument("--snapshots", type=int, default=5)
    parser.add_argument("--budget", type=int, default=1000)
    harness.add_common_options(parser, "distributed-scale", "N = 20,000, 10 picks: checks the pipeline, not a result")
    parser.add_argument("--note", default="", help="what else ran on the machine (recorded with the figures)")
    args = parser.parse_args()
    args.n = args.n or (20_000 if args.quick else 1_000_000)
    args.k = args.k or (10 if args.quick else 100)
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
    path = harness.out_dir(args, "distributed-scale") / "distributed-scale.json"
    path.write_text(json.dumps(record, indent=1))
    print(f"picks equal across configurations: {same}; written {path}")


if __name__ == "__main__":
    main()
