"""Where an experiment's wall time went: training (task model, selection model), evaluation, selection, summed from
the per-round figures of results.json (`train_seconds`, `selection_train_seconds`, `evaluate_seconds`,
`select_seconds`). Rounds written before a figure was recorded count as 0 for it."""
from __future__ import annotations

# (key in the summary, per-round field, column heading)
PARTS = (("train_task_s", "train_seconds", "train task"),
         ("train_selection_s", "selection_train_seconds", "train select."),
         ("evaluate_s", "evaluate_seconds", "evaluate"),
         ("select_s", "select_seconds", "select"))


def time_split(results: dict) -> dict:
    """{train_task_s, train_selection_s, evaluate_s, select_s, total_s, rounds} summed over every run and round of one
    results.json. train_*: the trainers' fit() (task model; a separate selection model); evaluate: test metrics and
    training diagnostics of the round's models; select: the strategy's query (its pool scoring and picks)."""
    out = {key: 0.0 for key, _, _ in PARTS}
    rounds = 0
    for run in results.get("runs", []):
        for rd in run.get("rounds", []):
            rounds += 1
            for key, field, _ in PARTS:
                out[key] += float(rd.get(field) or 0.0)
    out["total_s"] = sum(out[key] for key, _, _ in PARTS)
    out["rounds"] = rounds
    return out


def time_table(splits: dict[str, dict]) -> list[str]:
    """Lines of a table, one row per name (strategy) of `splits` ({name: time_split(...)}): seconds per part and the
    share of the row's total spent training."""
    head = f"{'seconds':<18}" + "".join(f"{label:>14}" for _, _, label in PARTS) + f"{'total':>10}{'training':>10}"
    lines = [head]
    for name, s in splits.items():
        train = s["train_task_s"] + s["train_selection_s"]
        share = f"{train / s['total_s']:.0%}" if s["total_s"] > 0 else "-"
        lines.append(f"{name:<18}" + "".join(f"{s[key]:>14.1f}" for key, _, _ in PARTS) + f"{s['total_s']:>10.1f}"
                     f"{share:>10}")
    return lines
