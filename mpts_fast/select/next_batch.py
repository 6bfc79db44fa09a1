"""One real annotation round: which unlabeled pool items to label next, from the labels you have so far and either a
backbone trained here or your own model's embeddings / probabilities."""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mpts_fast import _checks
from mpts_fast.select import inputs
from mpts_fast.select.inputs import InputError
from mpts_fast.training.config import DEFAULT_MMD_WEIGHT
from mpts_fast.select.precomputed import NEEDS_OUTPUTS, SAMPLES_NOTE, PrecomputedModel, row_pool

DEFAULT_EPOCHS = 100


@dataclass(frozen=True)
class Selection:
    """indices: (k,) int64 pool indices to annotate next, in pick order. scores: (k,) float64 of `score_name` for
    strategies that rank by a score (higher first, or lower first for margin), None for strategies that pick by
    diversity or at random (their order is the pick order). settings: everything the picks depend on."""

    indices: np.ndarray
    scores: np.ndarray | None
    score_name: str | None
    settings: dict[str, Any]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per pick: rank (1-based), index, score (None without scores, or where it is not finite)."""
        scores = [None] * len(self.indices) if self.scores is None else [
            v if math.isfinite(v) else None for v in self.scores.tolist()]  # inf: no centre yet (cold start)
        return [{"rank": r + 1, "index": int(i), "score": s} for r, (i, s) in enumerate(zip(self.indices, scores))]

    def write(self, path: str | os.PathLike, *, overwrite: bool = False) -> list[Path]:
        """`.json`: {"settings", "picks"} in one file; `.csv`: rank,index,score rows and the settings beside it in
        <stem>.settings.json. Written atomically; an existing file is refused unless overwrite=True."""
        from mpts_fast.results import write_json_atomic, write_text_atomic

        path = Path(path)
        if path.suffix.lower() not in (".csv", ".json"):
            raise InputError("out", f"{path}: expected a .csv or .json file name")
        targets = [path] if path.suffix.lower() == ".json" else [path, path.with_suffix(".settings.json")]
        existing = [str(p) for p in targets if p.exists()]
        if existing and not overwrite:
            raise FileExistsError(f"out: {', '.join(existing)} exists; choose another file or overwrite it")
        if path.suffix.lower() == ".json":
            write_json_atomic(path, {"settings": self.settings, "picks": self.rows()})
        else:
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=["rank", "index", "score"], lineterminator="\n")
            writer.writeheader()
            writer.writerows({**r, "score": "" if r["score"] is None else repr(r["score"])} for r in self.rows())
            write_text_atomic(path, buf.getvalue())
            write_json_atomic(targets[1], self.settings)
        return targets


def _strategy(name: str, options: dict | None):
    from mpts_fast.strategies import build_strategy, get_strategy

    try:
        cls = get_strategy(name)
    except ValueError as e:
        raise InputError("strategy", str(e).removeprefix("strategy: ")) from None
    if getattr(cls, "uses_unlabeled_labels", False):
        raise InputError("strategy", f"{name!r} reads the labels of unlabeled pool items, which a real annotation "
                                     f"round does not have")
    try:
        return build_strategy(name, **(options or {}))
    except (ValueError, TypeError) as e:
        raise InputError("strategy_options", str(e)) from None


def _positive(value, field: str) -> int:
    try:
        return _checks.int_option(value, field)
    except ValueError as e:
        raise InputError(field, str(e).partition(": ")[2]) from None


def default_strategy(model: str | None, probs_dims: int | None, has_embeddings: bool) -> str:
    """mpts when a backbone is trained here or posterior samples (S, N, C) are given; entropy for (N, C)
    probabilities; coreset for embeddings alone."""
    if model is not None or probs_dims == 3:
        return "mpts"
    return "entropy" if probs_dims == 2 else ("coreset" if has_embeddings else "mpts")


def select_next(pool=None, labeled=None, *, budget: int, strategy: str | None = None, model: str | None = None,
                embeddings=None, probs=None, seed: int = 0, num_classes: int | None = None, class_names=None,
                epochs: int | None = None, lr: float = 1e-3, batch_size: int = 64, mmd_weight: float = DEFAULT_MMD_WEIGHT,
                snapshots: int | None = None, strategy_options: dict | None = None, device: str = "cpu",
                progress: bool = False) -> Selection:
    """The `budget` unlabeled pool items to annotate next, in pick order (`mpts-fast select` in Python).

    pool: (N, *shape) features or images (array, tensor, or a .npy / .npz path, memory-mapped); needed with `model`.
    labeled: the labels so far: a CSV / JSON path of pool index → label, a mapping {index: label}, (indices,
    labels), or None. Labels are class ids, or names from `class_names` (a list, or a .txt / .json path).
    Either model ("mlp", "resnet18", "vit_small", "cnn1d": trained here on the labeled items, for `epochs` epochs
    with Adam `lr`, the way `strategy` needs: MMD term and snapshots for mpts, ensembles for ensemble_variance), or your
    own model's outputs: embeddings (N, D) and/or probs (N, C) softmax, or (S, N, C) posterior samples (snapshots,
    MC-dropout passes or ensemble members) for mpts / bald / ensemble_variance.
    num_classes: default len(class_names), probs' C, else the largest label + 1.

    strategy: a registered name; None: default_strategy (mpts, entropy or coreset by what is given).
    A cold start (no labels yet): strategy "random" draws uniformly from the unlabeled pool, seeded (it trains
    nothing: pool, embeddings or probs only give N, and a `model` is not trained); coreset picks from embeddings
    alone; a backbone trained here needs at least one label.
    The same inputs and seed give the same picks. Returns a Selection; every bad input raises InputError (a
    ValueError) naming the argument.
    """
    from mpts_fast.results import provenance
    from mpts_fast.strategies import ScoreStrategy, SelectionContext
    from mpts_fast.training import derive_seed

    if strategy is None:
        dims = None if probs is None else getattr(inputs.read_array(probs, "probs", ("probs",))[0], "ndim", None)
        strategy = default_strategy(model, dims, embeddings is not None)
    strat = _strategy(strategy, strategy_options)
    budget = _positive(budget, "budget")
    seed = int(seed)
    names = inputs.read_class_names(class_names)
    used = {"pool": None, "embeddings": None, "probs": None}
    settings: dict[str, Any] = {"strategy": strategy, "strategy_options": dict(strategy_options or {}),
                                "budget": budget, "seed": seed}
    if model is not None and (embeddings is not None or probs is not None):
        raise InputError("model", "give either a backbone to train (model) or your model's outputs (embeddings / "
                                  "probs), not both")
    classes_from_probs = None
    if strategy == "random":
        # a uniform draw reads no model: nothing is trained, and any input gives the pool size (a cold start)
        trained, x_pool, n_pool, classes_from_probs = _random_pool(pool, embeddings, probs, used)
        settings["mode"] = "random"
    elif model is None:
        trained, x_pool, n_pool, classes_from_probs = _precomputed(strategy, pool, embeddings, probs, used)
        settings["mode"] = "precomputed"
    else:
        x_pool, used["pool"] = _pool_for_training(pool)
        n_pool = x_pool.shape[0]
    if classes_from_probs is not None:
        if num_classes is not None and num_classes != classes_from_probs:
            raise InputError("num_classes", f"{num_classes} classes given but probs has {classes_from_probs}")
        num_classes = classes_from_probs
    if names is not None:
        if num_classes is not None and num_classes != len(names):
            raise InputError("class_names", f"{len(names)} names but {num_classes} classes")
        num_classes = len(names)
    if num_classes is not None:
        num_classes = _positive(num_classes, "num_classes")
    lab, y_lab, used["labeled"] = inputs.read_labels(labeled, n_pool, num_classes, names)
    training = model is not None and strategy != "random"
    if num_classes is None:
        if lab.numel() == 0 and training:
            raise InputError("labeled", _no_labels_to_train(model))
        num_classes = int(y_lab.max()) + 1 if lab.numel() else 0  # 0: unknown, for embeddings-only strategies
    unlabeled_mask = torch.ones(n_pool, dtype=torch.bool)
    unlabeled_mask[lab] = False
    unlabeled = unlabeled_mask.nonzero().squeeze(1)
    if budget > unlabeled.numel():
        raise InputError("budget", f"{budget} items asked for but only {unlabeled.numel()} of the pool's {n_pool} are "
                                   f"unlabeled")
    if strat.needs.every_class:
        missing = sorted(set(range(num_classes)) - set(y_lab.tolist()))
        if missing:
            raise InputError("labeled", f"strategy {strategy!r} needs every class labeled; classes {missing} have no "
                                        f"label yet")
    if training:
        trained = _train(strat, model, x_pool, lab, y_lab, num_classes, seed, epochs, lr, batch_size, mmd_weight,
                         snapshots, device, progress)
        settings.update(mode="train", model=model, epochs=epochs or DEFAULT_EPOCHS, lr=lr, batch_size=batch_size,
                        **({"mmd_weight": mmd_weight} if strat.needs.mmd else {}),
                        **({"snapshots": snapshots} if strat.needs.snapshots else {}),
                        **({"ensemble_size": strat.needs.ensemble_size} if strat.needs.ensemble_size > 1 else {}))
    select_seed = derive_seed(seed, "select")
    ctx = SelectionContext(x_pool=x_pool, labeled=lab, y_labeled=y_lab, unlabeled=unlabeled, trained=trained,
                           num_classes=num_classes, generator=torch.Generator().manual_seed(select_seed),
                           seed=select_seed)
    scores, score_name = None, None
    if isinstance(strat, ScoreStrategy):
        # score once: the strategy's own select (top-b, or whatever a subclass does) reads these cached scores
        cached = strat.scores(ctx)
        strat.scores = lambda _ctx: cached
        picks = strat.select(ctx, budget).cpu()
        _check_picks(picks, unlabeled_mask, budget, strategy)
        values = getattr(cached, strat.score_field).double().cpu()
        scores, score_name = values[torch.searchsorted(unlabeled, picks)].numpy(), strat.score_field
    elif strategy == "coreset":
        # the embeddings the strategy computes are kept, to report each pick's distance to its nearest centre
        features = _memoize_pool_embeddings(trained, x_pool)
        picks = strat.select(ctx, budget).cpu()
        _check_picks(picks, unlabeled_mask, budget, strategy)
        scores, score_name = kcenter_distances(features(), lab, picks), "distance_to_nearest_centre"
    else:
        picks = strat.select(ctx, budget).cpu()
    _check_picks(picks, unlabeled_mask, budget, strategy)
    settings.update(num_classes=num_classes or None, class_names=list(names) if names else None, n_pool=n_pool,
                    n_labeled=int(lab.numel()), n_unlabeled=int(unlabeled.numel()),
                    inputs={k: v for k, v in used.items() if v is not None},
                    score=score_name, score_order=None if score_name is None else
                    ("descending" if getattr(strat, "largest", True) else "ascending"),
                    provenance=provenance(device if training else "cpu"))
    return Selection(picks.numpy().astype(np.int64), scores, score_name, settings)


def _memoize_pool_embeddings(trained, x_pool):
    """Makes trained.embeddings(x_pool) compute once; returns a function giving that result (after the strategy ran)."""
    original, memo = trained.embeddings, {}

    def embeddings(x):
        if x is not x_pool:
            return original(x)
        if "pool" not in memo:
            memo["pool"] = original(x)
        return memo["pool"]

    trained.embeddings = embeddings
    return lambda: embeddings(x_pool)


def kcenter_distances(features: torch.Tensor, labeled: torch.Tensor, picks: torch.Tensor,
                      block: int = 4096) -> np.ndarray:
    """(k,) float64: each pick's Euclidean distance to the nearest labeled item or earlier pick, the value greedy
    k-center maximised when it chose it (inf for a first pick without labels). Memory O(block · k)."""
    f = features.detach().to("cpu", torch.float64)
    chosen = f[picks]
    best = torch.full((len(picks),), float("inf"), dtype=torch.float64)
    for part in labeled.split(block) if labeled.numel() else ():
        best = torch.minimum(best, torch.cdist(chosen, f[part]).min(1).values)
    among = torch.cdist(chosen, chosen)
    among = among.masked_fill(~torch.ones_like(among, dtype=torch.bool).tril(-1), float("inf"))  # earlier picks only
    return torch.minimum(best, among.min(1).values).numpy()


def _no_labels_to_train(model: str) -> str:
    return (f"no labels yet: training backbone {model!r} needs at least one labeled item. Start cold with strategy "
            f"random (--strategy random: a seeded uniform draw from the pool), annotate those items, then select "
            f"with the backbone")


_SHAPES = {"pool": "(N, features) or (N, *shape)", "embeddings": "(N, D)", "probs": "(N, C) or (S, N, C)"}


def _random_pool(pool, embeddings, probs, used: dict):
    """(trained stand-in, row pool, N, classes of probs or None) for a uniform draw: N from whichever input is given
    (pool, embeddings or probs), read memory-mapped and never trained on."""
    sizes = {}
    classes = None
    for field, value, keys in (("pool", pool, inputs.POOL_KEYS), ("embeddings", embeddings, ("embeddings", "x")),
                               ("probs", probs, ("probs",))):
        if value is None:
            continue
        array, used[field] = inputs.read_array(value, field, keys)
        dims = (2, 3) if field == "probs" else ((2,) if field == "embeddings" else None)
        if array.ndim < 2 or (dims is not None and array.ndim not in dims):
            raise InputError(field, f"{used[field]}: expected one row per item, "
                                    f"{_SHAPES[field]}, got shape {tuple(array.shape)}")
        sizes[field] = array.shape[-2] if field == "probs" else array.shape[0]
        if field == "probs":
            classes = array.shape[-1]
    if not sizes:
        raise InputError("pool", "strategy 'random' needs the pool size: give the pool (or your model's embeddings "
                                 "or probs)")
    if len(set(sizes.values())) > 1:
        raise InputError(next(iter(sizes)), "the inputs disagree on the pool size: "
                         + ", ".join(f"{k} has {v} rows" for k, v in sizes.items()))
    n = next(iter(sizes.values()))
    if n == 0:
        raise InputError(next(iter(sizes)), "holds no rows; expected the whole pool")
    return PrecomputedModel(None, None), row_pool(n), n, classes


def _pool_for_training(pool):
    if pool is None:
        raise InputError("pool", "training a backbone (model) needs the pool's features or images")
    return inputs.pool_tensor(pool)


def _precomputed(strategy: str, pool, embeddings, probs, used: dict):
    """(trained stand-in, row pool, N, classes of probs or None) from your model's outputs."""
    if embeddings is None and probs is None:
        raise InputError("model", "give a backbone to train (model: mlp, resnet18, vit_small, cnn1d) or your model's "
                                  "outputs (embeddings and/or probs); with no labels yet, start cold with strategy "
                                  "random (a seeded uniform draw from the pool)")
    need = NEEDS_OUTPUTS.get(strategy)
    if need is None:
        usable = ", ".join(sorted(NEEDS_OUTPUTS))
        raise InputError("strategy", f"{strategy!r} needs the backbone itself (its head or input gradients), not only "
                                     f"its outputs; train one here (model / --model) or use one of {usable}")
    emb = prob = None
    if embeddings is not None:
        emb, used["embeddings"] = inputs.matrix(embeddings, "embeddings", (2,), ("embeddings", "x"))
    if probs is not None:
        prob, used["probs"] = inputs.matrix(probs, "probs", (2, 3), ("probs",))
        inputs.check_probs(prob, used["probs"])
    if "embeddings" in need and emb is None:
        raise InputError("embeddings", f"strategy {strategy!r} needs your model's embeddings (N, D)")
    if "probs" in need and prob is None:
        raise InputError("probs", f"strategy {strategy!r} needs your model's probabilities (N, C)")
    if "samples" in need and prob is None:
        raise InputError("probs", f"strategy {strategy!r} needs posterior samples: probabilities (S, N, C) of "
                                  f"{SAMPLES_NOTE[strategy]}")
    if "samples" in need and (prob.dim() != 3 or prob.shape[0] < 2):
        raise InputError("probs", f"strategy {strategy!r} scores a posterior: probs must be (S, N, C) with S >= 2 "
                                  f"samples ({SAMPLES_NOTE[strategy]}), got {tuple(prob.shape)}")
    sizes = {"embeddings": None if emb is None else emb.shape[0],
             "probs": None if prob is None else prob.shape[-2]}
    if pool is not None:
        pool_array, used["pool"] = inputs.read_array(pool, "pool", inputs.POOL_KEYS)
        sizes["pool"] = pool_array.shape[0]
    known = {k: v for k, v in sizes.items() if v is not None}
    if len(set(known.values())) > 1:
        raise InputError("probs" if "probs" in known else "embeddings",
                         "the inputs disagree on the pool size: "
                         + ", ".join(f"{k} has {v} rows" for k, v in known.items()))
    n = next(iter(known.values()))
    if n == 0:
        raise InputError("embeddings" if emb is not None else "probs", "holds no rows; expected the whole pool")
    return PrecomputedModel(emb, prob), row_pool(n), n, None if prob is None else prob.shape[-1]


def _train(strat, model: str, x_pool, lab, y_lab, num_classes, seed, epochs, lr, batch_size, mmd_weight, snapshots,
           device, progress):
    from mpts_fast.loop import ConfigError, _check_model, resolve_device
    from mpts_fast.models import build_model
    from mpts_fast.strategies.registry import model_dropout
    from mpts_fast.training import TrainConfig, Trainer, derive_seed

    try:
        _check_model(model)
        dev = resolve_device(device)
    except ConfigError as e:
        raise InputError(e.field, str(e).partition(": ")[2]) from None
    if lab.numel() == 0:
        raise InputError("labeled", _no_labels_to_train(model))
    needs = strat.needs
    try:
        config = TrainConfig(epochs=DEFAULT_EPOCHS if epochs is None else epochs, lr=lr, batch_size=batch_size,
                             mmd_weight=mmd_weight if needs.mmd else 0.0,
                             snapshots=snapshots if needs.snapshots else 0, ensemble_size=needs.ensemble_size)
    except ValueError as e:
        field, _, message = str(e).partition(": ")
        raise InputError(field, message) from None
    shape = tuple(x_pool.shape[1:])
    dropout = model_dropout(strat.name)  # as the AL loop builds it for this strategy (MC dropout needs it)
    try:
        build_model(model, shape, num_classes, dropout=dropout)
    except ValueError as e:
        raise InputError("model", f"{model!r} cannot take pool items of shape {shape}: {str(e).partition(': ')[2]}") \
            from None
    trainer = Trainer(lambda: build_model(model, shape, num_classes, dropout=dropout), config, dev, progress=progress)
    return trainer.fit(x_pool, lab, y_lab, seed=derive_seed(seed, "train"))


def _check_picks(picks: torch.Tensor, unlabeled_mask: torch.Tensor, budget: int, strategy: str) -> None:
    if picks.dtype != torch.int64 or tuple(picks.shape) != (budget,):
        raise RuntimeError(f"strategy {strategy!r} returned {tuple(picks.shape)} {picks.dtype}, expected ({budget},) "
                           f"int64")
    if picks.unique().numel() != budget or not bool(unlabeled_mask[picks].all()):
        raise RuntimeError(f"strategy {strategy!r} picked duplicates or labeled items")


__all__ = ["Selection", "select_next", "InputError"]
