"""The task model and the selection model: what each strategy declares, which model trains with which seed stream,
and that the split leaves the strategies that select with the task model unchanged."""
import pytest

from mpts_fast.strategies import Needs, get_strategy, strategy_names
from mpts_fast.strategies.registry import model_dropout


def test_strategies_declare_how_their_selection_model_trains():
    own = {name for name in strategy_names() if get_strategy(name).needs.own_model}
    assert own == {"mpts", "bald", "ensemble_variance"}
    assert model_dropout("bald") == get_strategy("bald").needs.dropout == 0.3
    assert all(model_dropout(n) == 0.0 for n in strategy_names() if n != "bald")


@pytest.mark.parametrize("bad, match", [({"dropout": 1.0}, "dropout"), ({"dropout": True}, "dropout"),
                                        ({"ensemble_size": 0}, "ensemble_size")])
def test_needs_refuses_impossible_declarations(bad, match):
    with pytest.raises(ValueError, match=match):
        Needs(**bad)
