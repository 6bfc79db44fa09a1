"""The 256-configuration grid search on passive learning (the study paper's grid), chosen on validation folds only.

Split: the 80% training part of a dedicated stratified split (seed key `GRID_TRIAL`), 5-fold stratified CV
inside it; the test part is never looked at. Every configuration × fold is a member of one NetStack per
hidden size (64 × 5 = 320 networks trained together). Score: mean validation accuracy (classification;
ties → lower mean validation loss) or mean validation MSE (regression). The result is cached per data set
as JSON, keyed by everything it depends on.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from mpts_fast.models.sigmoid_net import NetStack
from mpts_fast.study import data as sdata
from mpts_fast.study.config import GRID, Hyper, StudyConfig
from mpts_fast.study.methods import _INIT, _ORDER, _SPLIT, _seed, generator
from mpts_fast.study.summary import jsonable
from mpts_fast.study.train import make_problem, run_epoch

GRID_TRIAL = 10**6  # the grid's split is keyed apart from every trial's split
FOLDS = 5


def grid_key(cfg: StudyConfig, grid: dict = GRID) -> str:
    d = {"dataset": cfg.dataset, "seed": cfg.seed, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
         "grid": {k: list(v) for k, v in grid.items()}, "folds": FOLDS}
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def grid_folds(data: sdata.StudyData, cfg: StudyConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    train, _ = sdata.trial_split(data, _seed(cfg.seed, GRID_TRIAL, _SPLIT))
    return sdata.cv_folds(data, train, _seed(cfg.seed, GRID_TRIAL), FOLDS)


def run_group(data: sdata.StudyData, cfg: StudyConfig, hidden: int, lrs, grid: dict = GRID) -> list[dict]:
    """All (lr in `lrs`, weight decay, momentum) × folds for one hidden size. One row per configuration."""
    folds = grid_folds(data, cfg)
    combos = list(itertools.product(lrs, grid["weight_decay"], grid["momentum"]))
    members = [(c, f) for c in range(len(combos)) for f in range(len(folds))]
    M, N = len(members), len(data.y)
    prob = make_problem(data, [folds[f][0] for _, f in members])
    mask = torch.zeros(M, N, dtype=torch.bool)
    for m, (_, f) in enumerate(members):
        mask[m, torch.as_tensor(folds[f][0])] = True
    # keyed by the configuration's values, so a member's run does not depend on how tasks are cut
    keys = [(cfg.seed, GRID_TRIAL, hidden, *(round(v * 1e6) for v in combos[c]), f) for c, f in members]
    net = NetStack(M, data.x.shape[1], hidden, data.outputs,
                   output="sigmoid" if data.task == "classification" else "linear",
                   generators=[generator(*k, _INIT) for k in keys])
    net.set_hyper([combos[c][0] for c, _ in members], [combos[c][2] for c, _ in members],
                  [combos[c][1] for c, _ in members])
    gens = [generator(*k, _ORDER) for k in keys]
    for _ in range(cfg.epochs):
        run_epoch(net, prob, mask, cfg.batch_size, gens)
    # folds may differ in size by one: score each member on its own validation indices
    rows = []
    scores = np.zeros((len(combos), len(folds)))
    vloss = np.zeros((len(combos), len(folds)))
    for m, (c, f) in enumerate(members):
        val = torch.as_tensor(folds[f][1])
        x = (data.x[val] * prob.xa[m] + prob.xc[m]).unsqueeze(0)
        with torch.no_grad():
            V, bv, W, bw = net.member(m)
            h = torch.sigmoid(x @ V.T + bv)
            z = h @ W.T + bw
            o = torch.sigmoid(z) if net.output == "sigmoid" else z
        t = prob.t[val] * prob.ta[m] + prob.tc[m]
        loss = float(((o[0] - t) ** 2).sum(-1).mean())
        vloss[c, f] = loss if np.isfinite(loss) else np.inf
        if data.task == "classification":
            scores[c, f] = float((o[0].argmax(-1) == data.y[val]).double().mean()) if np.isfinite(loss) else 0.0
        else:
            scores[c, f] = -vloss[c, f]
    for c, (lr, wd, mom) in enumerate(combos):
        with np.errstate(invalid="ignore"):  # a diverged fold scores −inf: the std is undefined
            spread = float(scores[c].std())
        rows.append({"hidden": hidden, "lr": lr, "weight_decay": wd, "momentum": mom,
                     "val_score": float(scores[c].mean()), "val_score_std": spread,
                     "val_loss": float(vloss[c].mean())})
    return rows


def best(rows: list[dict]) -> Hyper:
    """Highest mean validation score; ties → lower validation loss, then the smaller network."""
    r = max(rows, key=lambda r: (r["val_score"], -r["val_loss"], -r["hidden"]))
    return Hyper(int(r["hidden"]), float(r["lr"]), float(r["weight_decay"]), float(r["momentum"]))


def cache_path(cache_dir: Path, cfg: StudyConfig) -> Path:
    return Path(cache_dir) / f"grid-{cfg.dataset}-{grid_key(cfg)}.json"


def save(cache_dir: Path, cfg: StudyConfig, rows: list[dict], seconds: float) -> Path:
    path = cache_path(cache_dir, cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    h = best(rows)
    doc = {"dataset": cfg.dataset, "key": grid_key(cfg), "epochs": cfg.epochs, "batch_size": cfg.batch_size,
           "seed": cfg.seed, "best": h.__dict__, "seconds": seconds, "rows": rows,
           "chosen_on": f"mean accuracy over {FOLDS} stratified validation folds of a dedicated 80% split"}
    path.write_text(json.dumps(jsonable(doc), indent=1, allow_nan=False))
    return path


def load_cached(cache_dir: Path, cfg: StudyConfig) -> Hyper | None:
    path = cache_path(cache_dir, cfg)
    if not path.exists():
        return None
    return Hyper(**json.loads(path.read_text())["best"])


def _group_task(args):
    data, cfg_d, hidden, lr, grid = args
    return run_group(data, StudyConfig.from_dict(cfg_d), hidden, [lr], grid)


def run_grid(data: sdata.StudyData, cfg: StudyConfig, workers: int = 1, progress: bool = True,
             grid: dict = GRID) -> tuple[list[dict], float]:
    """Every (hidden size, learning rate) as one task of 64 × 5 networks, largest networks first."""
    from mpts_fast.study.pool import imap

    start = time.perf_counter()
    tasks = [(data, cfg.to_dict(), h, lr, grid) for h in sorted(grid["hidden"], reverse=True) for lr in grid["lr"]]
    rows: list[dict] = []
    for part in imap(_group_task, tasks, workers, progress, desc=f"grid {cfg.dataset}", unit="group"):
        rows.extend(part)
    return rows, time.perf_counter() - start
