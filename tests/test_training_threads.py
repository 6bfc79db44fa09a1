"""Torch's intra-op threads per training (training/threads.py): small models train on one thread, larger ones and the
user's explicit settings keep torch's count, the count is restored afterwards, and the thread count does not change
what a short training produces."""
from __future__ import annotations

import pytest
import torch

from mpts_fast.models import build_model
from mpts_fast.training import TrainConfig, Trainer
from mpts_fast.training import threads as training_threads_module
from mpts_fast.training.threads import SMALL_STEP_FLOPS, step_flops, threads_for, training_threads


@pytest.fixture
def restore_threads():
    saved = torch.get_num_threads()
    yield
    torch.set_num_threads(saved)


def _mlp(d=16, classes=26):
    return lambda: build_model("mlp", (d,), classes)


def test_step_flops_counts_forward_and_backward_from_the_layers():
    # 16 -> 256 -> 26 at batch 64: forward 2·64·(16·256 + 256·26) MACs·2; backward: weight grads of both layers and
    # the input grad of the second (the batch's own input needs none)
    fwd = 2 * 64 * (16 * 256 + 256 * 26)
    bwd = 2 * 64 * (16 * 256 + 256 * 26) + 2 * 64 * 256 * 26
    assert step_flops(_mlp(), (16,), 64) == pytest.approx(fwd + bwd)


def test_rule_small_one_thread_large_untouched():
    assert threads_for(step_flops(_mlp(), (16,), 64)) == 1
    assert threads_for(SMALL_STEP_FLOPS * 2) is None
    assert threads_for(None) is None  # a model meta tensors cannot run: no choice


def test_step_flops_none_for_a_model_that_cannot_run_on_one_row():
    class NeedsTwo(torch.nn.Module):
        def forward(self, x):
            if x.shape[0] < 2:
                raise RuntimeError("needs a batch")
            return x

    assert step_flops(NeedsTwo, (4,), 8) is None


@pytest.mark.parametrize("model, shape, batch", [("mlp", (16,), 64), ("cnn1d", (40,), 100),
                                                 ("resnet18", (3, 16, 16), 4)])
def test_step_flops_is_torchs_flop_count_without_importing_dynamo(model, shape, batch):
    import subprocess
    import sys

    from torch.utils.flop_counter import FlopCounterMode

    factory = lambda: build_model(model, shape, 10, dropout=0.0)  # noqa: E731
    m = factory()
    m.train()
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(m(torch.randn(batch, *shape)), torch.zeros(batch, dtype=torch.int64)).backward()
    # torch also counts the few non-GEMM FLOPs it knows (none for these layers); within 1%
    assert step_flops(factory, shape, batch) == pytest.approx(counter.get_total_flops(), rel=0.01)
    # the count itself leaves torch._dynamo unimported (it costs ~1 s at the first import in a process)
    code = ("import sys, mpts_fast; from mpts_fast.models import build_model; "
            "from mpts_fast.training.threads import step_flops; "
            f"step_flops(lambda: build_model({model!r}, {shape!r}, 10, dropout=0.0), {shape!r}, {batch}); "
            "print('torch._dynamo' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_training_threads_sets_and_restores(restore_threads, monkeypatch):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(training_threads_module, "_THREADS_AT_IMPORT", 3)
    torch.set_num_threads(3)
    with training_threads(1e6, torch.device("cpu")) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 3
    with training_threads(1e12, torch.device("cpu")) as n:  # a large model keeps torch's count
        assert n == 3 and torch.get_num_threads() == 3


def test_user_choice_wins(restore_threads, monkeypatch):
    monkeypatch.setattr(training_threads_module, "_THREADS_AT_IMPORT", 3)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    torch.set_num_threads(2)  # set by the user after import
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with training_threads(1e6, torch.device("cpu")) as n:
        assert n == 2
    torch.set_num_threads(3)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # exported
    with training_threads(1e6, torch.device("cpu")) as n:
        assert n == 3


def test_trainer_records_threads_and_restores(restore_threads, monkeypatch):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(training_threads_module, "_THREADS_AT_IMPORT", 2)
    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 16, generator=g), torch.randint(26, (200,), generator=g)
    lab = torch.arange(100)
    trainer = Trainer(_mlp(), TrainConfig(epochs=2))
    trainer.fit(x, lab, y[lab], seed=0)
    assert trainer.threads == 1 and torch.get_num_threads() == 2


_SAME_WEIGHTS = """
import sys, torch
sys.path.insert(0, sys.argv[1])
from test_training_threads import _mlp
from mpts_fast.training import TrainConfig, Trainer
g = torch.Generator().manual_seed(0)
x, y = torch.randn(300, 64, generator=g), torch.randint(10, (300,), generator=g)
lab = torch.arange(150)
for mmd in (0.0, 1.0):
    out = []
    for n in (1, 2):
        torch.set_num_threads(n)  # a user's setting: the rule leaves it alone
        out.append(Trainer(_mlp(64, 10), TrainConfig(epochs=3, mmd_weight=mmd)).fit(x, lab, y[lab], seed=0)
                   .model.state_dict())
    differ = [k for k in out[0] if not torch.equal(out[0][k], out[1][k])]
    assert not differ, (mmd, differ)
"""


def test_thread_count_does_not_change_weights():
    """The same training on 1 and on 2 threads: bitwise the same weights (the MLP's GEMMs, Adam and the MMD op reduce
    in the same order whatever the count, on this build; a change here would make the rule change results). In a
    fresh interpreter: earlier tests' thread and OpenMP settings in this process changed the outcome once."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", _SAME_WEIGHTS, os.path.dirname(__file__)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
