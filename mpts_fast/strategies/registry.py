"""Strategies by name."""
from __future__ import annotations

from typing import Any

from mpts_fast.strategies.base import Strategy

STRATEGIES: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    if not cls.name or cls.name in STRATEGIES:
        raise ValueError(f"strategy class {cls.__name__} needs a unique name, got {cls.name!r}")
    STRATEGIES[cls.name] = cls
    return cls


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
    import inspect

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
    import inspect

    params = inspect.signature(get_strategy(name).__init__).parameters
    return {p.name: p.default for p in params.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def strategy_for_option(option: str) -> list[str]:
    """The strategies that take `option` (to point a bare `--option KEY=...` at the right one)."""
    return [name for name in strategy_names() if option in strategy_option_defaults(name)]
