"""One wording for every argument error ("<name>: expected <what>, got <value>"), whichever layer
checks: the ops, the selection engine, the strategies, the models, the training settings."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from mpts_fast import _checks, ops
from mpts_fast.models.mlp import check_dropout
from mpts_fast.strategies import build_strategy
from mpts_fast.strategies.kmeans import kmeans_nearest
from mpts_fast.training.config import check_cycle_settings

X = torch.randn(6, 3)

BAD_CALLS = {
    "op-tensor": (lambda: ops.rbf_mmd2([[1.0]], X), TypeError, "x", "a torch.Tensor"),
    "op-columns": (lambda: ops.rbf_mmd2(X, X[:, :2]), ValueError, "x, y", "the same number of columns"),
    "op-choice": (lambda: ops.rbf_mmd2(X, X, estimator="mean"), ValueError, "estimator", "one of 'biased', 'unbiased'"),
    "op-count": (lambda: ops.mmd_bandwidths(X, X, num=0), ValueError, "num", "a positive number of bandwidths"),
    "op-finite": (lambda: ops.mmd_bandwidths(X, X.clone().fill_(float("nan"))), ValueError, "y", "finite values"),
    "select-count": (lambda: ops.kcenter_greedy(X, 7), ValueError, "k", "at most the 6 rows"),
    "select-labeled": (lambda: ops.kcenter_greedy(X, 1, labeled=[9]), ValueError, "labeled", r"row indices in \[0, 6\)"),
    "select-generator": (lambda: ops.kmeanspp(X, 1, generator=1), TypeError, "generator", "a torch.Generator"),
    "strategy-option": (lambda: build_strategy("bald", passes=0), ValueError, "passes", "a positive integer"),
    "strategy-k": (lambda: kmeans_nearest(X, 0), ValueError, "k", r"an integer in \[1, 6\]"),
    "model-dropout": (lambda: check_dropout(1.0), ValueError, "dropout", r"a probability in \[0, 1\)"),
    "training-cycle": (lambda: check_cycle_settings(True, 1.0, 0.5), ValueError, "cycle_steps", "a positive whole"),
}


@pytest.mark.parametrize("call,exc,name,what", BAD_CALLS.values(), ids=list(BAD_CALLS))
def test_every_layer_words_errors_alike(call, exc, name, what):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{name}: expected "), message
    assert ", got " in message and re.search(what, message), message


@pytest.mark.parametrize("make", [torch.tensor, np.array], ids=["tensor", "numpy"])
def test_finite_names_the_first_bad_row(make):
    rows = [[0.0, 1.0], [2.0, 3.0], [4.0, float("inf")], [float("nan"), 0.0]]
    with pytest.raises(ValueError, match=r"^pool: expected finite values, got NaN or infinity in row 2$"):
        _checks.finite(make(rows), "pool")
    with pytest.raises(ValueError, match=r"^w: expected finite values, got NaN or infinity at index 1$"):
        _checks.finite(make([0.0, float("nan")]), "w")
    _checks.finite(make([[1e38, 1e38], [1e38, 1e38]]), "big")  # a sum that overflows is not a NaN
    _checks.finite(make(np.zeros((0, 3))), "empty")


def test_finite_reads_a_memory_mapped_array_in_blocks(tmp_path):
    path = tmp_path / "pool.npy"
    data = np.zeros((5000, 4), dtype=np.float32)
    data[4321, 2] = np.nan
    np.save(path, data)
    with pytest.raises(ValueError, match="in row 4321"):
        _checks.finite(np.load(path, mmap_mode="r"), "pool")


def test_options_refuse_bools_and_nan_as_values():
    with pytest.raises(ValueError, match=r"^n: expected a positive integer, got True$"):
        _checks.int_option(True, "n")
    with pytest.raises(ValueError, match=r"^lr: expected a positive number, got nan$"):
        _checks.positive_float(float("nan"), "lr")
    assert _checks.int_option(np.int64(3), "n") == 3 and _checks.int_option(None, "n", allow_none=True) is None
