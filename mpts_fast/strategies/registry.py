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


def strategy_names() -> list[str]:
    return sorted(STRATEGIES)


def get_strategy(name: str) -> type[Strategy]:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"strategy: unknown strategy {name!r}; expected one of {', '.join(strategy_names())}") from None


def build_strategy(name: str, **options: Any) -> Strategy:
    return get_strategy(name)(**options)
