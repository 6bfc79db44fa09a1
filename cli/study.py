"""`mpts-fast study`: the selective-learning study (passive, SASLA, entropy and ensemble uncertainty sampling)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import click

from mpts_fast.study.config import METHODS, OUR_GRID_HYPER, PAPER_HYPER, REGRESSION_METHODS, Hyper, StudyConfig


def _default_cache() -> Path:
    from mpts_fast.data import default_data_dir

    return default_data_dir().parent / "study-grid"


def _resolve_hyper(data, cfg: StudyConfig, explicit: dict, grid: bool, cache: Path, workers: int,
                   progress: bool) -> tuple[Hyper, str]:
    from mpts_fast.study import grid as gridmod

    given = {k: v for k, v in explicit.items() if v is not None}
    if given and len(given) < 4:
        missing = sorted(set(explicit) - set(given))
        raise click.UsageError(f"give all of --hidden --lr --weight-decay --momentum, or none (missing: "
                               f"{', '.join('--' + m.replace('_', '-') for m in missing)})")
    if given:
        return Hyper(**given).validate(), "command line"
    cached = gridmod.load_cached(cache, cfg)
    if cached is not None:
        return cached, f"grid search (cached: {gridmod.cache_path(cache, cfg)})"
    if grid:
        rows, seconds = gridmod.run_grid(data, cfg, workers, progress)
        path = gridmod.save(cache, cfg, rows, seconds)
        click.echo(f"grid search: {len(rows)} configurations in {seconds:.0f} s, cached in {path}", err=True)
        return gridmod.best(rows), f"grid search ({path})"
    if cfg.dataset in OUR_GRID_HYPER:
        return Hyper(**OUR_GRID_HYPER[cfg.dataset]), "our grid search (bench/results/study/grid; no grid cached here)"
    if cfg.dataset in PAPER_HYPER:
        return Hyper(**PAPER_HYPER[cfg.dataset]), "the report's Table II (no grid search cached; run with --grid)"
    raise click.UsageError(f"no hyperparameters for {cfg.dataset!r}: run with --grid (cached in {cache}) or give "
                           "--hidden --lr --weight-decay --momentum")


@click.command(context_settings={"show_default": True})
@click.option("--dataset", required=True, help="Registered data set: iris, wine, sine, fashion-mnist, "
              "california-housing, energy-efficiency, ... (train and test are pooled; the study splits).")
@click.option("--methods", default=None, help=f"Comma-separated. Default: {','.join(METHODS)} (classification), "
              f"{','.join(REGRESSION_METHODS)} (regression; entropy is replaced by ensemble disagreement).")
@click.option("--trials", default=50, type=int, help="Trials (stratified 80/20 splits).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--seed", default=0, type=int, help="Base seed of splits, initial weights and batch orders.")
@click.option("--workers", default=None, type=int, help="Worker processes (one torch thread each). "
              "Default: the available cores.")
@click.option("--resume", is_flag=True, help="Keep trials already in DIR/trials computed with the same settings.")
@click.option("--grid", "do_grid", is_flag=True, help="Run the 256-configuration grid search on passive learning "
              "(5-fold CV of a dedicated 80% split; never the test data) unless a cached result exists.")
@click.option("--grid-cache", type=click.Path(file_okay=False), default=None,
              help="Directory of cached grid results. Default: ~/.cache/mpts-fast/study-grid "
              "(beside $MPTS_FAST_DATA when set).")
@click.option("--hidden", type=int, default=None, help="Hidden units (with --lr, --weight-decay, --momentum: "
              "skip the grid). Without these: a cached grid, else our grid results (iris, wine, sine), else "
              "the report's Table II (fashion-mnist), else an error asking for --grid.")
@click.option("--lr", type=float, default=None, help="SGD learning rate.")
@click.option("--weight-decay", type=float, default=None, help="L2 weight decay (torch SGD convention).")
@click.option("--momentum", type=float, default=None, help="SGD momentum.")
@click.option("--epochs", default=1000, type=int, help="Epochs of passive and SASLA (our default: the report's "
              "SASLA budget) and of every grid configuration.")
@click.option("--batch-size", default=16, type=int, help="Mini-batch size (our default).")
@click.option("--beta", default=0.9, type=float, help="SASLA: keep Φ > (1 − β)·mean Φ.")
@click.option("--selection-interval", default=1, type=int, help="SASLA: epochs between selections.")
@click.option("--norm", default="l1", type=click.Choice(["l1", "l2", "inf"]), help="SASLA: norm over inputs in Φ.")
@click.option("--query-size", default=0.02, type=float, help="Uncertainty sampling: patterns per query, a fraction "
              "of the initial pool (our default 2%) or a whole number (1 = the report's algorithm).")
@click.option("--query-epochs", default=20, type=int, help="Uncertainty sampling: warm-started epochs after the "
              "initial set and after each query (our default).")
@click.option("--ensemble-size", default=3, type=int, help="Networks in the ensemble.")
@click.option("--conv-window", default=10, type=int, help="Convergence: window of epoch losses.")
@click.option("--conv-threshold", default=5e-3, type=float, help="Convergence: std threshold (our default).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Data directory for downloads.")
@click.option("--no-plots", is_flag=True, help="Skip the figures.")
@click.option("--progress/--no-progress", default=True, help="Progress bar.")
def study(dataset, methods, trials, out_dir, seed, workers, resume, do_grid, grid_cache, hidden, lr, weight_decay,
          momentum, epochs, batch_size, beta, selection_interval, norm, query_size, query_epochs, ensemble_size,
          conv_window, conv_threshold, data_dir, no_plots, progress):
    """Passive learning vs SASLA vs entropy vs ensemble uncertainty sampling with a one-hidden-layer sigmoid
    network (SPEC §3): writes DIR/study.json, DIR/report.md, DIR/curves.json, figures and per-trial results.

    Defaults the report leaves open are ours (see docs/study.md): 1000 epochs, batch 16, query 2% of the pool
    with 20 warm-started epochs per query, convergence when the std of the last 10 epoch losses stays < 5e-3.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from mpts_fast.study import data as sdata
    from mpts_fast.study.pool import default_workers
    from mpts_fast.study.runner import run_study

    try:
        data = sdata.load(dataset, data_dir)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--dataset") from None
    if methods is None:
        names = METHODS if data.task == "classification" else REGRESSION_METHODS
    else:
        names = tuple(m.strip() for m in methods.split(",") if m.strip())
    workers = workers or default_workers()
    hyper_placeholder = Hyper(64, 0.1, 0.0, 0.9)
    cfg = StudyConfig(dataset, names, trials, seed, epochs, batch_size, beta, selection_interval, norm, query_size,
                      query_epochs, ensemble_size, conv_window, conv_threshold, hyper_placeholder)
    try:
        cfg.validate(data.task)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    cache = Path(grid_cache) if grid_cache else _default_cache()
    explicit = {"hidden": hidden, "lr": lr, "weight_decay": weight_decay, "momentum": momentum}
    try:
        hyper, source = _resolve_hyper(data, cfg, explicit, do_grid, cache, workers, progress)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    cfg = StudyConfig(**{**cfg.__dict__, "hyper": hyper})
    click.echo(f"{dataset}: {len(data.y)} patterns, {data.task}; hyperparameters {hyper.__dict__} from {source}; "
               f"{trials} trials of {', '.join(names)} on {workers} worker(s)", err=True)
    start = time.perf_counter()
    doc = run_study(data, cfg, out_dir, workers=workers, resume=resume, progress=progress, plot=not no_plots,
                    extra={"hyper_source": source})
    key = "accuracy" if data.task == "classification" else "mse"
    for m, s in doc["methods"].items():
        click.echo(f"{m:9s} {key} {s[key + '_mean']:.4f} ± {s[key + '_std']:.4f}  "
                   f"final training set {s['final_train_size_mean']:.1f}  observations {s['observations_seen_mean']:.0f}")
    click.echo(f"friedman p = {doc['statistics']['friedman_p']}; {time.perf_counter() - start:.1f} s; "
               f"wrote {Path(out_dir) / 'study.json'}, report.md")
