"""Query strategies, one per file, registered by name. Each implements `select(ctx, budget) -> pool indices` and
declares in `needs` what the trainer must produce (snapshots, MMD training, ensemble members)."""
from mpts_fast.strategies import (  # noqa: F401  (importing registers them)
    badge, bald, coreset, ensemble_variance, entropy, least_confidence, margin, mpts, random)
from mpts_fast.strategies import alfa_mix, cdal, deepfool, gcnal  # noqa: F401,E402  (the paper's other baselines)
from mpts_fast.strategies import cdal_hellinger  # noqa: F401,E402  (our CDAL variant)
from mpts_fast.strategies.base import Needs, ScoreStrategy, SelectionContext, Strategy, top_k
from mpts_fast.strategies.registry import (STRATEGIES, build_strategy, get_strategy, register, strategy_for_option,
                                          strategy_names, strategy_option_defaults)

__all__ = ["Needs", "ScoreStrategy", "SelectionContext", "Strategy", "top_k", "STRATEGIES", "build_strategy",
           "get_strategy", "register", "strategy_for_option", "strategy_names", "strategy_option_defaults"]
