"""The four learning methods of the study, each run for a chunk of trials at once (one NetStack member per
trial, or per trial and ensemble member). A trial's result does not depend on which other trials share its
chunk: splits, initial weights and batch orders come from generators keyed by (seed, trial, member).

passive   train on the whole training split for `epochs` epochs.
sasla     the same, but after every `selection_interval` epochs prune D_T to Φ > (1 − β)·mean Φ (Φ from
          ops.sensitivity), with a per-class floor; pruned patterns never return.
entropy   start from max(10, ⌈n/10⌉) stratified patterns, train; repeatedly query the pool patterns of
          highest normalised entropy of softmax(z) and retrain warm-started, until the pool is empty.
ensemble  the same with `ensemble_size` networks (own initialisations and optimisers) trained on the same L;
          utility Σ_c Var_m p_c (regression: the variance of the members' outputs); majority vote
          (regression: the mean output).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from mpts_fast.models.sigmoid_net import NetStack
from mpts_fast.study import data as sdata
from mpts_fast.study.config import StudyConfig, query_count
from mpts_fast.study.metrics import (batched_macro_f1, batched_r2, classification_scores,
                                     epochs_to_convergence, regression_scores)
from mpts_fast.study.rules import ensemble_variance, majority_vote, normalised_entropy, sasla_keep
from mpts_fast.study.train import Problem, expand, make_problem, predict, run_epoch, unscale

_INIT, _ORDER, _SPLIT, _INITIAL = 1, 2, 3, 4


def _seed(*key: int) -> int:
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1)[0])


def generator(*key: int) -> torch.Generator:
    return torch.Generator().manual_seed(_seed(*key))


def split_for(data: sdata.StudyData, cfg: StudyConfig, trial: int) -> tuple[np.ndarray, np.ndarray]:
    """Trial `trial`'s stratified 80/20 (train_idx, test_idx)."""
    return sdata.trial_split(data, _seed(cfg.seed, trial, _SPLIT))


def _output(data: sdata.StudyData) -> str:
    return "sigmoid" if data.task == "classification" else "linear"


def _stack(data, cfg, trials, members_per_trial: int) -> tuple[NetStack, list[torch.Generator]]:
    keys = [(cfg.seed, t, e) for t in trials for e in range(members_per_trial)]
    h = cfg.hyper
    net = NetStack(len(keys), data.x.shape[1], h.hidden, data.outputs, output=_output(data),
                   generators=[generator(*k, _INIT) for k in keys])
    net.set_hyper(h.lr, h.momentum, h.weight_decay)
    return net, [generator(*k, _ORDER) for k in keys]


def _test_outputs(net: NetStack, prob: Problem, test: list[np.ndarray]):
    idx = torch.as_tensor(np.stack(test))
    members = net.M // len(test)
    z, o = predict(net, prob, idx.repeat_interleave(members, dim=0))
    return idx, z, o


def _predictions(data, net, prob, test, members: int) -> np.ndarray:
    """(T, n_test) predicted classes or values."""
    idx, z, o = _test_outputs(net, prob, test)
    T = idx.shape[0]
    if data.task == "regression":
        return unscale(o, prob).reshape(T, members, -1).mean(1).numpy()
    if members == 1:
        return o.argmax(-1).numpy()
    p = torch.softmax(z, -1).reshape(T, members, z.shape[1], z.shape[2]).transpose(0, 1)
    return majority_vote(p).numpy()


def _curve_score(data, pred: np.ndarray, test: list[np.ndarray]) -> np.ndarray:
    true = data.y[torch.as_tensor(np.stack(test))]
    if data.task == "regression":
        return batched_r2(torch.as_tensor(pred), true).numpy()
    return batched_macro_f1(torch.as_tensor(pred), true, data.num_classes).numpy()


def _records(data, cfg, method, trials, splits, pred, losses, sizes, curves, seconds) -> list[dict]:
    out = []
    for r, t in enumerate(trials):
        y_true = data.y[torch.as_tensor(splits[r][1])].numpy()
        scores = (classification_scores(y_true, pred[r]) if data.task == "classification"
                  else regression_scores(y_true, pred[r]))
        conv = epochs_to_convergence(losses[r], cfg.conv_window, cfg.conv_threshold)
        out.append({
            "trial": t, "method": method, **scores,
            "epochs": int(len(sizes[r])),
            "epochs_to_convergence": conv, "converged": conv is not None,
            "observations_seen": int(np.sum(sizes[r])),
            "initial_train_size": int(len(splits[r][0])),
            "final_train_size": int(sizes[r][-1]),
            "train_size_curve": [int(s) for s in sizes[r]],
            "final_loss": float(losses[r][-1]),
            "loss_curve": [float(f"{v:.6g}") for v in losses[r]],
            "curve": [[int(n), float(s)] for n, s in curves[r]],
            "seconds": seconds / len(trials),
            "fingerprint": cfg.fingerprint(method),
        })
    return out


def sasla_select(net: NetStack, prob: Problem, mask: torch.Tensor, labels: torch.Tensor | None, beta: float,
                 norm: str = "l1") -> None:
    """One SASLA selection for every member, in place on mask (M, N): D_T of member m shrinks to the patterns
    `sasla_keep` accepts, with Φ of member m's network on its scaled inputs from `ops.sensitivity`."""
    finite = net.finite()
    for m in range(net.M):
        if not finite[m]:  # a diverged network gives no usable Φ; its set is left as it is
            continue
        idx = mask[m].nonzero().flatten()
        x = prob.x[idx] * prob.xa[m] + prob.xc[m]
        phi = net.sensitivity(m, x, norm)
        keep = sasla_keep(phi, labels[idx] if labels is not None else None, beta)
        mask[m, idx[~keep]] = False


def run_full_set(data: sdata.StudyData, cfg: StudyConfig, trials: list[int], sasla: bool) -> list[dict]:
    """passive (sasla=False) or SASLA for the given trials."""
    start = time.perf_counter()
    splits = [split_for(data, cfg, t) for t in trials]
    T, N = len(trials), len(data.y)
    prob = make_problem(data, [tr for tr, _ in splits])
    mask = torch.zeros(T, N, dtype=torch.bool)
    for r, (tr, _) in enumerate(splits):
        mask[r, torch.as_tensor(tr)] = True
    net, gens = _stack(data, cfg, trials, 1)
    E = cfg.epochs
    losses = np.zeros((T, E))
    sizes = np.zeros((T, E), dtype=np.int64)
    labels = data.y if data.task == "classification" else None
    for e in range(1, E + 1):
        sizes[:, e - 1] = mask.sum(1).numpy()
        losses[:, e - 1] = run_epoch(net, prob, mask, cfg.batch_size, gens).numpy()
        if sasla and e % cfg.selection_interval == 0 and e < E:
            sasla_select(net, prob, mask, labels, cfg.beta, cfg.norm)
    pred = _predictions(data, net, prob, [te for _, te in splits], 1)
    final = _curve_score(data, pred, [te for _, te in splits])
    curves = [[(sizes[r, -1], final[r])] for r in range(T)]
    return _records(data, cfg, "sasla" if sasla else "passive", trials, splits, pred, losses, sizes, curves,
                    time.perf_counter() - start)


def run_uncertainty(data: sdata.StudyData, cfg: StudyConfig, trials: list[int], ensemble: bool) -> list[dict]:
    """Pool-based uncertainty sampling (entropy, or ensemble disagreement) for the given trials."""
    start = time.perf_counter()
    splits = [split_for(data, cfg, t) for t in trials]
    T, N = len(trials), len(data.y)
    E = cfg.ensemble_size if ensemble else 1
    prob = expand(make_problem(data, [tr for tr, _ in splits]), E)
    labeled = torch.zeros(T, N, dtype=torch.bool)
    pool = torch.zeros(T, N, dtype=torch.bool)
    for r, (tr, _) in enumerate(splits):
        init = sdata.initial_set(data, tr, _seed(cfg.seed, trials[r], _INITIAL))
        pool[r, torch.as_tensor(tr)] = True
        pool[r, torch.as_tensor(init)] = False
        labeled[r, torch.as_tensor(init)] = True
    n_pool = pool.sum(1)
    if not bool((n_pool == n_pool[0]).all()):
        raise RuntimeError("trial pools differ in size; the chunk cannot query in lockstep")
    q = query_count(int(n_pool[0]), cfg.query_size)
    net, gens = _stack(data, cfg, trials, E)
    test = [te for _, te in splits]
    losses, sizes, curves = [], [], [[] for _ in trials]

    def train() -> None:
        mask = labeled.repeat_interleave(E, dim=0)
        for _ in range(cfg.query_epochs):
            sizes.append(labeled.sum(1).numpy())
            losses.append(run_epoch(net, prob, mask, cfg.batch_size, gens).reshape(T, E).mean(1).numpy())
        score = _curve_score(data, _predictions(data, net, prob, test, E), test)
        n_lab = labeled.sum(1).numpy()
        for r in range(T):
            curves[r].append((n_lab[r], score[r]))

    train()
    while bool(pool.any()):
        k = int(pool[0].sum())
        idx = pool.nonzero()[:, 1].reshape(T, k)
        z, o = predict(net, prob, idx.repeat_interleave(E, dim=0))
        if not ensemble:
            utility = normalised_entropy(z)
        elif data.task == "classification":
            utility = ensemble_variance(torch.softmax(z, -1).reshape(T, E, k, -1).transpose(0, 1))
        else:
            utility = ensemble_variance(o.reshape(T, E, k, -1).transpose(0, 1))
        # a diverged network's NaN utility must not win the query: rank it last
        utility = torch.nan_to_num(utility, nan=float("-inf"))
        pick = idx.gather(1, utility.topk(min(q, k), dim=1).indices)
        rows = torch.arange(T).unsqueeze(1).expand_as(pick)
        labeled[rows, pick] = True
        pool[rows, pick] = False
        train()
    pred = _predictions(data, net, prob, test, E)
    losses_a, sizes_a = np.stack(losses, 1), np.stack(sizes, 1)
    return _records(data, cfg, "ensemble" if ensemble else "entropy", trials, splits, pred, losses_a, sizes_a,
                    curves, time.perf_counter() - start)


def run_method(method: str, data: sdata.StudyData, cfg: StudyConfig, trials: list[int]) -> list[dict]:
    if method == "passive":
        return run_full_set(data, cfg, trials, sasla=False)
    if method == "sasla":
        return run_full_set(data, cfg, trials, sasla=True)
    if method == "entropy":
        return run_uncertainty(data, cfg, trials, ensemble=False)
    if method == "ensemble":
        return run_uncertainty(data, cfg, trials, ensemble=True)
    raise ValueError(f"method: unknown method {method!r}")
