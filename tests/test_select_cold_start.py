"""`mpts-fast select` from a bare pool (no labels yet), and docs/select.md's example block run as pasted.

- random needs no labels and no model: a seeded uniform draw from the pool, whichever input gives N (pool,
  embeddings or probs), the same picks with --model (nothing is trained for it) and for the same seed;
- a backbone trained here with no labels stops with a usage error pointing to --strategy random;
- every command of the docs' example block succeeds, one after the other in one directory, on tiny files.
"""
from __future__ import annotations

import csv
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mpts_fast.cli.main import main
from mpts_fast.select import InputError, select_next
from mpts_fast.training import derive_seed

DOCS = Path(__file__).resolve().parents[1] / "docs" / "select.md"
N, C = 150, 3


def _cli(*args):
    return CliRunner().invoke(main, ["select", *map(str, args)])


def _picks(path: Path) -> list[int]:
    return [int(r["index"]) for r in csv.DictReader(path.open())]


@pytest.fixture
def pool(tmp_path) -> Path:
    path = tmp_path / "pool.npy"
    np.save(path, np.random.default_rng(0).normal(size=(N, 4)).astype(np.float32))
    return path


def test_random_starts_cold_from_a_bare_pool(pool, tmp_path):
    res = _cli("--pool", pool, "--strategy", "random", "-b", 7, "-o", tmp_path / "a.csv")
    assert res.exit_code == 0, res.output
    picks = _picks(tmp_path / "a.csv")
    # the uniform draw without replacement of the random strategy, seeded from --seed
    gen = torch.Generator().manual_seed(derive_seed(0, "select"))
    assert picks == torch.randperm(N, generator=gen)[:7].tolist()
    settings = json.loads((tmp_path / "a.settings.json").read_text())
    assert settings["mode"] == "random" and settings["n_labeled"] == 0 and settings["n_pool"] == N
    assert "nothing trained" in res.output
    # --model with random trains nothing: the same draw; another seed, another draw
    same = _cli("--pool", pool, "--model", "mlp", "-s", "random", "-b", 7, "-o", tmp_path / "b.csv", "-q")
    assert same.exit_code == 0, same.output
    assert _picks(tmp_path / "b.csv") == picks
    other = _cli("--pool", pool, "-s", "random", "-b", 7, "--seed", 1, "-o", tmp_path / "c.csv", "-q")
    assert other.exit_code == 0 and _picks(tmp_path / "c.csv") != picks


def test_random_takes_the_pool_size_from_any_input(tmp_path):
    probs = torch.softmax(torch.randn(4, 30, C), -1).numpy()
    by_probs = select_next(probs=probs, budget=5, strategy="random")
    by_emb = select_next(embeddings=np.zeros((30, 2), np.float32), budget=5, strategy="random")
    assert by_probs.indices.tolist() == by_emb.indices.tolist()
    assert by_probs.settings["num_classes"] == C and by_probs.settings["mode"] == "random"
    with_labels = select_next(np.zeros((30, 2), np.float32), {0: 1, 5: 0}, budget=28, strategy="random")
    assert sorted(with_labels.indices.tolist()) == [i for i in range(30) if i not in (0, 5)]
    with pytest.raises(InputError, match="pool size") as e:
        select_next(budget=5, strategy="random")
    assert e.value.field == "pool"
    with pytest.raises(InputError, match="disagree"):
        select_next(np.zeros((30, 2)), embeddings=np.zeros((31, 2)), budget=5, strategy="random")


@pytest.mark.parametrize("strategy", [None, "entropy"])
def test_a_backbone_without_labels_points_to_random(pool, tmp_path, strategy):
    res = _cli("--pool", pool, "--model", "mlp", "-b", 5, "-o", tmp_path / "a.csv",
               *(["-s", strategy] if strategy else []))
    assert res.exit_code == 2, res.output
    assert "'--labeled'" in res.output and "no labels yet" in res.output and "--strategy random" in res.output
    assert not (tmp_path / "a.csv").exists()
    bare = _cli("--pool", pool, "-b", 5, "-o", tmp_path / "b.csv")  # nothing to score with, no strategy named
    assert bare.exit_code == 2 and "random" in bare.output


def _docs_commands() -> list[list[str]]:
    """The commands of docs/select.md's first bash block, as a shell would split them (comments dropped)."""
    block = re.search(r"```bash\n(.*?)```", DOCS.read_text(), re.S).group(1)
    commands = [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines()]
    return [c for c in commands if c]


def test_docs_example_block_runs_as_pasted(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    monkeypatch.chdir(tmp_path)
    np.save("pool.npy", rng.normal(size=(N, 4)).astype(np.float32))
    np.save("pool_emb.npy", rng.normal(size=(N, 5)).astype(np.float32))
    logits = rng.normal(size=(4, N, C))
    samples = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    np.save("mc_dropout_probs.npy", samples)
    np.save("pool_probs.npy", samples.mean(0))
    Path("labels.csv").write_text("index,label\n" + "".join(f"{i},{i % C}\n" for i in range(0, 36, 3)))
    commands = _docs_commands()
    assert len(commands) >= 5 and any("random" in c for c in commands)
    for argv in commands:
        assert argv[0] == "mpts-fast" and argv[1] == "select", argv
        # as pasted, except fewer epochs where a backbone is trained here (the default 100 only cost time)
        res = CliRunner().invoke(main, [*argv[1:], *(["--epochs", "3"] if "--model" in argv and "random" not in argv
                                                     else [])])
        assert res.exit_code == 0, f"{shlex.join(argv)}\n{res.output}"
