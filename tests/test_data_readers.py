"""Every reader on tiny files in its real format: shapes, dtypes, label mapping, normalisation, splits.

No test touches the network: `_open_url` is replaced by a function that fails the test if called.
"""
from __future__ import annotations

import dataclasses
import sys
import types

import numpy as np
import pytest
import torch
from data_files import (
    cifar_batches,
    energy_table,
    md5,
    write_cifar,
    write_energy_csv,
    write_energy_xlsx,
    write_idx_set,
    write_mini_imagenet,
    write_svhn,
)

from mpts_fast import data
from mpts_fast.data import cifar, download, idx, mini_imagenet, openml_sets, regression, svhn
from mpts_fast.data._arrays import channel_stats, to_float_images


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(url, timeout):
        raise AssertionError(f"a reader test tried the network: {url}")

    monkeypatch.setattr(download, "_open_url", refuse)
    monkeypatch.delenv("OPENML_CACHE_DIR", raising=False)


@pytest.fixture
def rng(gen) -> np.random.Generator:
    return np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=gen)))


def _with_md5(files, directory):
    """The registry's file records with the checksums of the tiny files in `directory`."""
    return tuple(dataclasses.replace(f, md5=md5(directory / f.name)) for f in files)


def _expected_images(u8_nchw: np.ndarray, mean, std) -> torch.Tensor:
    mean = np.asarray(mean, np.float64).reshape(1, -1, 1, 1)
    std = np.asarray(std, np.float64).reshape(1, -1, 1, 1)
    return torch.from_numpy((u8_nchw / 255.0 - mean) / std)


def _assert_standardised_channels(x: torch.Tensor) -> None:
    per_channel = x.double().transpose(0, 1).reshape(x.shape[1], -1)
    torch.testing.assert_close(per_channel.mean(1), torch.zeros(x.shape[1], dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_channel.std(1, correction=0), torch.ones(x.shape[1], dtype=torch.float64),
                               atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- shared array helpers


def test_channel_stats_and_conversion_match_float64(rng):
    u8 = rng.integers(0, 256, (7, 3, 5, 4), dtype=np.uint8)
    strided = np.ascontiguousarray(u8.transpose(2, 3, 1, 0)).transpose(3, 2, 0, 1)  # same values, other strides
    mean, std = channel_stats(strided)
    ref = u8.astype(np.float64) / 255.0
    np.testing.assert_allclose(mean, ref.mean((0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, ref.std((0, 2, 3)), rtol=1e-10)
    rows = np.array([5, 0, 3])
    out = to_float_images(strided, mean, std, rows)
    assert out.dtype == torch.float32 and out.shape == (3, 3, 5, 4) and out.is_contiguous()
    torch.testing.assert_close(out.double(), _expected_images(u8[rows], mean, std), atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="images"):
        channel_stats(u8.astype(np.float32))
    with pytest.raises(ValueError, match="std"):
        to_float_images(u8, mean, np.zeros(3))


# ----------------------------------------------------------------------------- IDX (MNIST, Fashion-MNIST)


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_idx_files(tmp_path, rng, monkeypatch, gz):
    arrays = write_idx_set(tmp_path / "fashion-mnist", rng, gz=gz)
    if gz:
        monkeypatch.setattr(idx, "FASHION_FILES", _with_md5(idx.FASHION_FILES, tmp_path / "fashion-mnist"))
    ds = data.load_dataset("fashion-mnist", tmp_path, download=False)
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_test.shape == (5, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.num_classes == 10 and ds.task == "classification" and ds.input_shape == (1, 28, 28)
    assert ds.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    _assert_standardised_channels(ds.x_train)
    u8 = arrays["train-images-idx3-ubyte"][:, None].astype(np.float64) / 255.0
    expected = _expected_images(arrays["t10k-images-idx3-ubyte"][:, None], u8.mean(), u8.std())
    torch.testing.assert_close(ds.x_test.double(), expected, atol=1e-5, rtol=1e-5)


def test_mnist_pool_is_a_seeded_subset_and_torchvision_layout_works(tmp_path, rng, monkeypatch):
    arrays = write_idx_set(tmp_path / "MNIST" / "raw", rng, n_train=20, gz=False)
    monkeypatch.setattr(idx, "MNIST_POOL", 8)
    a = data.load_dataset("mnist", tmp_path, download=False)
    b = data.load_dataset("mnist", tmp_path, download=False)
    assert a.x_train.shape == (8, 1, 28, 28) and len(a.y_test) == 5
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert data.availability("mnist", tmp_path) == data.Availability("present", tmp_path / "MNIST" / "raw")
    # the pool rows are training rows, in order, with their own labels
    keep = np.sort(np.random.default_rng(idx.POOL_SEED).choice(20, size=8, replace=False))
    assert a.y_train.tolist() == arrays["train-labels-idx1-ubyte"][keep].tolist()


def test_idx_rejects_malformed_files(tmp_path):
    bad = tmp_path / "x-idx3-ubyte"
    bad.write_bytes(bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") * 3 + b"\x00" * 5)  # header says 8 bytes
    with pytest.raises(ValueError, match="header says"):
        idx.read_idx(bad)
    bad.write_bytes(b"\x1f\x8b\x08\x00")
    with pytest.raises(ValueError, match="not an IDX file"):
        idx.read_idx(bad)


# ----------------------------------------------------------------------------- CIFAR-10


@pytest.mark.parametrize("archive", [True, False])
def test_cifar10_from_tar_gz_and_extracted_batches(tmp_path, rng, monkeypatch, archive):
    batches = cifar_batches(rng)
    path = write_cifar(tmp_path / "cifar10", batches, archive=archive)
    if archive:
        monkeypatch.setattr(cifar, "ARCHIVE", dataclasses.replace(cifar.ARCHIVE, md5=md5(path)))
    ds = data.load_dataset("cifar10", tmp_path, download=False)
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    assert ds.x_train.dtype == torch.float32 and ds.num_classes == 10
    train_labels = sum((batches[f"data_batch_{i}"]["labels"] for i in range(1, 6)), [])
    assert ds.y_train.tolist() == train_labels and ds.y_test.tolist() == batches["test_batch"]["labels"]
    _assert_standardised_channels(ds.x_train)
    u8_train = np.concatenate([batches[f"data_batch_{i}"]["data"] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    mean = (u8_train / 255.0).mean((0, 2, 3))
    std = (u8_train / 255.0).std((0, 2, 3))
    # the 3072 values are R plane, G plane, B plane, each row-major 32×32
    expected = _expected_images(batches["test_batch"]["data"].reshape(-1, 3, 32, 32), mean, std)
    torch.testing.assert_close(ds.x_test.double(), expected, atol=1e-5, rtol=1e-5)


def test_cifar10_refuses_code_in_pickles(tmp_path):
    import pickle

    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in cifar.TRAIN_BATCHES + cifar.TEST_BATCHES:
        (folder / name).write_bytes(pickle.dumps({"data": types.SimpleNamespace()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        data.load_dataset("cifar10", tmp_path, download=False)


# ----------------------------------------------------------------------------- SVHN


def test_svhn_mat_layout_labels_and_pool(tmp_path, rng, monkeypatch):
    x_tr, y_tr = write_svhn(tmp_path / "svhn" / "train_32x32.mat", rng, 14)
    x_te, y_te = write_svhn(tmp_path / "svhn" / "test_32x32.mat", rng, 11)
    monkeypatch.setattr(svhn, "FILES", _with_md5(svhn.FILES, tmp_path / "svhn"))
    monkeypatch.setattr(svhn, "POOL", 10)
    ds = data.load_dataset("svhn", tmp_path, download=False)
    keep = np.sort(np.random.default_rng(svhn.POOL_SEED).choice(14, size=10, replace=False))
    assert ds.x_train.shape == (10, 3, 32, 32) and ds.x_test.shape == (11, 3, 32, 32)
    assert ds.y_train.dtype == torch.int64
    assert ds.y_test.tolist() == [int(v) % 10 for v in y_te[:, 0]]  # 10 means digit 0
    assert ds.y_test.tolist()[9] == 0 and set(ds.y_test.tolist()) == set(range(10))
    assert ds.y_train.tolist() == [int(v) % 10 for v in y_tr[keep, 0]]
    _assert_standardised_channels(ds.x_train)
    pool = x_tr.transpose(3, 2, 0, 1)[keep] / 255.0  # X[h, w, c, n] -> [n, c, h, w]
    expected = _expected_images(x_te.transpose(3, 2, 0, 1), pool.mean((0, 2, 3)), pool.std((0, 2, 3)))
    torch.testing.assert_close(ds.x_test.double(), expected, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- Mini-ImageNet


def test_mini_imagenet_pools_all_classes_deterministically(tmp_path, rng):
    by_class = write_mini_imagenet(tmp_path / "mini-imagenet", rng, classes_per_split=2, per_class=10)
    ds = data.load_dataset("mini-imagenet", tmp_path, download=False)
    wnids = sorted(by_class)
    assert ds.num_classes == 6
    assert ds.x_train.shape == (48, 3, 84, 84) and ds.x_test.shape == (12, 3, 84, 84)  # per class 8 / 2
    assert ds.y_train.tolist() == [c for c in range(6) for _ in range(8)]
    assert ds.y_test.tolist() == [c for c in range(6) for _ in range(2)]
    # class 3's pool images are its first 8 rows in class_dict order, ImageNet-normalised, NCHW
    first = by_class[wnids[3]][:8].transpose(0, 3, 1, 2)
    expected = _expected_images(first, mini_imagenet.IMAGENET_MEAN, mini_imagenet.IMAGENET_STD)
    torch.testing.assert_close(ds.x_train[24:32].double(), expected, atol=1e-5, rtol=1e-5)
    again = data.load_dataset("mini-imagenet", tmp_path, download=False)
    assert torch.equal(again.x_test, ds.x_test)


# ----------------------------------------------------------------------------- OpenML (a fake `openml` module)


class _FakeOpenML(types.ModuleType):
    """The slice of the openml API the loader uses; records the cache directory it was given."""

    def __init__(self, x, y):
        super().__init__("openml")
        self.calls = []
        fake = self

        class Config:
            @staticmethod
            def set_root_cache_directory(path):
                fake.cache = path

        class DatasetRecord:
            default_target_attribute = "class"

            def get_data(self, target):
                assert target == "class"
                return x, y, None, None

        class Datasets:
            @staticmethod
            def get_dataset(did, **kwargs):
                fake.calls.append(did)
                return DatasetRecord()

        self.config, self.datasets = Config, Datasets


def test_openml_badge_rules(tmp_path, rng, monkeypatch):
    n = 400
    x = rng.normal(3.0, 2.0, (n, 16))
    x[5, 2] = np.nan  # a missing value is imputed, not propagated
    y = np.array([chr(ord("A") + i % 26) for i in range(n)], dtype=object)
    fake = _FakeOpenML(x, y)
    monkeypatch.setitem(sys.modules, "openml", fake)
    ds = data.load_dataset("openml-6", tmp_path, download=True)
    assert fake.calls == [6] and fake.cache == str(tmp_path / "openml")
    assert len(ds.y_train) == 360 and len(ds.y_test) == 40 and ds.num_classes == 26
    assert ds.x_train.shape == (360, 16) and ds.x_train.dtype == torch.float32
    assert torch.isfinite(ds.x_train).all() and torch.isfinite(ds.x_test).all()
    torch.testing.assert_close(ds.x_train.double().mean(0), torch.zeros(16, dtype=torch.float64), atol=1e-5,
                               rtol=0)
    assert set(ds.y_train.tolist()) == set(range(26))  # label-encoded, sorted: "A" -> 0
    pool, test = openml_sets.badge_split(np.arange(n) % 26, 26)
    assert ds.y_train.tolist() == (pool % 26).tolist() and ds.y_test.tolist() == (test % 26).tolist()
    assert len(np.intersect1d(pool, test)) == 0
    assert ds.defaults.lr == 1e-4 and ds.defaults.model == "mlp"


def test_openml_pool_cap_and_cache_env(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(openml_sets, "POOL_CAP", 50)
    fake = _FakeOpenML(rng.normal(size=(200, 10)), np.arange(200) % 3)
    monkeypatch.setitem(sys.modules, "openml", fake)
    monkeypatch.setenv("OPENML_CACHE_DIR", str(tmp_path / "elsewhere"))
    ds = data.load_dataset("openml-155", tmp_path)
    assert fake.cache == str(tmp_path / "elsewhere")
    assert len(ds.y_train) == 50 and len(ds.y_test) == 20 and ds.num_classes == 3


def test_openml_offline_needs_the_cache(tmp_path, rng, monkeypatch):
    fake = _FakeOpenML(rng.normal(size=(30, 4)), np.arange(30) % 2)
    monkeypatch.setitem(sys.modules, "openml", fake)
    with pytest.raises(data.DataNotFoundError, match=r"openml-6.*not in the openml cache"):
        data.load_dataset("openml-6", tmp_path, download=False)
    assert fake.calls == []  # download=False never reached openml
    cached = openml_sets.dataset_cache(tmp_path / "openml", 6)
    cached.mkdir(parents=True)
    (cached / "description.xml").write_text("<x/>")
    (cached / "dataset_6.pq").write_bytes(b"")
    assert data.availability("openml-6", tmp_path).state == "present"
    assert len(data.load_dataset("openml-6", tmp_path, download=False).y_test) == 3


def test_openml_missing_package_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openml", None)  # import openml -> ImportError
    with pytest.raises(ImportError, match="pip install openml"):
        data.load_dataset("openml-6", tmp_path)


# ----------------------------------------------------------------------------- regression sets


@pytest.mark.parametrize("fmt", ["csv", "csv;", "xlsx"])
def test_energy_efficiency_csv_and_xlsx(tmp_path, rng, fmt):
    table = energy_table(rng)
    if fmt == "xlsx":
        write_energy_xlsx(tmp_path / "energy-efficiency" / "ENB2012_data.xlsx", table)
    else:
        write_energy_csv(tmp_path / "energy-efficiency" / "ENB2012_data.csv", table, sep=fmt[3:] or ",")
    ds = data.load_dataset("energy-efficiency", tmp_path, download=False)
    assert ds.task == "regression" and ds.num_classes == 0
    assert ds.x_train.shape == (614, 8) and ds.x_test.shape == (154, 8)
    assert ds.y_train.shape == (614,) and ds.y_train.dtype == torch.float32
    all_y1 = np.sort(np.concatenate([ds.y_train.numpy(), ds.y_test.numpy()]))
    np.testing.assert_allclose(all_y1, np.sort(table[:, 8]).astype(np.float32))
    y2 = data.load_dataset("energy-efficiency", tmp_path, download=False, target="Y2")
    np.testing.assert_allclose(np.sort(np.concatenate([y2.y_train.numpy(), y2.y_test.numpy()])),
                               np.sort(table[:, 9]).astype(np.float32))
    assert torch.equal(y2.x_train, ds.x_train)
    assert torch.equal(data.load_dataset("energy-efficiency-y2", tmp_path, download=False).y_test, y2.y_test)
    with pytest.raises(ValueError, match="target"):
        data.load_dataset("energy-efficiency", tmp_path, download=False, target="Y3")


def test_energy_efficiency_rejects_other_contents(tmp_path, rng):
    write_energy_csv(tmp_path / "energy-efficiency" / "ENB2012_data.csv", energy_table(rng, rows=700))
    with pytest.raises(ValueError, match="expected 768"):
        data.load_dataset("energy-efficiency", tmp_path, download=False)


def test_california_housing_through_the_sklearn_fetcher(tmp_path, rng, monkeypatch):
    import sklearn.datasets

    calls = []

    def fake_fetch(data_home, download_if_missing):
        calls.append((data_home, download_if_missing))
        if not download_if_missing:
            raise OSError("Data not found and `download_if_missing` is False")
        return types.SimpleNamespace(data=rng.normal(size=(100, 8)), target=rng.uniform(0.5, 5, 100))

    monkeypatch.setattr(sklearn.datasets, "fetch_california_housing", fake_fetch)
    ds = data.load_dataset("california-housing", tmp_path)
    assert calls == [(str(tmp_path / "scikit_learn_data"), True)]
    assert ds.task == "regression" and ds.x_train.shape == (80, 8) and ds.y_test.shape == (20,)
    assert ds.y_train.dtype == torch.float32
    with pytest.raises(data.DataNotFoundError, match=r"cal_housing_py3\.pkz.*download=False"):
        data.load_dataset("california-housing", tmp_path, download=False)
    assert regression.california_availability(tmp_path).state == "missing"


def test_malformed_files_give_clear_errors(tmp_path, rng, monkeypatch):
    import pickle
    import tarfile

    from scipy.io import savemat

    (tmp_path / "svhn").mkdir()
    savemat(tmp_path / "svhn" / "train_32x32.mat", {"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.zeros((3, 1))})
    with pytest.raises(ValueError, match=r"svhn: .*train_32x32\.mat has X \(32, 32, 3, 4\) uint8 and 3 labels"):
        svhn.read_mat(tmp_path / "svhn" / "train_32x32.mat")
    savemat(tmp_path / "svhn" / "train_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": [[0], [3]]})
    with pytest.raises(ValueError, match="labels outside 1..10"):
        svhn.read_mat(tmp_path / "svhn" / "train_32x32.mat")

    with tarfile.open(tmp_path / "partial.tar.gz", "w:gz"):
        pass
    with pytest.raises(ValueError, match=r"no cifar-10-batches-py/data_batch_1, data_batch_2"):
        cifar._raw_batches(tmp_path / "partial.tar.gz")

    folder = tmp_path / "mini-imagenet"
    write_mini_imagenet(folder, rng, classes_per_split=1, per_class=2, size=4)
    with open(folder / "mini-imagenet-cache-val.pkl", "rb") as f:
        val = pickle.load(f)
    with open(folder / "mini-imagenet-cache-train.pkl", "rb") as f:
        (train_wnid,) = pickle.load(f)["class_dict"]
    val["class_dict"] = {train_wnid: val["class_dict"].popitem()[1]}  # the train file's class again
    with open(folder / "mini-imagenet-cache-val.pkl", "wb") as f:
        pickle.dump(val, f)
    with pytest.raises(ValueError, match=f"class {train_wnid} appears in both"):
        data.load_dataset("mini-imagenet", tmp_path, download=False)
