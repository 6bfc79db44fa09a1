"""Downloads (with the network replaced), checksums, offline messages, the registry and `mpts-fast datasets`."""
from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import urllib.error

import numpy as np
import pytest
from click.testing import CliRunner
from data_files import energy_table, idx_bytes, write_energy_csv, write_idx_set
from mpts_fast.cli.main import main

from mpts_fast import data
from mpts_fast.data import download, idx
from mpts_fast.data.download import ChecksumError, DataNotFoundError, RemoteFile


@pytest.fixture
def network(monkeypatch):
    """Replaces the network: `served` maps URL -> bytes; other URLs fail like an offline machine."""
    served: dict[str, bytes] = {}
    opened: list[str] = []

    def fake_open(url, timeout):
        opened.append(url)
        if url not in served:
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        return io.BytesIO(served[url])

    monkeypatch.setattr(download, "_open_url", fake_open)
    return served, opened


def _remote(payload: bytes, name: str = "blob.bin", urls=("https://a.example/blob.bin",)) -> RemoteFile:
    return RemoteFile(name, urls, md5=hashlib.md5(payload).hexdigest())


def test_download_is_verified_and_atomic(tmp_path, network):
    served, opened = network
    payload = b"payload" * 1000
    remote = _remote(payload, urls=("https://down.example/blob.bin", "https://mirror.example/blob.bin"))
    served["https://mirror.example/blob.bin"] = payload
    (path,) = download.ensure("toy", [remote], tmp_path / "toy", progress=False)
    assert path == tmp_path / "toy" / "blob.bin" and path.read_bytes() == payload
    assert opened == ["https://down.example/blob.bin", "https://mirror.example/blob.bin"]  # first mirror failed
    assert [p.name for p in (tmp_path / "toy").iterdir()] == ["blob.bin"]  # no .part left
    assert path.stat().st_mode & 0o777 == 0o644
    # present and valid: no network
    assert download.ensure("toy", [remote], tmp_path / "toy", progress=False) == [path]
    assert len(opened) == 2


def test_corrupt_download_is_discarded(tmp_path, network):
    served, _ = network
    remote = _remote(b"the real file")
    served[remote.urls[0]] = b"something else"
    with pytest.raises(ChecksumError, match="blob.bin.*md5.*discarded"):
        download.ensure("toy", [remote], tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a .part is left


def test_corrupt_local_file_is_refused(tmp_path, network):
    _, opened = network
    remote = _remote(b"the real file")
    (tmp_path / "blob.bin").write_bytes(b"truncated")
    with pytest.raises(ChecksumError, match=r"blob\.bin: md5 .* does not match the published"):
        download.ensure("toy", [remote], tmp_path, progress=False)
    assert opened == [] and (tmp_path / "blob.bin").read_bytes() == b"truncated"  # the user's file stays


def test_offline_message_names_files_directory_and_urls(tmp_path, network):
    _, opened = network
    with pytest.raises(DataNotFoundError) as failed:
        data.load_dataset("svhn", tmp_path, download=True, progress=False)
    message = str(failed.value)
    assert "svhn: 2 file(s) missing (download failed" in message
    assert f"Place these files in {tmp_path / 'svhn'}" in message
    for name in ("train_32x32.mat", "test_32x32.mat"):
        assert f"http://ufldl.stanford.edu/housenumbers/{name}" in message
    assert "e26dedcc434d2e4c54c9b2d4a06d8373" in message
    assert len(opened) == 2


def test_download_false_never_touches_the_network(tmp_path, network):
    _, opened = network
    with pytest.raises(DataNotFoundError, match=r"download=False[\s\S]*train-images-idx3-ubyte\.gz"):
        data.load_dataset("mnist", tmp_path, download=False)
    with pytest.raises(DataNotFoundError, match="no public download"):
        data.load_dataset("mini-imagenet", tmp_path, download=True)
    assert opened == []


def test_mnist_downloads_then_loads(tmp_path, network, monkeypatch):
    served, _ = network
    rng = np.random.default_rng(0)
    source = write_idx_set(tmp_path / "src", rng, gz=True)
    files = []
    for f in idx.MNIST_FILES:
        blob = (tmp_path / "src" / f.name).read_bytes()
        served[f.urls[0]] = blob
        files.append(RemoteFile(f.name, f.urls, md5=hashlib.md5(blob).hexdigest(), alternatives=f.alternatives))
    monkeypatch.setattr(idx, "MNIST_FILES", tuple(files))
    ds = data.load_dataset("mnist", tmp_path / "cache", progress=False)
    assert ds.y_test.tolist() == source["t10k-labels-idx1-ubyte"].tolist()
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(f.name for f in files)
    assert data.availability("mnist", tmp_path / "cache").state == "present"


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown data set 'cifar100'.*cifar10, digits.*svhn, wine"):
        data.load_dataset("cifar100")


def test_registry_contract():
    names = data.dataset_names()
    for required in ("mnist", "fashion-mnist", "cifar10", "svhn", "mini-imagenet", "openml-6", "openml-155",
                     "iris", "wine", "digits", "breast-cancer", "sine", "california-housing", "energy-efficiency"):
        assert required in names
    assert data.DEFAULT_DATASET == "digits"
    assert data.get_info("california-housing").task == "regression"
    assert data.get_info("energy-efficiency").task == "regression"
    # MPTS paper Table 1 and Sec. 4.2: 100 epochs from scratch, 1000 epochs of fine-tuning for the pre-trained ViT
    table1 = {"mnist": ("mlp", 100, 1e-3, 100), "cifar10": ("resnet18", 100, 1e-3, 100),
              "svhn": ("resnet18", 100, 1e-3, 100), "mini-imagenet": ("vit_small", 1000, 1e-3, 1000),
              "openml-6": ("mlp", 100, 1e-4, 100), "openml-155": ("mlp", 100, 1e-4, 100)}
    for name, (model, size, lr, epochs) in table1.items():
        d = data.get_info(name).defaults
        assert (d.model, d.initial, d.budget, d.lr, d.epochs) == (model, size, size, lr, epochs), name
    assert data.get_info("mini-imagenet").defaults.pretrained
    assert data.availability("digits").state == "bundled"


def test_idx_writer_round_trip(tmp_path):
    array = np.arange(24, dtype=">i4").reshape(2, 3, 4)
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "a.gz"), array)


def test_cli_datasets_table(tmp_path, monkeypatch):
    def refuse(url, timeout):
        raise AssertionError("the listing touched the network")

    monkeypatch.setattr(download, "_open_url", refuse)
    monkeypatch.delenv("OPENML_CACHE_DIR", raising=False)
    write_energy_csv(tmp_path / "energy-efficiency" / "ENB2012_data.csv", energy_table(np.random.default_rng(0)))
    result = CliRunner().invoke(main, ["datasets", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    for name in data.dataset_names():
        assert name in lines, name
    d = data.load_dataset("digits").defaults  # tuned by the AL engine for `make run`: read, not hard-coded
    assert "bundled" in lines["digits"] and "1,347 / 450" in lines["digits"]
    assert f"{d.initial}+{d.budget} x {d.rounds}" in lines["digits"] and f"{d.lr:g} / {d.epochs}" in lines["digits"]
    assert "present" in lines["energy-efficiency"] and "regression" in lines["energy-efficiency"]
    assert "missing in svhn/: train_32x32.mat, test_32x32.mat" in lines["svhn"]
    assert "present in energy-efficiency/" in lines["energy-efficiency"] and "50,000 / ?" in lines["openml-155"]
    assert "resnet18" in lines["cifar10"] and "50,000 / 10,000" in lines["cifar10"]
    assert "vit_small (pre-trained)" in lines["mini-imagenet"] and "1000+1000 x 10" in lines["mini-imagenet"]
    assert "0.0001 / 100" in lines["openml-6"]


def test_cli_download_errors_are_clear(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "_open_url", lambda url, timeout: (_ for _ in ()).throw(OSError("offline")))
    result = CliRunner().invoke(main, ["datasets", "--data-dir", str(tmp_path), "--download", "nope"])
    assert result.exit_code != 0 and "expected one of" in result.output
    result = CliRunner().invoke(main, ["datasets", "--data-dir", str(tmp_path), "--download", "svhn"])
    assert result.exit_code != 0 and "train_32x32.mat" in result.output and str(tmp_path / "svhn") in result.output


@pytest.mark.parametrize("failure", [http.client.IncompleteRead(b"par"), ConnectionResetError(104, "reset"),
                                     KeyboardInterrupt()])
def test_interrupted_download_leaves_nothing(tmp_path, monkeypatch, failure):
    class Broken(io.BytesIO):
        def read(self, n=-1):
            if self.tell() > 0:
                raise failure
            return super().read(4)

    monkeypatch.setattr(download, "_open_url", lambda url, timeout: Broken(b"0123456789"))
    remote = _remote(b"0123456789")
    expected = KeyboardInterrupt if isinstance(failure, KeyboardInterrupt) else DataNotFoundError
    with pytest.raises(expected):
        download.ensure("toy", [remote], tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_reader_options_are_checked():
    with pytest.raises(ValueError, match="options: digits does not take target; it takes no options"):
        data.load_dataset("digits", target="Y2")
    with pytest.raises(ValueError, match="options: energy-efficiency does not take n; it takes target"):
        data.load_dataset("energy-efficiency", n=3)
    assert len(data.load_dataset("sine", n=100).y_train) == 80
