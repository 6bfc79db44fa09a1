"""MNIST-1D: the generated-and-cached loader (mpts_fast/data/mnist1d.py) and the paper's 1-D CNN (models/cnn1d.py).

Generation runs on small variants (a few hundred signals, well under a second); one test generates the published
5,000 signals (about a second) to check that they are the paper's frozen data. Tests that generate skip when the
optional package mnist1d is absent; the cache, the missing-package message and the CNN need no package.
"""
import json
import random
import warnings

import numpy as np
import pytest
import torch

from mpts_fast.data import DataNotFoundError, availability, get_info, load_dataset
from mpts_fast.data import mnist1d as m1d
from mpts_fast.models import build_model, model_names

needs_mnist1d = pytest.mark.skipif(not m1d.package_available(),
                                   reason="the optional package mnist1d is not installed (pip install mnist1d)")

SMALL = m1d.Variant("mnist1d", 160, 40)
SMALL_LARGE = m1d.Variant("mnist1d-large", 300, 60)


@pytest.fixture
def small(monkeypatch):
    """The registered entries load small variants (same generator, same seed, fewer signals)."""
    monkeypatch.setattr(m1d, "PUBLISHED", SMALL)
    monkeypatch.setattr(m1d, "LARGE", SMALL_LARGE)


def _no_generator(monkeypatch):
    """As if mnist1d were not installed: importing its generator fails."""
    def missing():
        raise ImportError("No module named 'mnist1d'")

    monkeypatch.setattr(m1d, "_make_dataset", missing)
    monkeypatch.setattr(m1d, "package_available", lambda: False)


@needs_mnist1d
def test_pinned_generator_args_are_the_packages_defaults():
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    assert {k: args[k] for k in m1d.GENERATOR_ARGS} == m1d.GENERATOR_ARGS
    assert args["seed"] == m1d.SEED
    # the published split is the package's default sample count and split
    assert (int(args["num_samples"] * args["train_split"]), args["num_samples"]) == (4_000, 5_000)
    assert (m1d.PUBLISHED.train, m1d.PUBLISHED.test) == (4_000, 1_000)


@needs_mnist1d
def test_mnist1d_is_the_published_frozen_data():
    """Fingerprint of the paper's mnist1d_data.pkl (its repository), taken once: labels, class counts, a few signal
    values and the float64 sums of the float32 arrays; our generated arrays equal that file's in float32."""
    a = m1d.generate(m1d.PUBLISHED)
    assert a["y_train"][:12].tolist() == [2, 6, 4, 5, 6, 6, 6, 0, 3, 1, 6, 9]
    assert a["y_test"][:12].tolist() == [2, 6, 3, 9, 4, 3, 1, 9, 5, 2, 0, 7]
    assert np.bincount(a["y_train"]).tolist() == [398, 396, 411, 394, 394, 402, 401, 404, 402, 398]
    np.testing.assert_allclose(a["x_train"][0, :5], [-0.33200567, -0.47191037, -0.77869708, -1.00974083, -0.88235257],
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(a["x_train"][1, :5], [1.96548088, 2.30021254, 2.21339278, 1.98917376, 1.62766684],
                               rtol=0, atol=1e-6)
    for part, (total, absolute, squares) in PUBLISHED_SUMS.items():
        x = a[part].astype(np.float64)
        np.testing.assert_allclose([x.sum(), np.abs(x).sum(), (x * x).sum()], [total, absolute, squares], rtol=1e-9,
                                   atol=1e-6)


# sum, sum of |x| and sum of x² (float64) of the published float32 arrays
PUBLISHED_SUMS = {"x_train": (-51.787469785878784, 118338.29510155294, 159248.25384650432),
                  "x_test": (51.78747297367954, 29977.87754976499, 40751.74617684711)}


@needs_mnist1d
def test_loader_shapes_dtypes_classes(small, tmp_path):
    py_state, np_state = random.getstate(), np.random.get_state()
    ds = load_dataset("mnist1d", tmp_path)
    assert ds.name == "mnist1d" and ds.num_classes == 10 and ds.task == "classification"
    assert ds.x_train.shape == (160, 40) and ds.x_test.shape == (40, 40) and ds.input_shape == (40,)
    assert ds.x_train.dtype == ds.x_test.dtype == torch.float32
    assert ds.y_train.dtype == ds.y_test.dtype == torch.int64
    # the generator makes the same number of signals per class: 20 each, shuffled before the split
    counts = torch.bincount(torch.cat([ds.y_train, ds.y_test]), minlength=10)
    assert counts.tolist() == [20] * 10
    assert torch.isfinite(ds.x_train).all() and torch.isfinite(ds.x_test).all()
    assert ds.defaults == m1d.DEFAULTS and ds.defaults.model == "cnn1d"
    # make_dataset reseeds the global generators; the loader puts them back
    assert random.getstate() == py_state
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), np_state))


@needs_mnist1d
def test_large_entry_splits_at_its_own_size(small, tmp_path):
    ds = load_dataset("mnist1d-large", tmp_path)
    assert ds.name == "mnist1d-large"
    assert (len(ds.y_train), len(ds.y_test)) == (300, 60)
    # 20,000 / 4,000 is not an exact binary fraction: the split lands on the requested size all the same
    a = m1d.generate(m1d.Variant("mnist1d-large", 20, 10))
    assert (len(a["y_train"]), len(a["y_test"])) == (20, 10)


@needs_mnist1d
def test_second_load_reads_the_cache_without_the_package(small, tmp_path, monkeypatch):
    first = load_dataset("mnist1d", tmp_path)
    cached = tmp_path / "mnist1d" / "mnist1d.npz"
    assert cached.is_file() and availability("mnist1d", tmp_path).state == "present"
    assert (cached.stat().st_mode & 0o777) == 0o644
    assert not list(cached.parent.glob("*.part"))
    _no_generator(monkeypatch)  # a regeneration would now fail
    again = load_dataset("mnist1d", tmp_path)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(first, name), getattr(again, name))


@needs_mnist1d
def test_cache_is_keyed_by_the_generator_settings(small, tmp_path, monkeypatch):
    load_dataset("mnist1d", tmp_path)
    # another sample count under the same entry name: the cached arrays are not reused
    monkeypatch.setattr(m1d, "PUBLISHED", m1d.Variant("mnist1d", 80, 20))
    with pytest.warns(UserWarning, match="other generator settings"):
        ds = load_dataset("mnist1d", tmp_path)
    assert len(ds.y_train) == 80


@needs_mnist1d
def test_damaged_cache_is_regenerated(small, tmp_path):
    clean = load_dataset("mnist1d", tmp_path)
    cached = tmp_path / "mnist1d" / "mnist1d.npz"
    cached.write_bytes(cached.read_bytes()[:100])  # truncated
    with pytest.warns(UserWarning, match="unreadable"):
        again = load_dataset("mnist1d", tmp_path)
    assert torch.equal(clean.x_train, again.x_train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rewritten: the next load is silent
        load_dataset("mnist1d", tmp_path)


def test_missing_package_names_the_install_command(small, tmp_path, monkeypatch):
    _no_generator(monkeypatch)
    with pytest.raises(DataNotFoundError, match=r"pip install mnist1d .*pip install mpts-fast\[mnist1d\]"):
        load_dataset("mnist1d", tmp_path)
    where = availability("mnist1d-large", tmp_path)
    assert where.state == "missing" and "pip install mnist1d" in where.missing[0]
    # a damaged cache cannot be regenerated either: the message names the file and the package
    (tmp_path / "mnist1d").mkdir()
    (tmp_path / "mnist1d" / "mnist1d.npz").write_bytes(b"not an npz")
    with pytest.raises(DataNotFoundError, match=r"mnist1d\.npz is unreadable.*pip install mnist1d"):
        load_dataset("mnist1d", tmp_path)


def test_missing_package_is_a_clean_cli_error(small, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mpts_fast.cli.main import main

    _no_generator(monkeypatch)
    res = CliRunner().invoke(main, ["run", "-s", "random", "-d", "mnist1d", "--data-dir", str(tmp_path),
                                    "--out", str(tmp_path / "out"), "--device", "cpu", "--quiet"])
    assert res.exit_code == 1 and "pip install mnist1d" in res.output
    assert "Traceback" not in res.output


def test_sizes_must_split_evenly_over_the_classes():
    with pytest.raises(ValueError, match="multiple of 10"):
        m1d.generate(m1d.Variant("mnist1d", 15, 10))


def test_registry_entries_describe_themselves_without_loading():
    for name, variant in (("mnist1d", m1d.PUBLISHED), ("mnist1d-large", m1d.LARGE)):
        info = get_info(name)
        assert not info.bundled and info.num_classes == 10 and info.defaults == m1d.DEFAULTS
        assert info.sizes == (variant.train, variant.test)
    assert m1d.LARGE.train == 20_000 and m1d.LARGE.test == 4_000


def test_datasets_command_lists_both_entries(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mpts_fast.cli.main import main

    _no_generator(monkeypatch)  # listing never generates
    res = CliRunner().invoke(main, ["datasets", "--data-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    lines = {line.split()[0]: line for line in res.output.splitlines() if line.startswith("mnist1d")}
    assert "4,000 / 1,000" in lines["mnist1d"] and "20,000 / 4,000" in lines["mnist1d-large"]
    assert "cnn1d" in lines["mnist1d"] and "100+100 x 10" in lines["mnist1d"]
    assert "pip install mnist1d" in lines["mnist1d"]
    assert not (tmp_path / "mnist1d").exists()


# -- the 1-D CNN ---------------------------------------------------------------------------------------------------

def test_cnn1d_is_the_papers_convbase():
    """ConvBase: conv 1→25 (k5) then 25→25 (k3) twice, stride 2, padding 1, linear 125 → 10: 5,210 parameters."""
    m = build_model("cnn1d", (40,), 10)
    assert "cnn1d" in model_names()
    convs = [c for c in m.modules() if isinstance(c, torch.nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (1, 25, (5,), (2,), (1,)), (25, 25, (3,), (2,), (1,)), (25, 25, (3,), (2,), (1,))]
    assert m.embedding_dim == 125 and sum(p.numel() for p in m.parameters()) == 5_210


@pytest.mark.parametrize("shape", [(40,), (1, 40), (3, 17), (3,)])
def test_cnn1d_forward_is_head_of_embed(shape):
    torch.manual_seed(0)
    m = build_model("cnn1d", shape, 4, dropout=0.5).eval()
    x = torch.randn(6, *shape)
    z = m.embed(x)
    assert z.shape == (6, m.embedding_dim) and (z >= 0).all()  # ReLU features
    torch.testing.assert_close(m(x), m.head(z))
    assert m(x[::2]).shape == (3, 4)  # a strided (non-contiguous) batch
    # the dropout before the head is the one MC-dropout passes switch on
    assert [d.p for d in m.modules() if isinstance(d, torch.nn.Dropout)] == [0.5]


@pytest.mark.parametrize("shape,match", [((3, 8, 8), "input_shape"), ((2,), "at least 3 samples"),
                                          ((0,), "input_shape")])
def test_cnn1d_rejects_other_inputs(shape, match):
    with pytest.raises(ValueError, match=match):
        build_model("cnn1d", shape, 10)


def test_cnn1d_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dropout"):
        build_model("cnn1d", (40,), 10, dropout=1.0)
    with pytest.raises(ValueError, match="channels"):
        build_model("cnn1d", (40,), 10, channels=0)


# -- one active-learning round on a tiny generated pool -------------------------------------------------------------

@needs_mnist1d
def test_one_round_of_active_learning_on_mnist1d(small, tmp_path):
    from click.testing import CliRunner

    from mpts_fast.cli.main import main

    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", "-s", "entropy", "-d", "mnist1d", "--data-dir", str(tmp_path), "--out",
                                    str(out), "--rounds", "2", "--initial", "20", "--budget", "10", "--epochs", "2",
                                    "--device", "cpu", "--quiet"])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    cfg = results["config"]
    assert cfg["dataset"] == "mnist1d" and cfg["model"] == "cnn1d" and cfg["lr"] == 1e-2 and cfg["batch_size"] == 100
    rounds = results["runs"][0]["rounds"]
    assert [r["n_labeled"] for r in rounds] == [20, 30]
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in rounds)
    assert len(set(rounds[0]["selected"])) == 10
