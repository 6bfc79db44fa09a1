"""MPTS under the task / selection protocol: every strategy's curve scored by the plainly trained task model, MPTS also
by its own selection model, the figures from before the split beside them, and the λ sweep.

    python bench/mpts_protocol.py                      # everything (hours on 2 cores; resumable: run it again)
    python bench/mpts_protocol.py --datasets digits --parts main,before
    python bench/mpts_protocol.py --quick --datasets wine   # 2 seeds, 3 rounds, 10 epochs: proves the pipeline
    python bench/mpts_protocol.py --table              # print the markdown of the saved report and exit

Data sets (their registered defaults, the MPTS paper's Table 1 where it has them): digits, wine, breast-cancer, the
synthetic 50-class pool of bench/make_synthetic_pool.py (`synth50`, made into --runs when missing), and `mnist1d` /
`mnist1d-large` when they are registered and can be loaded (skipped, saying why, otherwise).

Training recipes (`--recipes`, default paper,fit): every entry runs under each, `paper` (the data set's Table 1 epochs
at a constant lr) and `fit` (a step budget until the model fits its labels; docs/mpts.md, "Training recipes"). Paper
runs keep the run-directory names they had before recipes existed (`mpts-lambda1.0`, `random`, ...) and pass
recipe="paper" explicitly, so runs made before resume; the others end in `-recipe-fit` and their labels in `[fit]`.
Paired differences are taken against entropy and random under the same recipe.

Parts (`--parts`):
- main: random, entropy, margin, bald, badge, coreset, mpts (λ = 1, the default) and mpts λ = 0 (snapshots only), the
  curve scored by the task model (`--evaluate task`); MPTS and BALD also by their selection model
  (`selection_test_accuracy` of the same runs: no extra training).
- before: mpts (λ = 1 and 0) and bald with `--evaluate selection`, each curve scored by the strategy's own model, as
  every run was made before the split (random, entropy, badge and coreset are unchanged by it).
- sweep: mpts with λ ∈ {0, 0.01, 0.1, 0.3, 1, 3} (task and selection curves) with the λ diagnostics per λ: the mean
  λ·‖∇MMD²‖/‖∇CE‖ and gradient cosine, and the labeled-vs-pool MMD² against its pool-vs-pool null.

Reported per data set: AUBC mean ± sample std over the seeds (ddof = 1) for every entry and curve, and for every entry
against entropy's and random's task curves the paired per-seed differences: their mean, wins / ties / losses, and
the two-sided Wilcoxon signed-rank p-value (scipy.stats.wilcoxon; with 5 seeds the smallest possible p is 0.0625, so
5 seeds can show a consistent direction, never significance at 0.05). Every run is one `mpts-fast run` directory under
--runs (resumed where it stopped: kill the script and start it again); the JSON report and its markdown are rewritten
after every finished run (--out: <out>/mpts-protocol.json and .md; --quick writes beside its runs instead, never
into bench/results).
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mpts_fast.loop import RunConfig, run_experiment
from mpts_fast.training.config import DEFAULT_MMD_WEIGHT
from mpts_fast.results import aubc, curve_accuracy, load_json, write_json_atomic, write_text_atomic

DATASETS = ("digits", "wine", "breast-cancer", "synth50", "mnist1d", "mnist1d-large")
SWEEP = (0.0, 0.01, 0.1, 0.3, 1.0, 3.0)
DEFAULT_LAMBDA = DEFAULT_MMD_WEIGHT  # mpts-fast run's default λ, chosen from this script's sweep
EARLIER_LAMBDA = 1.0  # the default before the sweep: the 'before' entries reproduce runs made with it
QUICK = {"paper": {"rounds": 3, "epochs": 10}, "fit": {"rounds": 3, "steps": 60}}  # per training recipe
RECIPES = ("paper", "fit")
BASELINES = ("entropy", "random")  # the paired differences are taken against these entries' task curves


@dataclass(frozen=True)
class Entry:
    """One run configuration: label, strategy, RunConfig overrides, the curves it is scored on, and the training
    recipe (passed explicitly, so that a run resumes under the recipe it was made with)."""

    label: str
    strategy: str
    overrides: dict = field(default_factory=dict)
    curves: tuple[str, ...] = ("task",)
    recipe: str = "paper"

    @property
    def key(self) -> str:
        """The run directory's name: the same settings share one run across parts (mpts λ = 1 is main and sweep).
        Paper-recipe runs keep the names they had before recipes existed; others end in -recipe-<name>."""
        parts = [self.strategy] + [f"{k}={v}" for k, v in sorted(self.overrides.items())]
        if self.recipe != "paper":
            parts.append(f"recipe={self.recipe}")
        return "-".join(parts).replace("mmd_weight=", "lambda").replace("evaluate=", "eval-").replace("recipe=",
                                                                                                     "recipe-")


def entries(parts: set[str], recipes: tuple[str, ...] = ("paper",)) -> list[Entry]:
    """Every part's entries under each recipe; a non-paper recipe's labels end in [recipe]."""
    out: list[Entry] = []
    for recipe in recipes:
        for e in _entries(parts):
            label = e.label if recipe == "paper" else f"{e.label} [{recipe}]"
            out.append(Entry(label, e.strategy, e.overrides, e.curves, recipe))
    return out


def _entries(parts: set[str]) -> list[Entry]:
    out: list[Entry] = []
    if "main" in parts:
        out += [Entry(s, s) for s in ("random", "entropy", "margin", "badge", "coreset")]
        out += [Entry("bald", "bald", curves=("task", "selection")),
                Entry("mpts", "mpts", {"mmd_weight": DEFAULT_LAMBDA}, ("task", "selection")),
                Entry(f"mpts λ={EARLIER_LAMBDA:g}", "mpts", {"mmd_weight": EARLIER_LAMBDA}, ("task", "selection")),
                Entry("mpts λ=0", "mpts", {"mmd_weight": 0.0}, ("task", "selection"))]
    if "before" in parts:
        out += [Entry(f"mpts λ={EARLIER_LAMBDA:g} (before: own model scores)", "mpts",
                      {"mmd_weight": EARLIER_LAMBDA, "evaluate": "selection"}),
                Entry("mpts λ=0 (before: own model scores)", "mpts", {"mmd_weight": 0.0, "evaluate": "selection"}),
                Entry("bald (before: own model scores)", "bald", {"evaluate": "selection"})]
    if "sweep" in parts:
        known = {e.key for e in out}
        for lam in SWEEP:
            e = Entry(f"mpts λ={lam:g}", "mpts", {"mmd_weight": lam}, ("task", "selection"))
            if e.key not in known:
                out.append(e)
    return out


# --- statistics ------------------------------------------------------------------------------------------------------

def per_seed_aubc(results: dict, curve: str) -> dict[int, float]:
    """{seed: AUBC of that seed's curve} over the complete runs."""
    out = {}
    for run in results["runs"]:
        if run.get("complete"):
            rounds = run["rounds"]
            out[run["seed"]] = aubc([rd["n_labeled"] for rd in rounds], [curve_accuracy(rd, curve) for rd in rounds])
    return out


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), (float(a.std(ddof=1)) if a.size > 1 else None)


def paired(a: dict[int, float], b: dict[int, float]) -> dict | None:
    """a − b over the seeds both hold: per-seed differences, their mean, wins / ties / losses and the two-sided
    Wilcoxon signed-rank p-value (None with fewer than 2 seeds or when every difference is 0)."""
    from scipy.stats import wilcoxon

    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    diffs = [a[s] - b[s] for s in seeds]
    p = None
    if len(diffs) >= 2 and any(d != 0 for d in diffs):
        try:
            p = float(wilcoxon(diffs).pvalue)
        except ValueError:
            p = None
    return {"seeds": seeds, "diffs": diffs, "mean_diff": float(np.mean(diffs)),
            "wins": sum(d > 0 for d in diffs), "ties": sum(d == 0 for d in diffs), "losses": sum(d < 0 for d in diffs),
            "wilcoxon_p": p}


def diagnostics(results: dict) -> dict:
    """Means over every round of every complete run: training accuracy of each model, and MPTS's λ diagnostics."""
    rounds = [rd for run in results["runs"] if run.get("complete") for rd in run["rounds"]]

    def mean_of(get) -> float | None:
        values = [v for v in map(get, rounds) if isinstance(v, (int, float)) and math.isfinite(v)]
        return float(np.mean(values)) if values else None

    def min_of(key: str) -> float | None:
        values = [rd[key] for rd in rounds if isinstance(rd.get(key), (int, float))]
        return float(min(values)) if values else None

    out = {"train_accuracy_mean": mean_of(lambda rd: rd.get("train_accuracy")),
           "train_accuracy_min": min_of("train_accuracy"),
           "selection_train_accuracy_min": min_of("selection_train_accuracy"),
           "train_seconds_total": float(sum(rd.get("train_seconds", 0) + rd.get("selection_train_seconds", 0)
                                            for rd in rounds))}
    if any("mmd" in rd for rd in rounds):
        for k in ("grad_ratio", "grad_cosine", "mmd2_labeled_pool", "mmd2_pool_null", "mmd2_pool_null_std",
                  "task_mmd2_labeled_pool", "task_mmd2_pool_null"):
            out[k] = mean_of(lambda rd, k=k: rd.get("mmd", {}).get(k))
    return out


def summarize_dataset(runs: dict[str, tuple[Entry, dict]]) -> dict:
    """{entry label: {curve: {aubc_mean, aubc_std, aubc_per_seed, vs_entropy, vs_random}, diagnostics, config}}."""
    base = {}  # (baseline, recipe): per-seed AUBC; an entry is compared with the baselines of its own recipe
    for name in BASELINES:
        for e, r in runs.values():
            if e.strategy == name and not e.overrides:
                base[(name, e.recipe)] = (e.label, per_seed_aubc(r, "task"))
    out = {}
    for label, (entry, results) in runs.items():
        row = {"strategy": entry.strategy, "overrides": entry.overrides, "recipe": entry.recipe,
               "config": results["config"], "diagnostics": diagnostics(results), "curves": {}}
        for curve in entry.curves:
            seeds = per_seed_aubc(results, curve)
            m, s = mean_std(list(seeds.values()))
            c = {"aubc_mean": m, "aubc_std": s, "aubc_per_seed": {str(k): v for k, v in seeds.items()}}
            for (name, recipe), (base_label, ref) in base.items():
                if recipe == entry.recipe and not (label == base_label and curve == "task"):
                    c[f"vs_{name}"] = paired(seeds, ref)
            row["curves"][curve] = c
        out[label] = row
    return out


# --- markdown -------------------------------------------------------------------------------------------------------

def _cell(c: dict | None) -> str:
    if not c or c.get("aubc_mean") is None:
        return "–"
    std = "n/a" if c["aubc_std"] is None else f"{c['aubc_std']:.3f}"
    return f"{c['aubc_mean']:.3f} ± {std}"


def _diff(d: dict | None) -> str:
    if not d:
        return "–"
    p = "–" if d["wilcoxon_p"] is None else f"{d['wilcoxon_p']:.3g}"
    return f"{d['mean_diff']:+.3f} ({d['wins']}/{len(d['diffs'])}, p {p})"


def markdown(report: dict) -> str:
    sets = [d for d in report["datasets"] if report["datasets"][d]]
    if not sets:
        return "(no finished runs yet)\n"
    rows: list[tuple[str, str]] = []
    for d in sets:
        for label, row in report["datasets"][d].items():
            for curve in row["curves"]:
                if (label, curve) not in rows:
                    rows.append((label, curve))

    def name(label: str, curve: str) -> str:
        return f"{label}, {'task model' if curve == 'task' else 'selection model'}" \
            if len(report_curves(report, label)) > 1 or curve != "task" else label

    lines = [f"AUBC, mean ± sample std over {report['seeds']} seeds ({report['date']}, {report['machine']}):", "",
             "| entry | " + " | ".join(sets) + " |", "|---" * (len(sets) + 1) + "|"]
    for label, curve in rows:
        cells = [_cell(report["datasets"][d].get(label, {}).get("curves", {}).get(curve)) for d in sets]
        lines.append(f"| {name(label, curve)} | " + " | ".join(cells) + " |")
    for base in BASELINES:
        lines += ["", f"Paired per-seed AUBC differences against {base} under the same training recipe (task model): "
                      f"mean difference (seeds ahead / seeds, two-sided Wilcoxon signed-rank p):", "",
                  "| entry | " + " | ".join(sets) + " |", "|---" * (len(sets) + 1) + "|"]
        for label, curve in rows:
            if label in (base, f"{base} [fit]") and curve == "task":
                continue
            cells = [_diff(report["datasets"][d].get(label, {}).get("curves", {}).get(curve, {}).get(f"vs_{base}"))
                     for d in sets]
            lines.append(f"| {name(label, curve)} | " + " | ".join(cells) + " |")
    sweep = [(d, lab, row) for d in sets for lab, row in report["datasets"][d].items()
             if row["strategy"] == "mpts" and row["overrides"].get("evaluate", "task") == "task"]
    if sweep:
        lines += ["", "λ sweep (mpts, task and selection curves; λ diagnostics as means over rounds and seeds: "
                      "λ·‖∇MMD²‖/‖∇CE‖ and cosine on the encoder, second half of training; MMD² labeled vs pool in "
                      "the selection model's features, and its pool-vs-pool null):", "",
                  "| data set | recipe | λ | AUBC task | AUBC selection | grad ratio | cosine | MMD² L vs pool | "
                  "null | "
                  "min train acc (task / selection) |", "|---" * 10 + "|"]
        for d, lab, row in sorted(sweep, key=lambda t: (sets.index(t[0]), t[2].get("recipe", "paper"),
                                                        t[2]["overrides"].get("mmd_weight", 1.0))):
            g = row["diagnostics"]
            f = lambda v, spec=".3f": "–" if v is None else format(v, spec)  # noqa: E731
            lam = row["overrides"].get("mmd_weight", DEFAULT_LAMBDA)
            lines.append(f"| {d} | {row.get('recipe', 'paper')} | {lam:g} | "
                         f"{_cell(row['curves'].get('task'))} | {_cell(row['curves'].get('selection'))} | "
                         f"{f(g.get('grad_ratio'), '.3g')} | {f(g.get('grad_cosine'), '.2f')} | "
                         f"{f(g.get('mmd2_labeled_pool'), '.4f')} | {f(g.get('mmd2_pool_null'), '.4f')} | "
                         f"{f(g.get('train_accuracy_min'), '.2f')} / {f(g.get('selection_train_accuracy_min'), '.2f')} |")
    return "\n".join(lines) + "\n"


def report_curves(report: dict, label: str) -> set[str]:
    return {c for d in report["datasets"].values() for c in d.get(label, {}).get("curves", {})}


# --- running --------------------------------------------------------------------------------------------------------

def resolve_dataset(name: str, runs_dir: Path, data_dir: str | None) -> tuple[str | None, str]:
    """(what RunConfig.dataset gets, or None to skip; why / what it is)."""
    if name == "synth50":
        path = runs_dir / "synth50.npz"
        if not path.exists():
            subprocess.run([sys.executable, str(Path(__file__).with_name("make_synthetic_pool.py")), str(path)],
                           check=True)
        return str(path), "the synthetic 50-class pool (bench/make_synthetic_pool.py, seed 0)"
    from mpts_fast.data import availability, dataset_names

    if name not in dataset_names():
        return None, f"{name} is not registered in this version"
    state = availability(name, data_dir)
    if state.state == "missing":
        return None, f"{name} cannot be loaded here: missing {', '.join(state.missing)}"
    return name, "registered"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated (default: %(default)s)")
    ap.add_argument("--parts", default="main,before,sweep", help="comma-separated of main, before, sweep")
    ap.add_argument("--recipes", default=",".join(RECIPES),
                    help="training recipes to run every entry under, comma-separated of paper, fit (default "
                         "%(default)s); paper runs keep their run directories' names, others end in -recipe-<name>")
    ap.add_argument("--seeds", type=int, help="seeds 0..N-1 (default 5; 2 with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help=f"2 seeds and {QUICK} for every data set: a check that the pipeline works, not evidence")
    ap.add_argument("--runs", help="where each run's results.json lives (default runs/mpts-protocol[-quick])")
    ap.add_argument("--out", help="report directory (default bench/results/mpts-protocol; --quick: its --runs)")
    ap.add_argument("--data-dir", help="as mpts-fast's --data-dir")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--table", action="store_true", help="print the markdown of the saved report and exit")
    args = ap.parse_args()
    seeds = args.seeds or (2 if args.quick else 5)
    runs_dir = Path(args.runs or ("runs/mpts-protocol-quick" if args.quick else "runs/mpts-protocol"))
    out_dir = Path(args.out or (runs_dir if args.quick else "bench/results/mpts-protocol"))
    json_path, md_path = out_dir / "mpts-protocol.json", out_dir / "mpts-protocol.md"
    if args.table:
        print(markdown(load_json(json_path)), end="")
        return
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts <= {"main", "before", "sweep"}:
        ap.error(f"--parts: expected main, before, sweep; got {args.parts}")
    runs_dir.mkdir(parents=True, exist_ok=True)
    report = {"date": datetime.date.today().isoformat(), "seeds": seeds, "quick": args.quick,
              "overrides": QUICK if args.quick else {}, "command": " ".join(sys.argv),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "torch": torch.__version__, "datasets": {}, "skipped": {}}
    if json_path.exists():  # keep the figures of earlier invocations (other data sets, parts or entries)
        saved = load_json(json_path)
        report["datasets"], report["skipped"] = saved.get("datasets", {}), saved.get("skipped", {})
    recipes = tuple(r.strip() for r in args.recipes.split(",") if r.strip())
    if not recipes or not set(recipes) <= set(RECIPES):
        ap.error(f"--recipes: expected a comma-separated subset of {', '.join(RECIPES)}; got {args.recipes}")
    todo = entries(parts, recipes)
    for ds in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        target, why = resolve_dataset(ds, runs_dir, args.data_dir)
        if target is None:
            print(f"skipping {ds}: {why}", flush=True)
            report["skipped"][ds] = why
            write_json_atomic(json_path, report)
            continue
        report["skipped"].pop(ds, None)
        finished: dict[str, tuple[Entry, dict]] = {}
        for entry in todo:
            cfg = RunConfig(dataset=target, strategy=entry.strategy, repeats=seeds, recipe=entry.recipe,
                            **entry.overrides, **(QUICK[entry.recipe] if args.quick else {}))
            out = runs_dir / ds / entry.key
            t0 = time.perf_counter()
            results = run_experiment(cfg, out, resume=(out / "results.json").exists(), device=args.device,
                                     data_dir=args.data_dir, progress=False)
            finished[entry.label] = (entry, results)
            known = report["datasets"].setdefault(ds, {})
            known.update(summarize_dataset({**{lab: v for lab, v in _saved_runs(known, runs_dir / ds).items()
                                               if lab not in finished}, **finished}))
            write_json_atomic(json_path, report)
            write_text_atomic(md_path, markdown(report))
            row = known[entry.label]["curves"]
            as_run = entry.overrides.get("evaluate") == "selection"  # its one model scored the curve
            print(f"{ds:<14} {entry.label:<44} " + "  ".join(f"{'own model' if as_run else c} {_cell(v)}"
                                                             for c, v in row.items()) +
                  f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"report: {json_path} and {md_path}")


def _saved_runs(known: dict, ds_runs: Path) -> dict[str, tuple[Entry, dict]]:
    """Earlier invocations' entries of this data set, re-read from their run directories, so that the paired
    differences against entropy and random stay computed when only some parts run now."""
    out = {}
    for label, row in known.items():
        entry = Entry(label, row["strategy"], dict(row["overrides"]), tuple(row["curves"]), row.get("recipe", "paper"))
        path = ds_runs / entry.key / "results.json"
        if path.exists():
            out[label] = (entry, load_json(path))
    return out


if __name__ == "__main__":
    main()
