"""Several runs of bench/contended_cpu.py side by side: per op and load, each run's median ratio
plain / ours, our slowdown from quiet and torch.mm's, and in how many runs each speed target
(docs/benchmarks.md) was met.

    python -m bench contended-summary bench/results/contended/2026-12-02-contended-cpu*.json

One run's pass or fail near a target is not decisive on a shared machine (the torch.mm calls
interleaved with rbf_mmd2 slowed 1.53x-1.86x with both cores held in three runs the same hour);
this shows which verdicts hold across runs. Only ops present in every file are reported.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

LOADS = ("quiet", "one_core_held", "all_cores_held")


def _join(values, fmt: str) -> str:
    return " / ".join(fmt.format(v) for v in values)


def summarise(docs: list[dict]) -> list[str]:
    """Lines of the side-by-side report for contended_cpu.py result documents."""
    lines = []
    for d in docs:
        mm = d["torch_mm"]
        lines.append(f"run {d['date_utc']}: torch.mm slowdown one core held {mm['one_core_held']['slowdown_vs_quiet']}, "
                     f"all cores held {mm['all_cores_held']['slowdown_vs_quiet']}")
    ops = [op for op in docs[0]["summary"] if all(op in d["summary"] for d in docs)]
    for op in ops:
        quiet = [d["raw"]["quiet"]["ops"][op] for d in docs]
        lines.append(f"{op}: quiet ours {_join([q['ours']['median_s'] * 1e3 for q in quiet], '{:.1f}')} ms, "
                     f"plain {_join([q['plain']['median_s'] * 1e3 for q in quiet], '{:.0f}')} ms")
        for load in LOADS:
            figs = [d["summary"][op][load]["median"] for d in docs]
            lines.append(
                f"  {load:15s} ratio {_join([f['ratio_plain_over_ours'] for f in figs], '{:.2f}')}"
                f" | slowdown {_join([f['ours_slowdown_vs_quiet'] for f in figs], '{:.2f}')}"
                f" vs torch.mm {_join([f['torch_mm_slowdown_vs_quiet'] for f in figs], '{:.2f}')}"
                f" | ratio target met {sum(f['meets_ratio_target'] for f in figs)}/{len(figs)},"
                f" slowdown target met {sum(f['meets_slowdown_target'] for f in figs)}/{len(figs)}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path, help="JSON files written by bench/contended_cpu.py")
    args = ap.parse_args()
    docs = [json.loads(f.read_text()) for f in args.files]
    docs.sort(key=lambda d: d["date_utc"])
    print("\n".join(summarise(docs)))


if __name__ == "__main__":
    main()
