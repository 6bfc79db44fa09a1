"""bench/contended_summary.py on hand-made contended_cpu.py documents: per-run figures side by
side and the count of runs meeting each target. Nothing is timed here."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import contended_summary  # noqa: E402

LOADS = ("quiet", "one_core_held", "all_cores_held")


def _doc(date: str, ratio_all_held: float, meets: bool, extra_op: bool = False) -> dict:
    def fig(ratio: float, ok: bool) -> dict:
        return {"median": {"ratio_plain_over_ours": ratio, "ours_slowdown_vs_quiet": 2.0,
                           "torch_mm_slowdown_vs_quiet": 1.8, "meets_ratio_target": ok, "meets_slowdown_target": True}}

    ops = ["sens"] + (["other"] if extra_op else [])
    return {
        "date_utc": date,
        "torch_mm": {load: {"slowdown_vs_quiet": 1.0 if load == "quiet" else 1.9} for load in LOADS},
        "raw": {"quiet": {"ops": {op: {"ours": {"median_s": 0.4}, "plain": {"median_s": 0.6}} for op in ops}}},
        "summary": {op: {"quiet": fig(1.5, True), "one_core_held": fig(1.5, True),
                         "all_cores_held": fig(ratio_all_held, meets)} for op in ops},
    }


def test_counts_runs_meeting_each_target_and_keeps_common_ops():
    lines = contended_summary.summarise([_doc("2026-12-02T10:00", 1.6, True, extra_op=True), _doc("2026-12-02T11:00", 1.2, False)])
    text = "\n".join(lines)
    assert "other" not in text  # only in one run
    held = next(line for line in lines if line.strip().startswith("all_cores_held"))
    assert "ratio 1.60 / 1.20" in held
    assert "ratio target met 1/2" in held and "slowdown target met 2/2" in held
    assert "sens: quiet ours 400.0 / 400.0 ms, plain 600 / 600 ms" in text
