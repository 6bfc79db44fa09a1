"""Options shared by `mpts-fast run` and `mpts-fast compare`, and turning them into a RunConfig: strategy options,
options that apply to only some strategies, and resuming with the saved settings."""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from mpts_fast.loop import EVALUATE_CHOICES, RunConfig
from mpts_fast.training.recipe import DEFAULT_RECIPE, FIT_STEPS, RECIPES

_DEFAULT = "default: the data set's (see `mpts-fast datasets`)"


def declared_options() -> list:
    """The options strategies declare (strategies/options.py): each once, its help naming the strategies using it."""
    from mpts_fast.strategies import cli_options

    return [click.option(opt.flag, opt.param, type=opt.type, default=opt.default,
                         show_default=opt.default is not None, help=f"{opt.help} Used by {', '.join(users)}.")
            for opt, users in cli_options().values()]


def constructor_flags() -> list[str]:
    """The declared options that set a strategy's constructor keyword (as --option does), e.g. --mc-passes."""
    from mpts_fast.strategies import cli_options

    return [flag for flag, (opt, _) in cli_options().items() if opt.to == "strategy"]


def run_setting_fields() -> list[str]:
    """The RunConfig fields that declared options set (mmd_weight, snapshots, the cyclic-LR settings), in order."""
    from mpts_fast.strategies import cli_options

    return [opt.key for opt, _ in cli_options().values() if opt.to == "run"]


def experiment_options(fn):
    """Options for the AL protocol; those left out take the data set's defaults (MPTS paper Table 1)."""
    options = [
        click.option("--dataset", "-d", default="digits", show_default=True,
                     help="Data set name, case-insensitive (`mpts-fast datasets`)."),
        click.option("--rounds", type=int, help=f"Evaluated rounds (points on the learning curve); {_DEFAULT}."),
        click.option("--initial", type=int, help=f"Size of the random initial labeled set; {_DEFAULT}."),
        click.option("--budget", type=int, help=f"Items labeled per round; {_DEFAULT}."),
        click.option("--epochs", type=int, help=f"Training epochs per round (from scratch) under --recipe paper, "
                                                f"{_DEFAULT}; under --recipe fit at most this many (default: no cap)."),
        click.option("--repeats", type=int, default=1, show_default=True, help="Runs with seeds seed, seed+1, ..."),
        click.option("--seed", type=int, default=0, show_default=True, help="Base seed."),
        click.option("--lr", type=float, help=f"Adam learning rate; {_DEFAULT}."),
        click.option("--batch-size", type=int,
                     help="Training batch size; default: the data set's (64; 100 for the MNIST-1D sets)."),
        click.option("--model", help="Backbone: mlp, resnet18, vit_small, cnn1d; default: the data set's."),
        *declared_options(),
        click.option("--evaluate", type=click.Choice(EVALUATE_CHOICES), default="task", show_default=True,
                     help="Which model scores the learning curve: 'task', every strategy's model trained with the plain "
                          "recipe (strategies that select with another training, such as mpts and bald, also train a "
                          "selection model of their own), or 'selection', only the strategy's own model (the ablation; "
                          "how runs were made before). docs/mpts.md."),
        click.option("--recipe", type=click.Choice(RECIPES), default=DEFAULT_RECIPE, show_default=True,
                     help="How every model trains each round: 'fit', Adam with a warm-up and a cosine decay over a "
                          "budget of optimiser steps (--steps) until the model fits its labeled set (99% training "
                          "accuracy, then 3 times the steps taken so far more, annealing), or 'paper', --epochs "
                          "epochs at a constant --lr as the MPTS paper's Table 1 (reproduces it). docs/mpts.md, 'Training recipes'."),
        click.option("--steps", type=int, help=f"Optimiser-step budget per model and round under --recipe fit, the "
                                               f"same for every labeled-set size; default {FIT_STEPS}."),
        click.option("--option", "options", multiple=True, metavar="[STRATEGY.]KEY=VALUE",
                     help="A strategy option, repeatable, e.g. --option gcnal.variant=uncertaingcn or "
                          "--option deepfool.pool_subsample=None (the strategy prefix may be left out with `run`)."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda."),
        click.option("--ddp", is_flag=True, help="Under torchrun: train with DistributedDataParallel, each rank its "
                                                 "share of every global --batch-size batch (for large labeled sets; "
                                                 "docs/scaling-out.md). Refused without torchrun."),
        click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Seeds of --repeats trained side by side, one worker process each (one per core pays for "
                          "the small models of tabular sets); results, picks and files as with 1. Not with --ddp."),
        click.option("--lockstep/--no-lockstep", default=True, show_default=True,
                     help="Train the models of one round's seeds (and an ensemble's members) as one stacked model "
                          "where the backbone allows (the MLP; not with the MMD term, snapshots or dropout): each "
                          "model as it would train alone through the stack. --no-lockstep trains them one by one "
                          "with torch's unbatched ops (the figures of earlier versions; equal to float rounding). "
                          "docs/cli.md."),
        click.option("--data-dir", type=click.Path(file_okay=False), help="Where downloaded data sets live."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars or per-round table."),
    ]
    return functools.reduce(lambda f, opt: opt(f), reversed(options), fn)


_FRACTION = re.compile(r"^\s*[+-]?\d+(\.\d*)?\s*/\s*\d+(\.\d*)?\s*$")


def _literal(text: str):
    """A Python literal (3, 0.5, None, 'x'), a fraction such as 1/32 (as a float), or the bare word itself."""
    import ast

    if _FRACTION.match(text):
        num, den = (float(part) for part in text.split("/"))
        if den == 0:
            raise click.BadParameter(f"{text!r} divides by zero", param_hint="'--option'")
        return num / den
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word such as uncertaingcn


def given(ctx: click.Context, name: str) -> bool:
    """Whether the user typed option `name` (or set it through the environment), as opposed to its default."""
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def _option_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def strategy_options(strategy: str, raw: tuple[str, ...], *, prefix_required: bool,
                     in_run: list[str] | None = None) -> dict:
    """Parse `--option [STRATEGY.]KEY=VALUE` entries that apply to `strategy` into constructor keyword arguments.

    in_run: every strategy of this invocation; an entry naming another strategy is refused, as is an option that
    `strategy` does not take (the message names the strategy that does)."""
    from mpts_fast.cli.names import resolve_strategy
    from mpts_fast.strategies import strategy_for_option, strategy_option_defaults

    in_run = in_run or [strategy]
    options = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected [STRATEGY.]KEY=VALUE, got {item!r}", param_hint="'--option'")
        target, dot, name = key.rpartition(".")
        if dot:
            target = resolve_strategy(target, "'--option'")
            if target not in in_run:
                raise click.BadParameter(f"{item!r} names strategy {target!r}, which is not in this run "
                                         f"({', '.join(in_run)})", param_hint="'--option'")
        owners = [s for s in in_run if name in strategy_option_defaults(s)] or strategy_for_option(name)
        if not dot and prefix_required:
            example = ", ".join(f"{o}.{name}={value}" for o in owners) if owners else f"STRATEGY.{name}={value}"
            raise click.BadParameter(f"name the strategy, e.g. {example}", param_hint="'--option'")
        if (target if dot else strategy) != strategy:
            continue
        takes = strategy_option_defaults(strategy)
        if name not in takes:
            elsewhere = f" ({name} is an option of {', '.join(owners)})" if owners else ""
            raise click.BadParameter(f"strategy {strategy!r} has no option {name!r}; it takes "
                                     f"{', '.join(takes) or 'no options'}{elsewhere}", param_hint="'--option'")
        options[name] = _literal(value)
    return options


def check_applicable(ctx: click.Context, strategies: list[str]) -> None:
    """Options that only some strategies use (those they declare) are refused when no strategy of this run uses them
    (they would be ignored silently otherwise); results.json records them only for the strategies that use them."""
    from mpts_fast.strategies import cli_options

    for flag, (opt, users) in cli_options().items():
        if given(ctx, opt.param) and not set(users) & set(strategies):
            which = f"{opt.audience} ({', '.join(users)})" if opt.audience else ", ".join(users)
            raise click.BadParameter(f"applies only to {which}; {', '.join(strategies)} does not use it",
                                     param_hint=f"'{flag}'")


def build_options(strategy: str, kw: dict, *, prefix_required: bool = False,
                  in_run: list[str] | None = None) -> dict:
    """The strategy's constructor options from the options it declares (--mc-passes) and --option (which wins), checked
    by building the strategy once."""
    from mpts_fast.strategies import build_strategy, get_strategy

    saved = kw.get("saved_strategy_options", {}).get(strategy)
    if saved is not None:  # resuming without --option or a declared constructor option: the saved options
        return dict(saved)
    options = {}
    for opt in get_strategy(strategy).declared_options():
        if opt.to == "strategy":
            try:
                options[opt.key] = opt.validate(kw.get(opt.param, opt.default))
            except ValueError as e:
                raise click.BadParameter(str(e).partition(": ")[2], param_hint=f"'{opt.flag}'") from None
    options.update(strategy_options(strategy, kw["options"], prefix_required=prefix_required, in_run=in_run))
    try:
        build_strategy(strategy, **options)
    except ValueError as e:
        raise click.BadParameter(f"strategy {strategy!r}: {e}", param_hint="'--option'") from None
    return options


def merge_saved(ctx: click.Context, kw: dict, saved: dict, source: Path) -> dict:
    """`kw` with every setting the user did not type taken from a saved results.json config; typed settings must agree
    with the saved ones (--repeats may grow). A UsageError names each option that disagrees."""
    kw = dict(kw)
    if saved:  # written before the task / selection split: the strategy's own model scored the curve
        # and before the training recipes: trained the paper's way
        saved = {"evaluate": "selection", "recipe": "paper", **saved}
    conflicts = []
    for field, saved_value in saved.items():
        if field not in kw or field in ("options",) or saved_value is None:
            continue  # None: a setting the saved strategy does not use
        if not given(ctx, field):
            kw[field] = saved_value
        elif field != "repeats" and kw[field] != saved_value:
            conflicts.append(f"{_option_name(field)} {kw[field]} (saved: {saved_value})")
    if conflicts:
        raise click.UsageError(f"cannot resume {source}: it was written with other settings: {'; '.join(conflicts)}. "
                               f"Leave these options out to resume with the saved settings, or use another --out.")
    typed = given(ctx, "options") or any(given(ctx, flag[2:].replace("-", "_")) for flag in constructor_flags())
    if not typed and "strategy" in saved:
        kw.setdefault("saved_strategy_options", {})[saved["strategy"]] = saved.get("strategy_options", {})
    return kw


def run_config(strategy: str, kw: dict, *, prefix_required: bool = False, in_run: list[str] | None = None) -> RunConfig:
    options = build_options(strategy, kw, prefix_required=prefix_required, in_run=in_run)
    return RunConfig(dataset=kw["dataset"], strategy=strategy, rounds=kw["rounds"], initial=kw["initial"],
                     budget=kw["budget"], epochs=kw["epochs"], repeats=kw["repeats"], seed=kw["seed"], lr=kw["lr"],
                     batch_size=kw["batch_size"], model=kw["model"], strategy_options=options, ddp=kw["ddp"],
                     evaluate=kw["evaluate"], recipe=kw["recipe"], steps=kw["steps"],
                     **{f: kw[f] for f in run_setting_fields()})


def round_printer(quiet: bool):
    """A per-round table written above the progress bars: the curve's accuracy and F1, the training accuracy on the
    labeled set, and a column only for strategies that have it (never a column of nan): the separate selection
    model's accuracy, else the snapshot / ensemble accuracy. A round whose model ends below
    training/diagnostics.UNDERFIT_ACCURACY on its labels is said once per run, on stderr, --quiet or not."""
    import sys

    from tqdm.auto import tqdm

    from mpts_fast.training.diagnostics import underfit_note

    columns = {"selection_test_accuracy": "sel acc", "snapshot_accuracy": "snap acc", "ensemble_accuracy": "ens acc"}
    state: dict[str, Any] = {"extra": None, "warned": False}

    def on_round(seed: int, rec: dict) -> None:
        note = None if state["warned"] else underfit_note(rec)
        if note:
            state["warned"] = True
            tqdm.write(f"warning: seed {seed}: {note}", file=sys.stderr)
        if quiet:
            return
        if state["extra"] is None:
            state["extra"] = next((k for k in columns if k in rec), "")
            extra = f" {columns[state['extra']]:>8}" if state["extra"] else ""
            tqdm.write(f"{'seed':>4} {'round':>5} {'labeled':>7} {'acc':>6} {'f1':>6}{extra} {'train acc':>9} "
                       f"{'train s':>8} {'select s':>8}")
        extra = f" {rec[state['extra']]:>8.3f}" if state["extra"] else ""
        train_acc = rec.get("train_accuracy")
        train_acc = f"{train_acc:>9.3f}" if isinstance(train_acc, float) else f"{'':>9}"
        tqdm.write(f"{seed:>4} {rec['round']:>5} {rec['n_labeled']:>7} {rec['test_accuracy']:>6.3f} "
                   f"{rec['f1_macro']:>6.3f}{extra} {train_acc} {rec['train_seconds']:>8.2f} "
                   f"{rec['select_seconds']:>8.2f}")

    return on_round


def describe(cfg: RunConfig, device: str) -> str:
    """The resolved settings in one line, printed when a run starts (what the defaults became)."""
    shown = {k: v for k, v in cfg.to_json().items() if v is not None and k not in ("strategy_options", "dataset",
                                                                                      "strategy")}
    opts = ", ".join(f"{k}={v!r}" for k, v in cfg.strategy_options.items())
    return (f"{cfg.strategy} on {cfg.dataset}: " + " ".join(f"{k}={v}" for k, v in shown.items()) +
            f" device={device}" + (f" options: {opts}" if opts else ""))
