"""Query strategies, one per file, registered by name. Each implements `select(ctx, budget) -> pool indices` and
declares on its class what its training needs, its command-line options and how it shards under torchrun
(strategies/base.py). Every module of this package is imported here, so a new strategy file registers itself."""
import importlib
import pkgutil

from mpts_fast.strategies.base import Needs, ScoreStrategy, SelectionContext, Strategy, top_k
from mpts_fast.strategies.options import StrategyOption
from mpts_fast.strategies.registry import (STRATEGIES, build_strategy, cli_options, get_strategy, register,
                                          strategy_for_option, strategy_names, strategy_option_defaults)


def discover() -> list[str]:
    """Imports every module on this package's path (importing registers its strategies); returns their names."""
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    for name in names:
        importlib.import_module(f"{__name__}.{name}")
    return names


discover()

__all__ = ["Needs", "ScoreStrategy", "SelectionContext", "Strategy", "StrategyOption", "top_k", "STRATEGIES",
           "build_strategy", "cli_options", "discover", "get_strategy", "register", "strategy_for_option",
           "strategy_names", "strategy_option_defaults"]
