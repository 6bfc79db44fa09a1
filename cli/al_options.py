"""Options shared by `mpts-fast run` and `mpts-fast compare`, and turning them into a RunConfig."""
from __future__ import annotations

import functools
import math

import click

from mpts_fast.loop import RunConfig

_DEFAULT = "default: the data set's (see `mpts-fast datasets`)"


def experiment_options(fn):
    """Options for the AL protocol; those left out take the data set's defaults (MPTS paper Table 1)."""
    options = [
        click.option("--dataset", "-d", default="digits", show_default=True, help="Data set name (`mpts-fast datasets`)."),
        click.option("--rounds", type=int, help=f"Evaluated rounds (points on the learning curve); {_DEFAULT}."),
        click.option("--initial", type=int, help=f"Size of the random initial labeled set; {_DEFAULT}."),
        click.option("--budget", type=int, help=f"Items labeled per round; {_DEFAULT}."),
        click.option("--epochs", type=int, help=f"Training epochs per round (from scratch); {_DEFAULT}."),
        click.option("--repeats", type=int, default=1, show_default=True, help="Runs with seeds seed, seed+1, ..."),
        click.option("--seed", type=int, default=0, show_default=True, help="Base seed."),
        click.option("--lr", type=float, help=f"Adam learning rate; {_DEFAULT}."),
        click.option("--batch-size", type=int, help="Training batch size; default 64."),
        click.option("--model", help="Backbone: mlp, resnet18, vit_small; default: the data set's."),
        click.option("--mmd-weight", type=float, default=1.0, show_default=True,
                     help="λ of the MMD² regulariser (mpts only; our default, the paper leaves it open)."),
        click.option("--snapshots", type=int, help="Trajectory snapshots kept (mpts); default epochs // 2."),
        click.option("--mc-passes", type=int, default=10, show_default=True, help="MC-dropout passes (bald)."),
        click.option("--option", "options", multiple=True, metavar="[STRATEGY.]KEY=VALUE",
                     help="A strategy option, repeatable, e.g. --option gcnal.variant=uncertaingcn or "
                          "--option deepfool.pool_subsample=None (the strategy prefix may be left out with `run`)."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda."),
        click.option("--data-dir", type=click.Path(file_okay=False), help="Where downloaded data sets live."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars or per-round table."),
    ]
    return functools.reduce(lambda f, opt: opt(f), reversed(options), fn)


def _literal(text: str):
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word such as uncertaingcn


def strategy_options(strategy: str, raw: tuple[str, ...], *, prefix_required: bool) -> dict:
    """Parse `--option [STRATEGY.]KEY=VALUE` entries that apply to `strategy` into constructor keyword arguments."""
    options = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected [STRATEGY.]KEY=VALUE, got {item!r}", param_hint="--option")
        target, dot, name = key.rpartition(".")
        if not dot and prefix_required:
            raise click.BadParameter(f"name the strategy, e.g. {strategy}.{key}={value}", param_hint="--option")
        if not dot or target == strategy:
            options[name] = _literal(value)
    return options


def run_config(strategy: str, kw: dict, *, prefix_required: bool = False) -> RunConfig:
    options = {"passes": kw["mc_passes"]} if strategy == "bald" else {}
    options.update(strategy_options(strategy, kw["options"], prefix_required=prefix_required))
    return RunConfig(dataset=kw["dataset"], strategy=strategy, rounds=kw["rounds"], initial=kw["initial"],
                     budget=kw["budget"], epochs=kw["epochs"], repeats=kw["repeats"], seed=kw["seed"], lr=kw["lr"],
                     batch_size=kw["batch_size"], model=kw["model"], mmd_weight=kw["mmd_weight"],
                     snapshots=kw["snapshots"], strategy_options=options)


def round_printer(quiet: bool):
    """A per-round table written above the progress bars."""
    from tqdm.auto import tqdm

    header = f"{'seed':>4} {'round':>5} {'labeled':>7} {'acc':>6} {'f1':>6} {'snap acc':>8} {'train s':>8} {'select s':>8}"
    state = {"printed": False}

    def on_round(seed: int, rec: dict) -> None:
        if quiet:
            return
        if not state["printed"]:
            tqdm.write(header)
            state["printed"] = True
        snap = rec.get("snapshot_accuracy", rec.get("ensemble_accuracy", math.nan))
        tqdm.write(f"{seed:>4} {rec['round']:>5} {rec['n_labeled']:>7} {rec['test_accuracy']:>6.3f} "
                   f"{rec['f1_macro']:>6.3f} {snap:>8.3f} {rec['train_seconds']:>8.2f} {rec['select_seconds']:>8.3f}")

    return on_round
