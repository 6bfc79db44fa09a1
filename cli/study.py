"""`mpts-fast study`: the selective-learning study (passive, SASLA, entropy and ensemble uncertainty sampling)."""
from __future__ import annotations

import difflib
import json
import os
import time
from pathlib import Path

import click
from click.core import ParameterSource

from mpts_fast.study.config import METHODS, OUR_GRID_HYPER, PAPER_HYPER, REGRESSION_METHODS, Hyper, StudyConfig

# StudyConfig fields that are also options of the same name; a stored trial depends on all of them
_SETTINGS = ("seed", "epochs", "batch_size", "beta", "selection_interval", "norm", "query_size", "query_epochs",
             "ensemble_size", "conv_window", "conv_threshold")
_HYPER = ("hidden", "lr", "weight_decay", "momentum")


def _default_cache() -> Path:
    from mpts_fast.data import default_data_dir

    return default_data_dir().parent / "study-grid"


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _dataset_name(name: str) -> str:
    """The registered spelling of `name` (case-insensitive), or a usage error with a "did you mean"."""
    from mpts_fast.data import dataset_names

    names = dataset_names()
    by_lower = {n.lower(): n for n in names}
    key = name.strip().lower()
    if key in by_lower:
        return by_lower[key]
    close = difflib.get_close_matches(key, list(by_lower), n=1)
    hint = f" (did you mean {by_lower[close[0]]}?)" if close else ""
    raise click.BadParameter(f"unknown data set {name!r}{hint}; expected one of {', '.join(names)}",
                             param_hint="'--dataset' / '-d'")


def _method_names(methods: str) -> tuple[str, ...]:
    return tuple(m.strip().lower() for m in methods.split(",") if m.strip())


def _usage_error(e: ValueError) -> click.UsageError:
    """A StudyConfig/Hyper validation error ("epochs: expected ...") worded with the option's name."""
    field, sep, rest = str(e).partition(": ")
    if sep and field.replace("_", "").replace("/", "").isalpha():
        field = "/".join(_option(f) for f in field.split("/"))
        return click.UsageError(f"{field}: {rest}")
    return click.UsageError(str(e))


def _resolve_hyper(data, cfg: StudyConfig, explicit: dict, grid: bool, cache: Path, workers: int,
                   progress: bool, quiet: bool) -> tuple[Hyper, str]:
    from mpts_fast.study import grid as gridmod

    given = {k: v for k, v in explicit.items() if v is not None}
    if given and len(given) < 4:
        missing = sorted(set(explicit) - set(given))
        raise click.UsageError(f"give all of --hidden --lr --weight-decay --momentum, or none (missing: "
                               f"{', '.join(_option(m) for m in missing)})")
    if given:
        try:
            return Hyper(**given).validate(), "command line"
        except ValueError as e:
            raise _usage_error(e) from None
    cached = gridmod.load_cached(cache, cfg)
    if cached is not None:
        return cached, f"grid search (cached: {gridmod.cache_path(cache, cfg)})"
    if grid:
        rows, seconds = gridmod.run_grid(data, cfg, workers, progress)
        path = gridmod.save(cache, cfg, rows, seconds)
        if not quiet:
            click.echo(f"grid search: {len(rows)} configurations in {seconds:.0f} s, cached in {path}", err=True)
        return gridmod.best(rows), f"grid search ({path})"
    if cfg.dataset in OUR_GRID_HYPER:
        return Hyper(**OUR_GRID_HYPER[cfg.dataset]), "our grid search, shipped with mpts-fast (none cached here)"
    if cfg.dataset in PAPER_HYPER:
        return (Hyper(**PAPER_HYPER[cfg.dataset]),
                "Table II of the study paper (no grid search cached here; run with --grid for ours)")
    raise click.UsageError(f"no hyperparameters for {cfg.dataset!r}: run with --grid (cached in {cache}) or give "
                           "--hidden --lr --weight-decay --momentum")


def _resumed(ctx: click.Context, out: Path, params: dict) -> tuple[StudyConfig, str]:
    """The saved settings of the study in `out`, with --trials/--methods as given; any other setting given
    again must agree with the saved one (it is refused by name otherwise)."""
    from mpts_fast.study.runner import saved_config

    try:
        saved = saved_config(out)
    except FileNotFoundError:
        raise click.ClickException(f"nothing to resume in {out}: it holds no study (no config.json); run without "
                                   f"--resume to start one") from None
    except ValueError as e:
        raise click.ClickException(str(e)) from None

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)

    clashes = []
    if params["dataset"] is not None and _dataset_name(params["dataset"]) != saved.dataset:
        clashes.append(f"--dataset {params['dataset']} (the study is on {saved.dataset})")
    for name in _SETTINGS:
        if given(name) and params[name] != getattr(saved, name):
            clashes.append(f"{_option(name)} {params[name]} (the study has {getattr(saved, name)})")
    for name in _HYPER:
        if params[name] is not None and params[name] != getattr(saved.hyper, name):
            clashes.append(f"{_option(name)} {params[name]} (the study has {getattr(saved.hyper, name)})")
    if clashes:
        raise click.UsageError(f"--resume continues the study in {out} with its own settings, but "
                               f"{'; '.join(clashes)}. Leave these options out to resume, or pass --overwrite "
                               f"(without --resume) to start afresh.")
    changes = {}
    if params["methods"] is not None:
        changes["methods"] = _method_names(params["methods"])
    if given("trials"):
        changes["trials"] = params["trials"]
    source = "the resumed study's config.json"
    try:
        source = json.loads((out / "study.json").read_text()).get("hyper_source", source)
    except (OSError, ValueError):
        pass
    return StudyConfig(**{**saved.__dict__, **changes}), source


@click.command(context_settings={"show_default": True})
@click.option("--dataset", "-d", default=None, help="Data set (case-insensitive): iris, wine, sine, fashion-mnist, "
              "california-housing, energy-efficiency, ... (`mpts-fast datasets`); train and test are pooled and the "
              "study splits them. Required unless --resume.")
@click.option("--methods", default=None, help=f"Comma-separated. Default: {','.join(METHODS)} (classification), "
              f"{','.join(REGRESSION_METHODS)} (regression; entropy is replaced by ensemble disagreement).")
@click.option("--trials", default=50, type=int, help="Trials (stratified 80/20 splits).")
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--resume", is_flag=True, help="Continue the study in --out with its saved settings (finished trials "
              "are kept; --trials and --methods may add more).")
@click.option("--overwrite", is_flag=True, help="Start afresh even if --out holds a study (its files are removed).")
@click.option("--seed", default=0, type=int, help="Base seed of splits, initial weights and batch orders.")
@click.option("--workers", default=None, type=int, help="Worker processes (one torch thread each). "
              "Default: the available cores.")
@click.option("--grid", "do_grid", is_flag=True, help="Run the 256-configuration grid search on passive learning "
              "(5-fold CV of a dedicated 80% split; never the test data) unless a cached result exists.")
@click.option("--grid-cache", type=click.Path(file_okay=False), default=None,
              help="Directory of cached grid results. Default: ~/.cache/mpts-fast/study-grid "
              "(beside $MPTS_FAST_DATA when set).")
@click.option("--hidden", type=int, default=None, help="Hidden units (with --lr, --weight-decay, --momentum: "
              "skip the grid). Without these: a cached grid, else our grid results shipped with mpts-fast (iris, "
              "wine, sine), else the study paper's Table II (fashion-mnist), else an error asking for --grid.")
@click.option("--lr", type=float, default=None, help="SGD learning rate.")
@click.option("--weight-decay", type=float, default=None, help="L2 weight decay (torch SGD convention).")
@click.option("--momentum", type=float, default=None, help="SGD momentum.")
@click.option("--epochs", default=1000, type=int, help="Epochs of passive and SASLA (our default: the paper's "
              "SASLA budget) and of every grid configuration.")
@click.option("--batch-size", default=16, type=int, help="Mini-batch size (our default).")
@click.option("--beta", default=0.9, type=float, help="SASLA: keep Φ > (1 − β)·mean Φ.")
@click.option("--selection-interval", default=1, type=int, help="SASLA: epochs between selections.")
@click.option("--norm", default="l1", type=click.Choice(["l1", "l2", "inf"], case_sensitive=False),
              help="SASLA: norm over inputs in Φ.")
@click.option("--query-size", default=0.02, type=float, help="Uncertainty sampling: patterns per query, a fraction "
              "of the initial pool (our default 2%) or a whole number (1 = the paper's algorithm).")
@click.option("--query-epochs", default=20, type=int, help="Uncertainty sampling: warm-started epochs after the "
              "initial set and after each query (our default).")
@click.option("--ensemble-size", default=3, type=int, help="Networks in the ensemble.")
@click.option("--conv-window", default=10, type=int, help="Convergence: window of epoch losses.")
@click.option("--conv-threshold", default=5e-3, type=float, help="Convergence: std threshold (our default).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Data directory for downloads.")
@click.option("--no-plots", is_flag=True, help="Skip the figures.")
@click.option("--progress/--no-progress", default=True, help="Progress bar.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or status lines; only the results.")
@click.pass_context
def study(ctx: click.Context, out_dir: str, **kw) -> None:
    """Passive learning vs SASLA vs entropy vs ensemble uncertainty sampling with a one-hidden-layer sigmoid
    network: writes DIR/study.json, DIR/report.md, DIR/curves.json, figures and per-trial results
    (DIR/trials, for --resume).

    The protocol follows Nicolay, "Active Learning in Neural Networks" (the study paper). Defaults it leaves
    open are ours: 1000 epochs, batch 16, query 2% of the pool with 20
    warm-started epochs per query, convergence when the std of the last 10 epoch losses stays < 5e-3.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    out = Path(out_dir)
    try:
        _study(ctx, out, **kw)
    except KeyboardInterrupt:
        if (out / "config.json").exists():
            hint = (f"finished trials are saved in {out / 'trials'}; `mpts-fast study -o {out} --resume` "
                    "continues the study")
        else:
            hint = "no trial had finished, nothing was saved"
        click.echo(f"\ninterrupted: {hint}", err=True)
        raise SystemExit(130) from None


def _study(ctx, out: Path, dataset, methods, trials, resume, overwrite, seed, workers, do_grid, grid_cache, hidden,
           lr, weight_decay, momentum, epochs, batch_size, beta, selection_interval, norm, query_size, query_epochs,
           ensemble_size, conv_window, conv_threshold, data_dir, no_plots, progress, quiet) -> None:
    from mpts_fast.study import data as sdata
    from mpts_fast.study.pool import default_workers
    from mpts_fast.study.runner import holds_study, run_study

    progress = progress and not quiet
    if resume and overwrite:
        raise click.UsageError("--resume continues the study in --out, --overwrite starts afresh: give one")
    if resume:
        cfg, source = _resumed(ctx, out, dict(ctx.params))
        if do_grid and not quiet:
            click.echo("--grid ignored: a resumed study keeps its hyperparameters", err=True)
    elif dataset is None:
        raise click.UsageError("Missing option '--dataset' / '-d' (required unless --resume).")
    else:
        cfg, source = None, None
    name = cfg.dataset if cfg is not None else _dataset_name(dataset)
    try:
        data = sdata.load(name, data_dir)
    except (OSError, ValueError) as e:  # a missing download, a checksum mismatch: nothing the options can fix
        raise click.ClickException(f"dataset {name}: {e}") from None
    workers = workers or default_workers()
    if cfg is None:
        if methods is None:
            names = METHODS if data.task == "classification" else REGRESSION_METHODS
        else:
            names = _method_names(methods)
        cfg = StudyConfig(name, names, trials, seed, epochs, batch_size, beta, selection_interval, norm.lower(),
                          query_size, query_epochs, ensemble_size, conv_window, conv_threshold,
                          Hyper(64, 0.1, 0.0, 0.9))  # placeholder hyperparameters until they are resolved
    try:
        cfg.validate(data.task)
    except ValueError as e:
        raise _usage_error(e) from None
    if not resume and holds_study(out) and not overwrite:
        raise click.ClickException(f"{out} already holds a study; pass --resume to continue it or --overwrite to "
                                   "start afresh")
    if source is None:
        cache = Path(grid_cache) if grid_cache else _default_cache()
        explicit = {"hidden": hidden, "lr": lr, "weight_decay": weight_decay, "momentum": momentum}
        hyper, source = _runtime_errors(lambda: _resolve_hyper(data, cfg, explicit, do_grid, cache, workers,
                                                               progress, quiet))
        cfg = StudyConfig(**{**cfg.__dict__, "hyper": hyper})
    if not quiet:
        click.echo(f"{cfg.dataset}: {len(data.y)} patterns, {data.task}; hyperparameters {cfg.hyper.__dict__} from "
                   f"{source}; {cfg.trials} trials of {', '.join(cfg.methods)} on {workers} worker(s)"
                   + (" (resumed)" if resume else ""), err=True)
    start = time.perf_counter()
    doc = _runtime_errors(lambda: run_study(data, cfg, out, workers=workers, resume=resume, overwrite=overwrite,
                                            progress=progress, plot=not no_plots, extra={"hyper_source": source}))
    key = "accuracy" if data.task == "classification" else "mse"
    for m, s in doc["methods"].items():
        click.echo(f"{m:9s} {key} {s[key + '_mean']:.4f} ± {s[key + '_std']:.4f}  "
                   f"final training set {s['final_train_size_mean']:.1f}  observations {s['observations_seen_mean']:.0f}")
    p = doc["statistics"]["friedman_p"]
    friedman = f"friedman p = {p:.3g}" if p is not None else "friedman p: n/a (needs ≥ 3 methods and ≥ 2 trials)"
    click.echo(f"{friedman} (mean ± sample std over {cfg.trials} trials); {time.perf_counter() - start:.1f} s; "
               f"wrote {out / 'study.json'}, report.md")


def _runtime_errors(fn):
    """Run `fn` with the study's runtime errors worded for the command line (exit 1)."""
    try:
        return fn()
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
