"""Your own data set (`--dataset PATH`): .npz (stored and compressed) and directories of .npy files, memory-mapped,
inferred defaults, and a clear error for every bad input; written as tiny generated files."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mpts_fast.cli.main import main
from mpts_fast.data import load_dataset, own


def _arrays(rng, n=60, m=20, d=5, classes=3, dtype=np.float32):
    return {"x_train": rng.normal(size=(n, d)).astype(dtype), "y_train": np.arange(n) % classes,
            "x_test": rng.normal(size=(m, d)).astype(dtype), "y_test": np.arange(m) % classes}


@pytest.fixture
def rng(request):
    return np.random.default_rng(abs(hash(request.node.nodeid)) % 2**32)


def _npz(tmp_path, arrays, compressed=False, name="set.npz"):
    path = tmp_path / name
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def _npy_dir(tmp_path, arrays, name="set"):
    d = tmp_path / name
    d.mkdir()
    for key, value in arrays.items():
        np.save(d / f"{key}.npy", value)
    return d


def _check_same(ds, arrays):
    np.testing.assert_array_equal(ds.x_train.numpy(), arrays["x_train"])
    np.testing.assert_array_equal(ds.x_test.numpy(), arrays["x_test"])
    assert ds.y_train.dtype == torch.int64 and ds.y_train.tolist() == arrays["y_train"].tolist()
    assert ds.y_test.tolist() == arrays["y_test"].tolist()


def test_stored_npz_is_memory_mapped_and_exact(tmp_path, rng):
    arrays = _arrays(rng)
    path = _npz(tmp_path, {**arrays, "class_names": np.array(["cat", "dog", "eel"])})
    opened = own.open_arrays(path)
    assert all(isinstance(opened[k], np.memmap) for k in own.REQUIRED)
    ds = load_dataset(str(path))
    _check_same(ds, arrays)
    assert ds.num_classes == 3 and ds.class_names == ("cat", "dog", "eel") and ds.task == "classification"
    assert ds.name == str(path.resolve())
    assert load_dataset(str(path)) is ds  # unchanged file: no second read / validation


def test_fortran_order_and_float64_arrays(tmp_path, rng):
    arrays = _arrays(rng, dtype=np.float64)
    arrays["x_train"] = np.asfortranarray(arrays["x_train"])
    ds = load_dataset(str(_npz(tmp_path, arrays)))
    assert ds.x_train.dtype == torch.float32
    np.testing.assert_allclose(ds.x_train.numpy(), arrays["x_train"].astype(np.float32))


def test_compressed_npz_is_read(tmp_path, rng):
    arrays = _arrays(rng)
    ds = load_dataset(str(_npz(tmp_path, arrays, compressed=True)))
    _check_same(ds, arrays)


def test_npy_directory_with_class_names_file(tmp_path, rng):
    arrays = _arrays(rng, classes=4)
    d = _npy_dir(tmp_path, arrays)
    (d / "class_names.txt").write_text("a\nb\nc\nd\ne\n")
    ds = load_dataset(str(d))
    _check_same(ds, arrays)
    assert ds.num_classes == 5 and ds.class_names == tuple("abcde")  # a class may have no labels yet


def test_uint8_channels_last_images_become_normalised_nchw(tmp_path, rng):
    arrays = {"x_train": rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8), "y_train": np.arange(30) % 2,
              "x_test": rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8), "y_test": np.arange(6) % 2}
    ds = load_dataset(str(_npz(tmp_path, arrays)))
    assert ds.input_shape == (3, 8, 8) and ds.defaults.model == "resnet18"
    ref = arrays["x_train"].transpose(0, 3, 1, 2).astype(np.float64) / 255
    ref = (ref - ref.mean(axis=(0, 2, 3), keepdims=True)) / ref.std(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(ds.x_train.numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("n,classes", [(10, 2), (200, 3), (5000, 10), (10**6, 100)])
def test_inferred_defaults_fit_the_pool(n, classes):
    d = own.infer_defaults(n, classes, (7,))
    assert d.model == "mlp" and 1 <= d.initial and 1 <= d.budget <= 1000
    assert d.initial + d.budget * (d.rounds - 1) <= n


def _error(tmp_path, arrays, directory=False) -> str:
    path = _npy_dir(tmp_path, arrays) if directory else _npz(tmp_path, arrays)
    with pytest.raises(ValueError) as info:
        load_dataset(str(path))
    return str(info.value)


def test_missing_keys_are_named(tmp_path, rng):
    arrays = _arrays(rng)
    del arrays["y_test"], arrays["x_test"]
    msg = _error(tmp_path, arrays)
    assert "lacks x_test, y_test" in msg and "x_train, y_train" in msg


def test_mismatched_lengths(tmp_path, rng):
    arrays = _arrays(rng)
    arrays["y_train"] = arrays["y_train"][:-1]
    msg = _error(tmp_path, arrays, directory=True)
    assert "y_train.npy" in msg and "59 labels" in msg and "60 rows" in msg


def test_non_numeric_arrays(tmp_path, rng):
    arrays = _arrays(rng)
    arrays["x_test"] = np.array([["a"] * 5] * 20)
    msg = _error(tmp_path, arrays)
    assert "x_test" in msg and "numeric" in msg and "strings" in msg


def test_labels_out_of_range_of_class_names(tmp_path, rng):
    arrays = _arrays(rng, classes=3)
    arrays["y_test"][4] = 7
    msg = _error(tmp_path, {**arrays, "class_names": np.array(["a", "b", "c"])})
    assert "y_test" in msg and "label 7 at row 4" in msg and "0..2" in msg


def test_negative_labels_beside_class_names_and_fractional_labels(tmp_path, rng):
    arrays = _arrays(rng)
    arrays["y_train"] = arrays["y_train"] - 1
    assert "label -1 at row 0" in _error(tmp_path, {**arrays, "class_names": np.array(["a", "b", "c"])})
    arrays = _arrays(rng)
    arrays["y_train"] = arrays["y_train"].astype(float)
    arrays["y_train"][3] = 0.5
    (tmp_path / "f").mkdir()
    assert "expected integer class ids, got 0.5 at row 3" in _error(tmp_path / "f", arrays)


def test_integral_float_labels_are_accepted(tmp_path, rng):
    arrays = _arrays(rng)
    arrays["y_train"] = arrays["y_train"].astype(np.float32)
    assert load_dataset(str(_npz(tmp_path, arrays))).y_train.dtype == torch.int64


def test_shape_mismatch_nan_and_empty(tmp_path, rng):
    arrays = _arrays(rng)
    arrays["x_test"] = arrays["x_test"][:, :4]
    assert "do not match x_train's (5,)" in _error(tmp_path, arrays)
    arrays = _arrays(rng)
    arrays["x_train"][17, 2] = np.nan
    (tmp_path / "b").mkdir()
    assert "NaN or infinity in row 17" in _error(tmp_path / "b", arrays)
    arrays = _arrays(rng)
    arrays["x_test"], arrays["y_test"] = arrays["x_test"][:0], arrays["y_test"][:0]
    (tmp_path / "c").mkdir()
    assert "x_test" in _error(tmp_path / "c", arrays) and "no rows" in _error(tmp_path / "c", arrays)


def test_not_an_npz_and_missing_path(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not a valid .npz"):
        load_dataset(str(bad))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(str(tmp_path / "none.npz"))


def test_duplicate_class_names(tmp_path, rng):
    msg = _error(tmp_path, {**_arrays(rng), "class_names": np.array(["a", "b", "a"])})
    assert "class_names" in msg and "unique" in msg


def test_cli_run_on_own_data(tmp_path, rng, monkeypatch):
    arrays = _arrays(rng, n=80, d=4)
    path = _npz(tmp_path, arrays, name="mine.npz")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["run", "-d", "mine.npz", "-s", "entropy", "--rounds", "2", "--epochs", "1",
                                    "--device", "cpu", "-q"])
    assert res.exit_code == 0, res.output
    assert "inferred defaults: initial 3, budget 3, rounds 10, model mlp" in res.output
    saved = json.loads((tmp_path / "runs" / "mine-entropy" / "results.json").read_text())
    assert saved["dataset"] == str(path.resolve()) and saved["config"]["initial"] == 3
    bad = CliRunner().invoke(main, ["run", "-d", "nothere.npz", "-q"])
    assert bad.exit_code == 2 and "nothere.npz does not exist" in bad.output


def test_a_folder_named_like_a_registered_set_does_not_hide_it(tmp_path, monkeypatch):
    (tmp_path / "digits").mkdir()
    monkeypatch.chdir(tmp_path)
    assert not own.is_own_dataset("digits") and not own.is_own_dataset("Digits")
    assert own.is_own_dataset("./digits") and own.is_own_dataset(str(tmp_path / "digits"))
    (tmp_path / "mine").mkdir()
    assert own.is_own_dataset("mine") and not own.is_own_dataset("nothing-here")


@pytest.mark.parametrize("train_values, test_values", [((3, 7, 9), (3, 7, 9)), ((0, 5000), (0, 5000)),
                                                       ((-1, 1), (-1, 1)), ((0, 1, 2, 4), (0, 2, 4))])
def test_labels_that_are_not_0_to_k_minus_1_are_read_as_0_to_k_minus_1(tmp_path, rng, train_values, test_values):
    arrays = _arrays(rng, n=40, m=12)
    arrays["y_train"] = np.array(train_values)[np.arange(40) % len(train_values)]
    arrays["y_test"] = np.array(test_values)[np.arange(12) % len(test_values)]
    values = sorted(set(train_values) | set(test_values))
    with pytest.warns(own.LabelsRemappedWarning, match=r"are not 0\.\." + str(len(values) - 1)):
        ds = load_dataset(str(_npz(tmp_path, arrays)))
    assert ds.num_classes == len(values) and ds.label_values == tuple(values)
    assert ds.class_names == tuple(str(v) for v in values)
    assert ds.y_train.tolist() == [values.index(v) for v in arrays["y_train"]]
    assert ds.y_test.tolist() == [values.index(v) for v in arrays["y_test"]]
    assert ds.defaults.initial >= len(values)  # inferred from the real number of classes
    assert own.summary(ds).splitlines()[1].endswith(own.remap_note(tuple(values)))


def test_labels_0_to_k_minus_1_are_used_as_they_are(tmp_path, rng):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_dataset(str(_npz(tmp_path, _arrays(rng))))
    assert ds.label_values is None and ds.class_names is None and len(own.summary(ds).splitlines()) == 1


def test_cli_says_in_one_line_that_labels_were_read_as_0_to_k_minus_1(tmp_path, rng, monkeypatch):
    arrays = _arrays(rng, n=60, d=4)
    arrays["y_train"], arrays["y_test"] = arrays["y_train"] * 4 + 3, arrays["y_test"] * 4 + 3  # 3, 7, 11
    _npz(tmp_path, arrays, name="odd.npz")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["run", "-d", "odd.npz", "-s", "random", "--rounds", "2", "--epochs", "1",
                                    "--device", "cpu", "-q"])
    assert res.exit_code == 0, res.output
    notes = [line for line in res.output.splitlines() if "are not 0..2" in line]
    assert len(notes) == 1 and "labels 3, 7, 11" in notes[0] and "Warning" not in res.output
    saved = json.loads((tmp_path / "runs" / "odd-random" / "results.json").read_text())
    assert saved["config"]["initial"] == 3  # 3 classes, not 12
