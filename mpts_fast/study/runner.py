"""Run a study: trials of every method in worker processes, per-trial results on disk (for --resume), then
the summary (`study.json`), the mean curves (`curves.json`), the report (`report.md`) and the figures.

Layout of DIR: study.json, report.md, curves.json, config.json, trials/<method>/trial_NNN.json, *.png.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from mpts_fast.study import data as sdata
from mpts_fast.study import plots, report, summary
from mpts_fast.study.config import StudyConfig
from mpts_fast.study.methods import run_method
from mpts_fast.study.pool import imap

# relative cost per trial, to start the slow chunks first
_COST = {"ensemble": 4, "sasla": 3, "entropy": 2, "passive": 1}


def _task(args) -> list[dict]:
    method, data, cfg_d, trials = args
    return run_method(method, data, StudyConfig.from_dict(cfg_d), trials)


def _trial_path(out: Path, method: str, trial: int) -> Path:
    return out / "trials" / method / f"trial_{trial:03d}.json"


def _load_done(out: Path, cfg: StudyConfig, method: str) -> dict[int, dict]:
    done = {}
    for t in range(cfg.trials):
        p = _trial_path(out, method, t)
        if p.exists():
            try:
                rec = json.loads(p.read_text())
            except json.JSONDecodeError:  # a file cut short by an interrupted run
                continue
            if rec.get("fingerprint") == cfg.fingerprint(method):
                done[t] = rec
    return done


def _chunks(trials: list[int], parts: int) -> list[list[int]]:
    """`trials` cut into at most `parts` contiguous chunks of near-equal size; none when `trials` is empty (every
    trial of a method already on disk)."""
    if not trials:
        return []
    parts = max(1, min(parts, len(trials)))
    size = -(-len(trials) // parts)
    return [trials[i:i + size] for i in range(0, len(trials), size)]


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so a Ctrl-C never leaves a trial file cut short."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_trials(data: sdata.StudyData, cfg: StudyConfig, out: Path, workers: int = 1, resume: bool = False,
               progress: bool = True) -> dict[str, list[dict]]:
    """Every method × trial; each finished chunk's trials are written at once, so an interrupted run loses
    at most the chunks in flight. With `resume`, trials already on disk under the same settings are kept."""
    results: dict[str, dict[int, dict]] = {}
    tasks = []
    for m in cfg.methods:
        results[m] = _load_done(out, cfg, m) if resume else {}
        todo = [t for t in range(cfg.trials) if t not in results[m]]
        tasks += [(m, data, cfg.to_dict(), c) for c in _chunks(todo, workers)]
    tasks.sort(key=lambda t: -_COST[t[0]] * len(t[3]))
    for recs in imap(_task, tasks, workers, progress, desc=f"study {cfg.dataset}", unit="trial",
                     weight=lambda t: len(t[3])):
        for r in recs:
            _write_atomic(_trial_path(out, r["method"], r["trial"]), json.dumps(r))
            results[r["method"]][r["trial"]] = r
    return {m: [results[m][t] for t in sorted(results[m])] for m in cfg.methods}


def write_outputs(data: sdata.StudyData, cfg: StudyConfig, by_method: dict[str, list[dict]], out: Path,
                  extra: dict, plot: bool = True) -> dict:
    """study.json, curves.json, report.md and (plot=True) the figures."""
    doc = summary.build(cfg.dataset, data.task, by_method, {"trials": cfg.trials, **extra,
                                                             "config": cfg.to_dict(), "hyper": cfg.hyper.__dict__})
    curves = summary.mean_curves(by_method)
    figures: dict[str, str] = {}
    if plot:
        metric = "accuracy" if data.task == "classification" else "mse"
        curve_metric = "macro F1" if data.task == "classification" else "R²"
        scores, names = summary.score_matrix(by_method, metric)
        plots.boxplot(out / f"{metric}_boxplot.png", scores, names, metric, cfg.dataset)
        figures[f"test {metric}"] = f"{metric}_boxplot.png"
        plots.train_size(out / "train_size.png", curves, cfg.dataset)
        figures["training-set size per epoch"] = "train_size.png"
        plots.score_vs_labeled(out / "score_vs_labeled.png", curves, cfg.dataset, curve_metric)
        figures[f"{curve_metric} vs labeled instances"] = "score_vs_labeled.png"
        if plots.cd_diagram(out / "cd_diagram.png", doc["statistics"], cfg.dataset):
            figures["critical-difference diagram"] = "cd_diagram.png"
    (out / "study.json").write_text(json.dumps(summary.jsonable(doc), indent=1, allow_nan=False))
    (out / "curves.json").write_text(json.dumps(summary.jsonable(curves), allow_nan=False))
    (out / "report.md").write_text(report.markdown(doc, figures))
    return doc


CONFIG_FILE = "config.json"
# what a study writes into its directory; `overwrite=True` removes these (and nothing else)
_OUTPUTS = ("study.json", "report.md", "curves.json", CONFIG_FILE, "accuracy_boxplot.png", "mse_boxplot.png",
            "train_size.png", "score_vs_labeled.png", "cd_diagram.png")


def holds_study(out: str | Path) -> bool:
    """True if `out` holds a study's settings or trials."""
    out = Path(out)
    return (out / CONFIG_FILE).exists() or (out / "trials").is_dir()


def saved_config(out: str | Path) -> StudyConfig:
    """The settings the study in `out` was started with (its config.json)."""
    path = Path(out) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"nothing to resume in {out}: it holds no study ({CONFIG_FILE} is missing)")
    try:
        return StudyConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, KeyError) as e:
        raise ValueError(f"{path} is not a study's config.json ({e})") from None


def prepare_output(out: str | Path, cfg: StudyConfig, *, resume: bool, overwrite: bool) -> None:
    """Refuse to mix a new study into an old one: a directory holding a study needs `resume` (same settings;
    trials and methods may grow) or `overwrite` (the old study's files are removed)."""
    out = Path(out)
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other")
    if resume:
        saved = saved_config(out)
        diff = saved.differences(cfg)
        if diff:
            shown = "; ".join(f"{k} {_get(saved, k)!r} there, {_get(cfg, k)!r} now" for k in diff)
            raise ValueError(f"resume: the study in {out} was started with other settings ({shown}); resume it "
                             f"with its own settings or start afresh with overwrite=True")
    elif holds_study(out):
        if not overwrite:
            raise FileExistsError(f"out: {out} already holds a study; resume=True continues it, overwrite=True "
                                  f"starts afresh")
        shutil.rmtree(out / "trials", ignore_errors=True)
        for name in _OUTPUTS:
            (out / name).unlink(missing_ok=True)


def _get(cfg: StudyConfig, key: str):
    return getattr(cfg.hyper, key[len("hyper."):]) if key.startswith("hyper.") else getattr(cfg, key)


def run_study(data: sdata.StudyData, cfg: StudyConfig, out: str | Path, *, workers: int = 1, resume: bool = False,
              overwrite: bool = False, progress: bool = True, plot: bool = True, extra: dict | None = None) -> dict:
    """Run the whole study into `out` and return the `study.json` document.

    resume: keep the trials already in `out` (its settings must match `cfg`, except `trials` and `methods`);
    overwrite: remove a previous study's files from `out` first. Without either, a directory that already
    holds a study is refused (FileExistsError)."""
    cfg.validate(data.task)
    out = Path(out)
    prepare_output(out, cfg, resume=resume, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=1))
    start = time.perf_counter()
    by_method = run_trials(data, cfg, out, workers, resume, progress)
    seconds = time.perf_counter() - start
    return write_outputs(data, cfg, by_method, out, {**(extra or {}), "seconds": seconds, "workers": workers}, plot)
