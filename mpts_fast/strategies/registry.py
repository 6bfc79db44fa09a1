"""Strategies by name, and the command-line options they declare."""
from __future__ import annotations

import inspect
from typing import Any

from mpts_fast.strategies.base import Needs, Strategy
from mpts_fast.strategies.options import StrategyOption

STRATEGIES: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: adds the strategy under `cls.name`, after checking what it declares (a mistake in a new
    strategy file fails at import, naming the class)."""
    if not isinstance(cls, type) or not issubclass(cls, Strategy):
        raise TypeError(f"register: expected a Strategy subclass, got {cls!r}")
    if not cls.name or not isinstance(cls.name, str) or cls.name in STRATEGIES:
        raise ValueError(f"strategy class {cls.__name__} needs a unique name, got {cls.name!r}")
    if not isinstance(cls.needs, Needs):
        raise ValueError(f"strategy {cls.name!r}: needs: expected a Needs instance, got {cls.needs!r}")
    if not isinstance(cls.measures_diversity, bool):
        raise ValueError(f"strategy {cls.name!r}: measures_diversity: expected True or False, got "
                         f"{cls.measures_diversity!r}")
    _check_options(cls)
    STRATEGIES[cls.name] = cls
    return cls


def _check_options(cls: type[Strategy]) -> None:
    """Each declared option is a StrategyOption; a constructor option names a keyword of `__init__` with the same
    default; a flag other strategies declare too is declared the same way (the CLI makes one option of it)."""
    options = cls.declared_options()
    if not isinstance(cls.cli_options, tuple) or not all(isinstance(o, StrategyOption) for o in options):
        raise ValueError(f"strategy {cls.name!r}: cli_options: expected a tuple of StrategyOption, got "
                         f"{cls.cli_options!r}")
    defaults = _constructor_defaults(cls)
    flags = [o.flag for o in options]
    if len(set(flags)) != len(flags):
        raise ValueError(f"strategy {cls.name!r}: cli_options: a flag is declared twice: {flags}")
    for opt in options:
        if opt.to == "strategy" and (opt.key not in defaults or defaults[opt.key] != opt.default):
            raise ValueError(f"strategy {cls.name!r}: option {opt.flag} sets constructor keyword {opt.key!r} with "
                             f"default {opt.default!r}, but __init__ takes {_listed(defaults)}")
        for other, declared in cli_options().items():
            if other == opt.flag and declared[0] != opt:
                raise ValueError(f"strategy {cls.name!r}: option {opt.flag} is declared otherwise by "
                                 f"{', '.join(declared[1])}: {declared[0]}")


def _listed(defaults: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in defaults.items()) or "no options"


def _constructor_defaults(cls: type[Strategy]) -> dict[str, Any]:
    params = inspect.signature(cls.__init__).parameters
    return {p.name: p.default for p in params.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def cli_options() -> dict[str, tuple[StrategyOption, list[str]]]:
    """{flag: (its declaration, the strategies that use it)} over every registered strategy, in a fixed order: the
    training recipes' run settings first, then the strategies' own options by strategy name."""
    found: dict[str, tuple[StrategyOption, list[str]]] = {}
    for name in strategy_names():
        for opt in get_strategy(name).declared_options():
            found.setdefault(opt.flag, (opt, []))[1].append(name)
    return dict(sorted(found.items(), key=lambda kv: kv[1][0].to != "run"))


def model_dropout(name: str) -> float:
    """The dropout probability strategy `name`'s selection model is built with (its `needs.dropout`: 0 as the
    reference code trains, except where MC dropout needs it)."""
    return get_strategy(name).needs.dropout


def strategy_names() -> list[str]:
    return sorted(STRATEGIES)


def get_strategy(name: str) -> type[Strategy]:
    try:
        return STRATEGIES[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(str(name).lower(), strategy_names(), n=2)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise ValueError(f"strategy: unknown strategy {name!r}; {hint}expected one of "
                         f"{', '.join(strategy_names())}") from None


def build_strategy(name: str, **options: Any) -> Strategy:
    """An instance of the named strategy; an option its constructor does not take is a ValueError naming it."""
    cls = get_strategy(name)
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        accepted = [p for p in params if p != "self"]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ValueError(f"strategy {name!r}: unknown option(s) {', '.join(unknown)}; it takes "
                             f"{', '.join(accepted) or 'no options'}")
    return cls(**options)


def strategy_option_defaults(name: str) -> dict[str, Any]:
    """The options a strategy's constructor takes, with their defaults (empty for strategies without options)."""
    return _constructor_defaults(get_strategy(name))


def strategy_for_option(option: str) -> list[str]:
    """The strategies that take `option` (to point a bare `--option KEY=...` at the right one)."""
    return [name for name in strategy_names() if option in strategy_option_defaults(name)]
