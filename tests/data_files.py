"""Writers of tiny data files in each real format, for the data-reader tests (no network, a few KB each)."""
from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np

IDX_TYPE = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
            np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding (magic 0 0 type ndim, big-endian uint32 dims, big-endian data)."""
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    header = bytes([0, 0, IDX_TYPE[dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def write_idx_set(directory: Path, rng: np.random.Generator, n_train: int = 12, n_test: int = 5,
                  gz: bool = True) -> dict[str, np.ndarray]:
    """MNIST-style files (28×28 uint8 images, labels 0..9) in `directory`; returns the arrays written."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return arrays


def cifar_batches(rng: np.random.Generator, per_batch: int = 4) -> dict[str, dict]:
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = {"batch_label": name, "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                         "labels": [int(v) for v in rng.integers(0, 10, per_batch)]}
    return batches


def write_cifar(directory: Path, batches: dict[str, dict], archive: bool) -> Path:
    """The batches as `cifar-10-batches-py/` (archive=False) or `cifar-10-python.tar.gz` in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    blobs = {name: pickle.dumps(batch, protocol=2) for name, batch in batches.items()}
    if not archive:
        folder = directory / "cifar-10-batches-py"
        folder.mkdir()
        for name, blob in blobs.items():
            (folder / name).write_bytes(blob)
        return folder
    path = directory / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in blobs.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def write_svhn(path: Path, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A .mat with X (32, 32, 3, n) uint8 and y (n, 1) labels 1..10 (every label present when n >= 10)."""
    from scipy.io import savemat

    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"X": x, "y": y})
    return x, y


def write_mini_imagenet(directory: Path, rng: np.random.Generator, classes_per_split: int = 2,
                        per_class: int = 10, size: int = 84) -> dict[str, np.ndarray]:
    """Three cache pickles; returns {wnid: that class's images (per_class, size, size, 3)}."""
    directory.mkdir(parents=True, exist_ok=True)
    by_class = {}
    for s, split in enumerate(("train", "val", "test")):
        wnids = [f"n{9 - s}{c:07d}" for c in range(classes_per_split)]  # unsorted across files on purpose
        images = rng.integers(0, 256, (classes_per_split * per_class, size, size, 3), dtype=np.uint8)
        order = rng.permutation(len(images))  # a class's rows are scattered through the file
        class_dict = {}
        for c, wnid in enumerate(wnids):
            rows = order[c * per_class:(c + 1) * per_class].tolist()
            class_dict[wnid] = rows
            by_class[wnid] = images[rows]
        with open(directory / f"mini-imagenet-cache-{split}.pkl", "wb") as f:
            pickle.dump({"image_data": images, "class_dict": class_dict}, f, protocol=4)
    return by_class


def energy_table(rng: np.random.Generator, rows: int = 768) -> np.ndarray:
    return np.round(rng.uniform(0, 100, (rows, 10)), 3)


def write_energy_csv(path: Path, table: np.ndarray, sep: str = ",") -> None:
    lines = [sep.join(["X1", "X2", "X3", "X4", "X5", "X6", "X7", "X8", "Y1", "Y2"])]
    lines += [sep.join(f"{v:g}" for v in row) for row in table]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def write_energy_xlsx(path: Path, table: np.ndarray) -> None:
    """A minimal spreadsheet as Excel writes it: header cells as shared strings, numbers inline."""
    ns = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    header = ["X1", "X2", "X3", "X4", "X5", "X6", "X7", "X8", "Y1", "Y2"]
    letters = "ABCDEFGHIJ"
    shared = "".join(f"<si><t>{h}</t></si>" for h in header)
    rows = ['<row r="1">' + "".join(f'<c r="{letters[j]}1" t="s"><v>{j}</v></c>' for j in range(10)) + "</row>"]
    for i, row in enumerate(table, start=2):
        rows.append(f'<row r="{i}">' + "".join(f'<c r="{letters[j]}{i}"><v>{v!r}</v></c>' for j, v in
                                              enumerate(row.tolist())) + "</row>")
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("xl/sharedStrings.xml", f'<sst xmlns="{ns}">{shared}</sst>')
        z.writestr("xl/worksheets/sheet1.xml", f'<worksheet xmlns="{ns}"><sheetData>{"".join(rows)}</sheetData>'
                                               "</worksheet>")
