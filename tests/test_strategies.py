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
