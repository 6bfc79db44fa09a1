import pytest
import torch

from mpts_fast import ops
from mpts_fast.models import build_model
from mpts_fast.strategies import SelectionContext, build_strategy, strategy_names, top_k
from mpts_fast.training import TrainConfig, Trainer

from al_fixtures import blobs

CORE = ["random", "entropy", "least_confidence", "margin", "bald", "ensemble_variance", "mpts", "coreset", "badge"]


def _context(strategy, seed=0):
    data = blobs(n=90)
    needs = strategy.needs
    cfg = TrainConfig(epochs=4, lr=1e-2, batch_size=8, mmd_weight=1.0 if needs.mmd else 0.0,
                      snapshots=2 if needs.snapshots else 0, ensemble_size=min(needs.ensemble_size, 2))
    lab = torch.arange(9)
    trained = Trainer(lambda: build_model("mlp", data.input_shape, 3, hidden=16), cfg).fit(
        data.x_train, lab, data.y_train[lab], seed=seed)
    return SelectionContext(x_pool=data.x_train, labeled=lab, y_labeled=data.y_train[lab],
                            unlabeled=torch.arange(9, data.x_train.shape[0]), trained=trained, num_classes=3,
                            generator=torch.Generator().manual_seed(seed), seed=seed)


def test_registry_holds_the_core_strategies():
    assert set(CORE) <= set(strategy_names())
    with pytest.raises(ValueError, match="entropy"):
        build_strategy("nope")


@pytest.mark.parametrize("name", CORE)
def test_picks_are_valid_and_deterministic(name):
    s = build_strategy(name)
    a = s.select(_context(s), 7)
    b = s.select(_context(s), 7)
    assert a.dtype == torch.int64 and a.shape == (7,)
    assert a.unique().numel() == 7 and bool((a >= 9).all())
    assert torch.equal(a, b)


def test_top_k_ties_go_to_the_lowest_position():
    assert top_k(torch.tensor([1.0, 3.0, 3.0, 2.0, 3.0]), 2).tolist() == [1, 2]
    assert top_k(torch.tensor([1.0, 0.0, 0.0]), 2, largest=False).tolist() == [1, 2]


@pytest.mark.parametrize("name,field,largest,source", [
    ("entropy", "entropy", True, None), ("least_confidence", "least_confidence", True, None),
    ("margin", "margin", False, None), ("mpts", "entropy", True, "snapshots"),
    ("ensemble_variance", "variance", True, "ensemble"), ("bald", "bald", True, "mc_dropout")])
def test_score_strategies_take_the_top_of_their_score(name, field, largest, source):
    s = build_strategy(name)
    ctx = _context(s)
    if source is None:
        scores = ops.snapshot_uncertainty(ctx.trained.logits(ctx.x_unlabeled).unsqueeze(0))
    else:
        scores = ctx.trained.posterior_scores(ctx.x_unlabeled, source, passes=10, seed=ctx.seed)
    want = ctx.unlabeled[top_k(getattr(scores, field), 5, largest=largest)]
    assert torch.equal(s.select(ctx, 5), want)


def test_coreset_gives_the_picks_of_the_op():
    s = build_strategy("coreset")
    ctx = _context(s)
    emb = ctx.trained.embeddings(ctx.x_pool)
    assert torch.equal(s.select(ctx, 6), ops.kcenter_greedy(emb, 6, labeled=ctx.labeled_mask()))


def test_badge_gives_the_picks_of_the_op():
    s = build_strategy("badge")
    ctx = _context(s)
    x_u = ctx.x_unlabeled
    want = ops.badge_select(ctx.trained.probs(x_u), ctx.trained.embeddings(x_u), 6,
                            generator=torch.Generator().manual_seed(3))
    ctx.generator = torch.Generator().manual_seed(3)
    assert torch.equal(s.select(ctx, 6), ctx.unlabeled[want])


def test_bald_rejects_bad_passes():
    with pytest.raises(ValueError, match="passes"):
        build_strategy("bald", passes=0)
    with pytest.raises(ValueError, match="no options"):
        build_strategy("entropy", passes=3)


@pytest.mark.parametrize("name", CORE)
def test_edge_budgets_one_and_the_whole_pool(name):
    s = build_strategy(name)
    ctx = _context(s)
    one = s.select(ctx, 1)
    assert one.shape == (1,) and int(one) >= 9
    ctx.generator = torch.Generator().manual_seed(0)
    everything = s.select(ctx, ctx.unlabeled.numel())
    assert torch.equal(torch.sort(everything).values, ctx.unlabeled)


def _unregistered(modules) -> list[str]:
    """Strategy subclasses defined in these modules that the registry does not hold (the bases excepted)."""
    import inspect

    from mpts_fast.strategies import STRATEGIES, ScoreStrategy, Strategy

    return [f"{m.__name__}.{cls.__name__}" for m in modules for cls in vars(m).values()
            if inspect.isclass(cls) and issubclass(cls, Strategy) and cls.__module__ == m.__name__
            and cls not in (Strategy, ScoreStrategy) and STRATEGIES.get(cls.name) is not cls]


def test_every_strategy_file_is_discovered_and_registered(tmp_path):
    import importlib
    import pkgutil

    import mpts_fast.strategies as package

    names = [m.name for m in pkgutil.iter_modules(package.__path__)]
    assert set(package.discover()) == {n for n in names if not n.startswith("_")}
    modules = [importlib.import_module(f"mpts_fast.strategies.{n}") for n in names]
    assert _unregistered(modules) == []
    # the check finds a strategy someone forgot to register
    (tmp_path / "forgotten_strategy.py").write_text(
        "from mpts_fast.strategies import Strategy\n\nclass Forgotten(Strategy):\n    name = 'forgotten'\n")
    spec = importlib.util.spec_from_file_location("forgotten_strategy", tmp_path / "forgotten_strategy.py")
    forgotten = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(forgotten)
    assert _unregistered([forgotten]) == ["forgotten_strategy.Forgotten"]


def test_what_a_strategy_declares_is_checked_when_it_registers():
    from typing import ClassVar

    from mpts_fast.strategies import STRATEGIES, Needs, Strategy, StrategyOption, register

    passes = StrategyOption("--mc-passes", "passes", int, default=5, minimum=1, help="Other passes.")

    class WrongDefault(Strategy):
        name = "wrong_default"
        cli_options = (StrategyOption("--depth", "depth", int, default=3, help="Depth."),)

        def __init__(self, depth: int = 4) -> None:
            self.depth = depth

    class NoSuchKeyword(Strategy):
        name = "no_such_keyword"
        cli_options = (StrategyOption("--depth", "depth", int, default=3, help="Depth."),)

    class SameFlagOtherwise(Strategy):  # BALD declares --mc-passes with default 10
        name = "same_flag_otherwise"
        cli_options = (passes,)

        def __init__(self, passes: int = 5) -> None:
            self.passes = passes

    class NotBool(Strategy):
        name = "not_bool"
        measures_diversity = "yes"

    class BadNeeds(Strategy):
        name = "bad_needs"
        needs: ClassVar = {"mmd": True}

    for cls, match in ((WrongDefault, "depth"), (NoSuchKeyword, "depth"), (SameFlagOtherwise, "declared otherwise"),
                       (NotBool, "measures_diversity"), (BadNeeds, "needs")):
        with pytest.raises(ValueError, match=match):
            register(cls)
        assert cls.name not in STRATEGIES
    with pytest.raises(ValueError, match="flag"):
        StrategyOption("mc-passes", "passes", int, help="No dashes.")
    with pytest.raises(ValueError, match="--snapshot-count"):
        StrategyOption("--snapshot-count", "snapshots", int, to="run", help="A run setting under another name.")
    with pytest.raises(ValueError, match="default"):
        StrategyOption("--depth", "depth", int, default=0, minimum=1, help="Default out of range.")
    assert Needs(mmd=True).run_options()[0].flag == "--mmd-weight" and Needs().run_options() == ()


def test_declared_option_validation():
    from mpts_fast.strategies import StrategyOption

    passes = StrategyOption("--mc-passes", "passes", int, default=10, minimum=1, help="MC-dropout passes.")
    assert passes.validate(3) == 3
    for bad in (0, 2.5, True, "3", None):
        with pytest.raises(ValueError, match=r"passes: expected a positive integer"):
            passes.validate(bad)
    t = StrategyOption("--temperature", "temperature", float, default=2.0, minimum=0, strict=True, help="T.")
    assert t.validate(3) == 3.0 and isinstance(t.validate(3), float)
    for bad in (0, -1.0, float("nan"), False):
        with pytest.raises(ValueError, match="temperature: expected a positive number"):
            t.validate(bad)
    assert StrategyOption("--w", "w", float, minimum=0, help="w.").expected() == "a number ≥ 0"
