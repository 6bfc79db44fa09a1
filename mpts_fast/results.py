"""results.json: atomic writes (a crash or Ctrl-C leaves the previous complete file), loading, AUBC and summaries."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

RESULTS_FILE = "results.json"


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over `path` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)


def aubc(n_labeled: list[int] | np.ndarray, accuracy: list[float] | np.ndarray) -> float:
    """Area under the budget curve: trapezoid of accuracy over label counts, divided by the label range (so it lies in
    [0, 1] like accuracy). A single round gives its accuracy."""
    n = np.asarray(n_labeled, dtype=np.float64)
    a = np.asarray(accuracy, dtype=np.float64)
    if n.size == 0:
        raise ValueError("aubc: needs at least one round")
    if n.size == 1 or n[-1] == n[0]:
        return float(a.mean())
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2.0 (e.g. a GPU machine's system numpy)
    return float(trapezoid(a, n) / (n[-1] - n[0]))


def summarize_runs(results: dict) -> dict:
    """Mean ± std over complete runs of one strategy: per-round accuracy and AUBC (the `compare` summary entry)."""
    runs = [r for r in results["runs"] if r.get("complete")]
    if not runs:
        raise ValueError(f"results for {results.get('strategy')!r} hold no complete run")
    rounds = min(len(r["rounds"]) for r in runs)
    acc = np.array([[rd["test_accuracy"] for rd in r["rounds"][:rounds]] for r in runs])
    n_labeled = [rd["n_labeled"] for rd in runs[0]["rounds"][:rounds]]
    areas = np.array([aubc(n_labeled, a) for a in acc])
    return {
        "aubc_mean": float(areas.mean()), "aubc_std": float(areas.std()),
        "accuracy_mean": acc.mean(0).tolist(), "accuracy_std": acc.std(0).tolist(),
        "n_labeled": n_labeled, "repeats": len(runs),
    }
