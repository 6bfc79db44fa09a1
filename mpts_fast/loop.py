"""The active-learning loop: initial labels, rounds of train → evaluate → select, repeats with fixed seeds, results
appended atomically after every round, and `resume` from the last finished round with the same picks."""
from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from mpts_fast import distributed
from mpts_fast.data import Dataset, load_dataset
from mpts_fast.distributed.comm import broadcast_object
from mpts_fast.distributed.training import sync_trained
from mpts_fast.models import build_model
from mpts_fast.results import RESULTS_FILE, load_json, load_results, output_lock, provenance, write_json_atomic
from mpts_fast.strategies import Needs, SelectionContext, Strategy, build_strategy
from mpts_fast.training import TrainConfig, Trainer, TrainedModel, derive_seed
from mpts_fast.training.diagnostics import labeled_fit, mmd_gap
from mpts_fast.training.threads import training_threads
from mpts_fast.training.recipe import DEFAULT_RECIPE, FIT_SNAPSHOTS, FIT_STEPS, RECIPES
from mpts_fast.training.config import (DEFAULT_CYCLE_MAX_FACTOR, DEFAULT_CYCLE_MIN_FACTOR, DEFAULT_CYCLE_STEPS,
                                       DEFAULT_MMD_WEIGHT,
                                       check_cycle_settings)

RoundCallback = Callable[[int, dict], None]


class ConfigError(ValueError):
    """A setting that cannot work, found before any training. `field` names the RunConfig field (the CLI maps it to its
    option)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ResumeMismatchError(ValueError):
    """A resumed results.json was written with other settings. `differences`: {field: (saved, given)}."""

    def __init__(self, path: Path, differences: dict[str, tuple[Any, Any]]) -> None:
        listed = ", ".join(f"{k} (saved {a!r}, given {b!r})" for k, (a, b) in differences.items())
        super().__init__(f"resume: {path} was written with different settings: {listed}; resume with the saved "
                         f"settings or write to another directory")
        self.path, self.differences = path, differences


@dataclass(frozen=True)
class RunConfig:
    """One experiment: a strategy on a data set. `None` fields take the data set's defaults (MPTS paper Table 1).

    rounds: evaluated rounds (points on the learning curve); rounds − 1 selections of `budget` items follow the initial
    `initial` random labels. snapshots: trajectory snapshots for MPTS (None: one per cycle, at most epochs // 2).
    mmd_weight: λ (MPTS only). cycle_steps, cycle_max_factor, cycle_min_factor: MPTS's cyclic phase (optimiser steps per
    cycle; its LR range as multiples of lr), see training/schedule.py. ddp: under torchrun, train with
    DistributedDataParallel, batch_size being the global batch (distributed/ddp.py); refused without a launcher.
    evaluate: which model scores the learning curve. "task": every strategy's task model, trained with the plain recipe
    (CE, final weights); a strategy whose selection needs other training (MPTS, BALD, ensemble_variance) gets a
    selection model of its own besides. "selection": only the strategy's own model is trained, and it scores the curve
    (an ablation; how results were made before the split). docs/mpts.md, "Which model selects and which is evaluated".
    recipe: how every model of the run trains (training/recipe.py, docs/mpts.md "Training recipes"). "paper": `epochs`
    epochs at the constant `lr` (the data set's, the MPTS paper's Table 1 where it has them). "fit": at most `steps`
    optimiser steps (None: recipe.FIT_STEPS) with a warm-up and a cosine decay peaking at `lr`, settling and stopping
    once the running training accuracy reaches 99%; `epochs`, when given, caps its epochs too (default None: no
    cap). A selection model trains the same recipe with its strategy's additions; under "fit" MPTS's cyclic phase
    follows the fitting phase: `snapshots` cycles (None: recipe.FIT_SNAPSHOTS), one snapshot each.
    """

    dataset: str = "digits"
    strategy: str = "mpts"
    rounds: int | None = None
    initial: int | None = None
    budget: int | None = None
    epochs: int | None = None
    repeats: int = 1
    seed: int = 0
    lr: float | None = None
    batch_size: int | None = None
    model: str | None = None
    mmd_weight: float = DEFAULT_MMD_WEIGHT
    snapshots: int | None = None
    cycle_steps: int | None = None
    cycle_max_factor: float | None = None
    cycle_min_factor: float | None = None
    strategy_options: dict[str, Any] = field(default_factory=dict)
    ddp: bool = False
    evaluate: str = "task"
    recipe: str = DEFAULT_RECIPE
    steps: int | None = None

    def resolved(self, data: Dataset, needs: "Needs | None" = None) -> "RunConfig":
        """Defaults filled in from the data set; with the strategy's `needs`, settings it does not use (mmd_weight,
        snapshots) become None, so results.json records only what was used."""
        d = data.defaults
        pick = lambda v, default: default if v is None else v  # noqa: E731
        paper = self.recipe == "paper"
        # the paper recipe trains the data set's epochs; the fitting one a step budget (epochs only cap it, if given)
        epochs = pick(self.epochs, d.epochs) if paper else self.epochs
        fit_only = {} if paper else {"steps": pick(self.steps, FIT_STEPS),
                                     "snapshots": pick(self.snapshots, FIT_SNAPSHOTS)}
        cfg = dataclasses.replace(
            self, rounds=pick(self.rounds, d.rounds), initial=pick(self.initial, d.initial), **fit_only,
            budget=pick(self.budget, d.budget), epochs=epochs, lr=pick(self.lr, d.lr),
            batch_size=pick(self.batch_size, d.batch_size), model=pick(self.model, d.model),
            cycle_steps=pick(self.cycle_steps, DEFAULT_CYCLE_STEPS),
            cycle_max_factor=pick(self.cycle_max_factor, DEFAULT_CYCLE_MAX_FACTOR),
            cycle_min_factor=pick(self.cycle_min_factor, DEFAULT_CYCLE_MIN_FACTOR))
        return cfg if needs is None else cfg.used_only(needs)

    def used_only(self, needs: "Needs") -> "RunConfig":
        """This config with the settings the strategy does not use set to None."""
        return dataclasses.replace(self, mmd_weight=self.mmd_weight if needs.mmd else None,
                                   snapshots=self.snapshots if needs.snapshots else None,
                                   **{k: getattr(self, k) if needs.snapshots else None for k in CYCLE_FIELDS})

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


CYCLE_FIELDS = ("cycle_steps", "cycle_max_factor", "cycle_min_factor")
EVALUATE_CHOICES = ("task", "selection")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device", f"{device!r} requested but CUDA is not available (torch {torch.__version__})")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError("device", f"expected auto, cpu or cuda[:i], got {device!r}") from None


def validate(cfg: RunConfig, data: Dataset, strategy: Strategy) -> None:
    """Refuse impossible settings before any training."""
    if data.task != "classification":
        raise ConfigError("dataset", f"{data.name!r} is a {data.task} set; the AL engine needs classification")
    n_pool = data.x_train.shape[0]
    if cfg.recipe not in RECIPES:
        raise ConfigError("recipe", f"expected one of {', '.join(RECIPES)}, got {cfg.recipe!r}")
    if cfg.recipe == "paper" and cfg.steps is not None:
        raise ConfigError("steps", "a budget of optimiser steps applies only to recipe 'fit'; recipe 'paper' trains "
                                   "a fixed number of epochs (epochs)")
    for name in ("rounds", "initial", "epochs", "repeats", "steps"):
        if getattr(cfg, name) is None and name in ("epochs", "steps"):
            continue  # recipe 'fit' without an epoch cap; recipe 'paper' has no step budget
        if isinstance(getattr(cfg, name), bool) or getattr(cfg, name) < 1:
            raise ConfigError(name, f"expected a positive integer, got {getattr(cfg, name)}")
    if cfg.budget < 1 and cfg.rounds > 1:
        raise ConfigError("budget", f"expected a positive integer, got {cfg.budget}")
    if cfg.evaluate not in EVALUATE_CHOICES:
        raise ConfigError("evaluate", f"expected one of {', '.join(EVALUATE_CHOICES)}, got {cfg.evaluate!r}")
    if strategy.needs.snapshots and cfg.snapshots is not None and cfg.snapshots < 1:
        raise ConfigError("snapshots", f"strategy {strategy.name!r} averages trajectory snapshots, so it needs at least "
                                       f"1, got {cfg.snapshots}")
    if strategy.needs.snapshots:
        try:
            check_cycle_settings(cfg.cycle_steps, cfg.cycle_max_factor, cfg.cycle_min_factor)
        except ValueError as e:
            field_name, _, message = str(e).partition(": ")
            raise ConfigError(field_name, message) from None
    _check_model(cfg.model)
    needed = cfg.initial + cfg.budget * (cfg.rounds - 1)
    if needed > n_pool:
        raise ConfigError("budget", f"initial {cfg.initial} + {cfg.rounds - 1} rounds × budget {cfg.budget} = {needed} "
                                    f"labels, but the pool of {data.name!r} holds only {n_pool} items")
    if cfg.ddp:
        _check_ddp(cfg)
    if strategy.needs.every_class and cfg.initial < data.num_classes:
        raise ConfigError("initial", f"strategy {strategy.name!r} needs every class labeled, so the initial set must "
                                     f"hold at least {data.num_classes} items, got {cfg.initial}")


def _check_ddp(cfg: RunConfig) -> None:
    """--ddp needs torchrun (a plain process has no ranks to spread the batches over: refused rather than silently
    replicated); under torchrun with one rank it is the single-process path."""
    from mpts_fast.distributed.ddp import check_ddp_sizes, launcher_world_size, under_launcher

    if not under_launcher():
        raise ConfigError("ddp", "DistributedDataParallel training needs a torchrun launch, e.g. torchrun "
                                 "--standalone --nproc-per-node=2 -m mpts_fast run --ddp ...; leave --ddp out in "
                                 "one process (a run saved with --ddp resumes under torchrun)")
    try:
        check_ddp_sizes(cfg.initial, cfg.batch_size, launcher_world_size())
    except ValueError as e:
        field_name, _, message = str(e).partition(": ")
        raise ConfigError("initial" if field_name == "labeled" else field_name, message) from None


def _check_model(name: str) -> None:
    """An unknown backbone, or one whose optional package is missing, is refused before training (not in round 0)."""
    import importlib.util

    from mpts_fast.models import model_names

    if name not in model_names():
        raise ConfigError("model", f"unknown backbone {name!r}; expected one of {', '.join(model_names())}")
    if name == "vit_small" and importlib.util.find_spec("timm") is None:
        raise ConfigError("model", "backbone 'vit_small' needs the optional package timm (pip install timm)")


def _recipe(cfg: RunConfig) -> dict:
    """The TrainConfig fields of the run's recipe, shared by the task model and any selection model."""
    return {"recipe": cfg.recipe, "steps": FIT_STEPS if cfg.steps is None else cfg.steps}


def train_config(cfg: RunConfig, strategy: Strategy) -> TrainConfig:
    """How the strategy's selection model trains (its `needs`: MMD term, snapshots, ensemble members), on the run's
    recipe."""
    needs = strategy.needs
    return TrainConfig(epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, **_recipe(cfg),
                       mmd_weight=cfg.mmd_weight if needs.mmd else 0.0,
                       snapshots=cfg.snapshots if needs.snapshots else 0, ensemble_size=needs.ensemble_size,
                       **({k: getattr(cfg, k) for k in CYCLE_FIELDS} if needs.snapshots else {}))


def task_train_config(cfg: RunConfig) -> TrainConfig:
    """The plain recipe every strategy's task model trains with: CE, the run's recipe and optimiser settings, final
    weights."""
    return TrainConfig(epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, **_recipe(cfg))


def evaluate(trained: TrainedModel, data: Dataset) -> dict[str, float]:
    """Test metrics of the final model (scikit-learn), plus snapshot / ensemble accuracy when there are several."""
    from sklearn.metrics import accuracy_score, matthews_corrcoef, precision_recall_fscore_support

    y = data.y_test.numpy()
    pred = trained.logits(data.x_test).argmax(1).cpu().numpy()
    # one call for the three macro averages (what f1_score, precision_score and recall_score each compute): sklearn's
    # argument checks cost ~1 ms a call, a round's evaluation is a few ms
    precision, recall, f1, _ = precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
    out = {"test_accuracy": float(accuracy_score(y, pred)), "f1_macro": float(f1),
           "precision_macro": float(precision), "recall_macro": float(recall),
           "mcc": float(matthews_corrcoef(y, pred))}
    if trained.snapshots:
        p = trained.mean_probs(data.x_test, "snapshots").argmax(1).cpu().numpy()
        out["snapshot_accuracy"] = float(accuracy_score(y, p))
    if trained.swa_model is not None:  # the snapshots' weight average, BatchNorm recomputed (update_bn)
        with torch.no_grad():
            p = torch.cat([trained.swa_model(xb.to(trained.device)).argmax(1).cpu()
                           for xb in torch.split(data.x_test, trained.eval_batch_size)]).numpy()
        out["swa_accuracy"] = float(accuracy_score(y, p))
    if len(trained.members) > 1:
        p = trained.mean_probs(data.x_test, "ensemble").argmax(1).cpu().numpy()
        out["ensemble_accuracy"] = float(accuracy_score(y, p))
    return out


class ActiveLearningRun:
    """Runs (or resumes) `cfg` and keeps `<out>/results.json` current after every round."""

    def __init__(self, cfg: RunConfig, out_dir: str | Path, *, device: str = "auto", data_dir: str | None = None,
                 data: Dataset | None = None, progress: bool = True, on_round: RoundCallback | None = None,
                 jobs: int = 1, lockstep: bool = True) -> None:
        self.data = data if data is not None else load_dataset(cfg.dataset, data_dir, progress=progress)
        self.strategy = build_strategy(cfg.strategy, **cfg.strategy_options)
        self.cfg = cfg.resolved(self.data, self.strategy.needs)
        validate(self.cfg, self.data, self.strategy)
        # under torchrun: join the process group (nccl on CUDA, gloo otherwise), CUDA becomes this rank's local GPU
        self.device = distributed.setup(resolve_device(device))
        self.path = Path(out_dir) / RESULTS_FILE
        self.progress = progress and distributed.is_primary()  # one progress bar, rank 0's
        self.on_round = on_round
        # jobs: seeds of --repeats trained side by side in worker processes (parallel_runs.py), same files and picks
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ConfigError("jobs", f"expected a positive whole number of worker processes, got {jobs!r}")
        if jobs > 1 and (cfg.ddp or distributed.launched()):
            raise ConfigError("jobs", "parallel seeds run in one process per seed, not under torchrun or --ddp; "
                                      "leave --jobs out there")
        self.jobs = jobs
        # lockstep: the seeds of a round train as one stacked model where the backbone allows (training/lockstep.py)
        self.lockstep = bool(lockstep)

    def _fresh_results(self) -> dict:
        # provenance: one entry for the start and one per resume
        return {"dataset": self.data.name, "strategy": self.cfg.strategy, "config": self.cfg.to_json(),
                "device": str(self.device), "provenance": [provenance(str(self.device))], "runs": []}

    def _load_for_resume(self) -> dict:
        results = load_results(self.path)  # an incomplete file is named as damaged, never a KeyError or a blamed option
        saved, mine = dict(results.get("config", {})), self.cfg.to_json()
        needs = self.strategy.needs  # files written before unused settings were recorded as None hold values there
        saved.setdefault("ddp", False)  # written before --ddp existed: replicated training
        # written before the task / selection split: the strategy's own model scored the curve
        saved.setdefault("evaluate", "selection")
        # written before the training recipes: trained the paper's way (fixed epochs, constant lr)
        saved.setdefault("recipe", "paper")
        saved.setdefault("steps", None)
        saved.update(mmd_weight=saved.get("mmd_weight") if needs.mmd else None,
                     snapshots=saved.get("snapshots") if needs.snapshots else None)
        saved_repeats = max(int(saved.pop("repeats", 1)), len(results.get("runs", [])))
        mine.pop("repeats")  # more repeats may be asked for on resume; fewer never drops stored runs
        if saved != mine:
            diff = {k: (saved.get(k), mine.get(k)) for k in sorted(set(saved) | set(mine)) if saved.get(k) != mine.get(k)}
            raise ResumeMismatchError(self.path, diff)
        self.cfg = dataclasses.replace(self.cfg, repeats=max(self.cfg.repeats, saved_repeats))
        results["config"] = self.cfg.to_json()
        results.setdefault("provenance", []).append(provenance(str(self.device)))
        return results

    def _holds_finished_round(self) -> bool:
        """Whether <out>/results.json holds a finished round (a first round that failed leaves one without)."""
        try:
            return any(run.get("rounds") for run in load_json(self.path).get("runs", []))
        except (OSError, ValueError, AttributeError):
            return True  # unreadable: never overwrite it silently

    def run(self, resume: bool = False, overwrite: bool = False) -> dict:
        """resume: continue `<out>/results.json` from its last finished round (starting afresh when there is none);
        overwrite: start afresh over it. Resuming with more repeats adds runs; with fewer keeps every stored run.
        The output directory's lock is held throughout: a second process given it raises OutputLockedError."""
        # torchrun: rank 0 alone writes <out>, so rank 0 alone holds its lock (the others would find it taken)
        lock = output_lock(self.path.parent) if distributed.is_primary() else contextlib.nullcontext()
        with lock:
            return self._run_locked(resume, overwrite)

    def _run_locked(self, resume: bool, overwrite: bool) -> dict:
        # torchrun: rank 0 alone reads and writes <out>; the others take its results (same runs, resumed rounds)
        results = self._start(resume, overwrite) if distributed.is_primary() else None
        results = broadcast_object(results, 0, "sharing results.json from rank 0")
        pending = [i for i, run in enumerate(results["runs"][: self.cfg.repeats]) if not run.get("complete")]
        if self.jobs > 1 and len(pending) > 1:
            from mpts_fast.parallel_runs import run_seeds_in_parallel

            run_seeds_in_parallel(self, results, pending, self.jobs)
            return results
        self._run_many(results, [results["runs"][i] for i in pending], self.data.x_train.to(self.device))
        return results

    def _start(self, resume: bool, overwrite: bool) -> dict:
        """The results to continue: fresh, or <out>/results.json's for resume; the new runs' initial sets drawn."""
        if self.path.exists() and not (resume or overwrite) and self._holds_finished_round():
            raise FileExistsError(f"results: {self.path} exists; pass resume=True to continue it or overwrite=True to "
                                  f"start again, or write to another directory")
        results = self._load_for_resume() if resume and self.path.exists() else self._fresh_results()
        # every repeat's initial set is drawn (and checked) before any training
        new_runs = [self._new_run(rep) for rep in range(len(results["runs"]), self.cfg.repeats)]
        results["runs"].extend(new_runs)
        write_json_atomic(self.path, results)
        return results

    def _new_run(self, rep: int) -> dict:
        """A run's record with its initial set drawn: stratified (one item per class first), the rule recorded."""
        from mpts_fast.initial_set import INITIAL_RULE, stratified_initial

        seed = self.cfg.seed + rep
        gen = torch.Generator().manual_seed(derive_seed(seed, "initial"))
        initial = stratified_initial(self.data.y_train, self.cfg.initial, gen)
        if self.strategy.needs.every_class:  # initial >= num_classes was checked: only a class the pool lacks is left
            missing = sorted(set(range(self.data.num_classes)) - set(self.data.y_train[initial].tolist()))
            if missing:
                raise ConfigError("initial", f"the pool holds no item of classes {missing}, which strategy "
                                             f"{self.cfg.strategy!r} needs labeled from the start")
        return {"seed": seed, "initial": initial.tolist(), "initial_rule": INITIAL_RULE, "rounds": [],
                "complete": False}

    def _run_one(self, results: dict, run: dict, x_pool: torch.Tensor) -> None:
        self._run_many(results, [run], x_pool)

    def _run_many(self, results: dict, runs: list[dict], x_pool: torch.Tensor) -> None:
        """Finishes `runs`. Where the round's models stack (Trainer.fit_many), round by round: the runs behind the
        others first, and all runs at the same round train that round's models together. Every run's rounds are
        what it would get alone: each model has its own seed stream, and its floats do not depend on what else is
        stacked with it. Where nothing stacks, run after run, as before: the models (and snapshots) of one run at a
        time are held in memory, not those of every seed."""
        if not runs:
            return
        trainer, own_trainer = self._trainers()
        if trainer.stacking_obstacle() is not None and (own_trainer is None or
                                                        own_trainer.stacking_obstacle() is not None):
            for run in runs:
                self._rounds(results, [run], x_pool, trainer, own_trainer)
            return
        self._rounds(results, runs, x_pool, trainer, own_trainer)

    def _rounds(self, results: dict, runs: list[dict], x_pool: torch.Tensor, trainer: Trainer,
                own_trainer: Trainer | None) -> None:
        """The rounds left of `runs`, round-major (see _run_many)."""
        cfg = self.cfg
        labeled = {id(run): list(run["initial"]) + [i for rd in run["rounds"] for i in rd["selected"]] for run in runs}
        left = sum(cfg.rounds - len(run["rounds"]) for run in runs)
        seeds = [run["seed"] for run in runs]
        label = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
        bar = tqdm(total=left, desc=f"{cfg.strategy} {label}", disable=None if self.progress else True, leave=False,
                   dynamic_ncols=True)
        # the whole round (training, evaluation, selection) on the thread count the training rule gives the task model
        # (training/threads.py): a function of the model and batch, so parallel seeds (parallel_runs.py) compute
        # exactly what a sequential run does
        flops = trainer.step_flops(tuple(x_pool.shape[1:]), cfg.batch_size) if self.device.type == "cpu" else None
        with training_threads(flops, self.device):
            while True:
                open_runs = [run for run in runs if len(run["rounds"]) < cfg.rounds]
                if not open_runs:
                    break
                r = min(len(run["rounds"]) for run in open_runs)
                group = [run for run in open_runs if len(run["rounds"]) == r]
                labs = [torch.tensor(labeled[id(run)], dtype=torch.int64) for run in group]
                trained = self._train_round(trainer, own_trainer, x_pool, labs, [run["seed"] for run in group], r)
                for run, lab, (record, selector) in zip(group, labs, trained):
                    labeled[id(run)].extend(self._select_round(results, run, lab, record, selector, x_pool, r))
                    bar.update(1)
        bar.close()

    def _select_round(self, results: dict, run: dict, lab: torch.Tensor, record: dict, trained: TrainedModel,
                      x_pool: torch.Tensor, r: int) -> list[int]:
        """Round r's selection for `run` (none in the last round) with its model `trained`; the round recorded.
        Returns the picks."""
        cfg, n_pool = self.cfg, self.data.x_train.shape[0]
        selected: list[int] = []
        t0 = time.perf_counter()
        mask = torch.ones(n_pool, dtype=torch.bool)
        mask[lab] = False
        sel_seed = derive_seed(run["seed"], r, "select")
        ctx = SelectionContext(x_pool=x_pool, labeled=lab, y_labeled=self.data.y_train[lab],
                               unlabeled=mask.nonzero().squeeze(1), trained=trained,
                               num_classes=self.data.num_classes,
                               generator=torch.Generator().manual_seed(sel_seed), seed=sel_seed)
        if r < cfg.rounds - 1:
            picks = self.strategy.query(ctx, cfg.budget).cpu()  # torchrun: the strategy's sharded selection
            self._check_picks(picks, mask)
            selected = picks.tolist()
        elif self.strategy.measures_diversity and ctx.unlabeled.numel():
            self.strategy.measure_diversity(ctx)  # no selection in the last round; its diversity is recorded
        if "diversity" in ctx.extras:
            record["diversity"] = ctx.extras["diversity"]
        if "selection" in ctx.extras:  # a strategy's own per-round figures (ALFA-Mix: its candidates per cap)
            record["selection"] = ctx.extras["selection"]
        record["select_seconds"] = time.perf_counter() - t0
        record["selected"] = selected
        self._round_done(results, run, record)
        return selected

    def _round_done(self, results: dict, run: dict, record: dict) -> None:
        """A finished round: into its run, results.json rewritten atomically, the round callback (parallel seeds: the
        parent calls this for the rounds its workers send)."""
        run["rounds"].append(record)
        run["complete"] = record["round"] == self.cfg.rounds - 1
        write_json_atomic(self.path, results)
        if self.on_round and distributed.is_primary():
            self.on_round(run["seed"], record)

    def _trainers(self) -> tuple[Trainer, Trainer | None]:
        """(the trainer of the model that scores the curve, the trainer of a separate selection model or None).

        evaluate="task": the plain recipe for every strategy, plus the strategy's own recipe where it differs (MMD term,
        snapshots, dropout, ensemble members); evaluate="selection": the strategy's own recipe alone."""
        cfg = self.cfg

        def trainer(config: TrainConfig, dropout: float) -> Trainer:
            factory = lambda: build_model(cfg.model, self.data.input_shape, self.data.num_classes,  # noqa: E731
                                          dropout=dropout)
            return Trainer(factory, config, self.device, progress=self.progress, ddp=cfg.ddp, lockstep=self.lockstep)

        own = (train_config(cfg, self.strategy), self.strategy.needs.dropout)
        plain = (task_train_config(cfg), 0.0)
        if cfg.evaluate == "selection" or own == plain:
            return trainer(*own), None  # one model scores the curve and selects
        return trainer(*plain), trainer(*own)

    def _train_round(self, trainer: Trainer, own_trainer: Trainer | None, x_pool: torch.Tensor,
                     labs: list[torch.Tensor], seeds: list[int], r: int) -> list[tuple[dict, TrainedModel]]:
        """Trains round r's model(s) of the runs with these `seeds` on their labeled pool indices `labs`: per run,
        (the round's record so far, the model that selects). The curve's model trains on the run's "train" seed
        stream, a separate selection model on its own "selection" stream, so that every strategy's task model on the
        same labels is the same model."""
        ys = [self.data.y_train[lab] for lab in labs]
        tasks = trainer.fit_many(x_pool, labs, ys, [derive_seed(seed, r, "train") for seed in seeds])
        selectors = (tasks if own_trainer is None else
                     own_trainer.fit_many(x_pool, labs, ys, [derive_seed(seed, r, "selection") for seed in seeds]))
        out = []
        for lab, y_lab, seed, task, selector in zip(labs, ys, seeds, tasks, selectors):
            # torchrun: every rank trained the same (replicated, or --ddp: one model); rank 0's weights make them
            # agree exactly (with --ddp on the CPU they are equal already: a no-op copy)
            sync_trained(task)
            t_eval = time.perf_counter()  # test metrics and diagnostics of the round's models: "evaluate_seconds"
            record = {"round": r, "n_labeled": lab.numel(), **evaluate(task, self.data),
                      **labeled_fit(task, x_pool, lab, y_lab), "scored_by": self.cfg.evaluate,
                      "selection_model": "same" if own_trainer is None else "separate",
                      "train_steps": task.total_steps, "train_stop": task.fit_stop,
                      "train_seconds": task.train_seconds, "train_threads": trainer.threads,
                      "train_stacked": task.lockstep is not None, "epoch_seconds_mean": float(np.mean(task.epoch_seconds))}
            if own_trainer is not None:
                sync_trained(selector)
                record.update({f"selection_{k}": v for k, v in evaluate(selector, self.data).items()
                               if k.endswith("accuracy")})
                record.update(labeled_fit(selector, x_pool, lab, y_lab, prefix="selection_"))
                record.update(selection_train_steps=selector.total_steps, selection_train_stop=selector.fit_stop,
                              selection_train_seconds=selector.train_seconds,
                              selection_train_stacked=selector.lockstep is not None,
                              selection_epoch_seconds_mean=float(np.mean(selector.epoch_seconds)))
            if selector.trajectory is not None and selector.snapshots:
                record["trajectory"] = selector.trajectory.record()  # "short": fewer snapshots than asked, said so
            if self.strategy.needs.mmd:
                record["mmd"] = self._mmd_record(selector, None if own_trainer is None else task, x_pool, lab, seed,
                                                 r)
            record["evaluate_seconds"] = time.perf_counter() - t_eval
            out.append((record, selector))
        return out

    def _mmd_record(self, selector: TrainedModel, task: TrainedModel | None, x_pool: torch.Tensor, lab: torch.Tensor,
                    seed: int, r: int) -> dict:
        """λ measured (training/diagnostics.py): the gradient ratio and cosine sampled in training, and the labeled
        set's MMD² to the pool at the end of it next to a pool-vs-pool null; with a separate task model, the same in
        its features (task_*), on the same items: what the MMD term changed."""
        mask = torch.ones(x_pool.shape[0], dtype=torch.bool)
        mask[lab] = False
        unlabeled = mask.nonzero().squeeze(1)
        gen_seed = derive_seed(seed, r, "mmd-gap")
        gap = mmd_gap(selector, x_pool, lab, unlabeled, torch.Generator().manual_seed(gen_seed)) or {}
        out = {"weight": self.cfg.mmd_weight, **(selector.gradient_probe or {}), **gap}
        if task is not None and gap:
            plain = mmd_gap(task, x_pool, lab, unlabeled, torch.Generator().manual_seed(gen_seed))
            out.update({f"task_{k}": plain[k] for k in ("mmd2_labeled_pool", "mmd2_pool_null", "mmd2_pool_null_std")})
        return out

    def _check_picks(self, picks: torch.Tensor, unlabeled_mask: torch.Tensor) -> None:
        """A strategy bug must not silently corrupt an experiment."""
        if picks.dtype != torch.int64 or picks.dim() != 1 or picks.numel() != self.cfg.budget:
            raise RuntimeError(f"strategy {self.cfg.strategy!r} returned {tuple(picks.shape)} {picks.dtype}, expected "
                               f"({self.cfg.budget},) int64")
        if picks.unique().numel() != picks.numel() or not bool(unlabeled_mask[picks].all()):
            raise RuntimeError(f"strategy {self.cfg.strategy!r} picked duplicates or labeled items")


def run_experiment(cfg: RunConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
                   **kwargs) -> dict:
    """Convenience wrapper: `ActiveLearningRun(cfg, out_dir, **kwargs).run(resume, overwrite)`."""
    return ActiveLearningRun(cfg, out_dir, **kwargs).run(resume=resume, overwrite=overwrite)
