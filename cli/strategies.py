"""`mpts-fast strategies`: every query strategy, what its training needs, and its options with their defaults."""
from __future__ import annotations

import click


def _declared(cls) -> str:
    """The options of `run` / `compare` that reach a strategy or its training directly (not through --option), as
    the strategy declares them: '--mc-passes (default 10) sets passes'."""
    def default(opt) -> str:
        return opt.shown_default if opt.default is None and opt.shown_default else repr(opt.default)

    return ", ".join(f"{opt.flag} (default {default(opt)})" + (f" sets {opt.key}" if opt.to == "strategy" else "")
                     for opt in cls.declared_options())


def _value(v) -> str:
    """Defaults as written in the docs: 1/32 rather than 0.03125."""
    if isinstance(v, float) and 0 < v < 1 and (1 / v).is_integer() and 1 / v > 4:
        return f"1/{int(1 / v)}"
    return repr(v)


def _needs(needs) -> str:
    parts = []
    if needs.mmd:
        parts.append("MMD-regularised training")
    if needs.snapshots:
        parts.append("trajectory snapshots")
    if needs.ensemble_size > 1:
        parts.append(f"{needs.ensemble_size} ensemble members")
    if needs.dropout > 0:
        parts.append(f"dropout {needs.dropout:g} before the head")
    if needs.own_model:
        parts.append("a selection model of its own besides the task model")
    if needs.every_class:
        parts.append("every class in the initial set")
    return ", ".join(parts)


@click.command()
def strategies() -> None:
    """List the query strategies with their options (set with --option [STRATEGY.]KEY=VALUE) and defaults."""
    from mpts_fast.strategies import get_strategy, strategy_names, strategy_option_defaults

    for name in strategy_names():
        cls = get_strategy(name)
        click.echo(f"{name}: {cls.description}")
        if _needs(cls.needs):
            click.echo(f"    training: {_needs(cls.needs)}")
        options = strategy_option_defaults(name)
        if options:
            click.echo("    options: " + ", ".join(f"{k}={_value(v)}" for k, v in options.items()))
        if cls.declared_options():
            click.echo(f"    run/compare: {_declared(cls)}")
    click.echo("\nExample: mpts-fast run -s gcnal --option variant=uncertaingcn; in compare name the strategy: "
               "--option gcnal.variant=uncertaingcn. Fractions such as 1/32 are accepted as numbers.")
