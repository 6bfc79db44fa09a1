"""Regression sets of the selective-learning study: California housing and energy efficiency (UCI ENB2012).

Both come back with x float32 (n, 8) standardised with training statistics and y float32 (n,) in the data's own
units (not standardised: MSE and R² are reported in them), split 80/20 with a fixed seed.

- california-housing: scikit-learn's fetcher (its own download and checksum), data_home = `<data dir>/scikit_learn_data`
  (file `cal_housing_py3.pkz`). The fetcher's copy has no missing values, so no imputation is needed.
- energy-efficiency: `ENB2012_data.csv` (columns X1..X8, Y1, Y2, with a header row; `;` or `,` separated) or the
  official `ENB2012_data.xlsx`, read without pandas/openpyxl by a small reader of the xlsx XML. The target is Y1
  (heating load) by default; `load_dataset("energy-efficiency", target="Y2")` or `energy-efficiency-y2` gives Y2
  (cooling load). UCI publishes no checksum: the reader instead checks the contents (768 rows, 10 numeric columns).
"""
from __future__ import annotations

import csv
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import torch

from mpts_fast.data._arrays import standardize
from mpts_fast.data.base import ALDefaults, Availability, Dataset
from mpts_fast.data.download import DataNotFoundError, RemoteFile, ensure, presence

TEST_FRACTION = 0.2
SPLIT_SEED = 0
CALIFORNIA_FILE = "cal_housing_py3.pkz"
CALIFORNIA_DEFAULTS = ALDefaults(initial=100, budget=100, rounds=10, epochs=100, lr=1e-3, model="mlp")
ENERGY_ROWS = 768
ENERGY_COLUMNS = ("X1", "X2", "X3", "X4", "X5", "X6", "X7", "X8", "Y1", "Y2")
ENERGY_FILE = RemoteFile(
    "ENB2012_data.xlsx",
    ("https://archive.ics.uci.edu/ml/machine-learning-databases/00242/ENB2012_data.xlsx",),
    alternatives=("ENB2012_data.csv",))
ENERGY_DEFAULTS = ALDefaults(initial=40, budget=20, rounds=10, epochs=100, lr=1e-3, model="mlp")


def _split(x: np.ndarray, y: np.ndarray, name: str) -> Dataset:
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED)
    xt_tr, xt_te = standardize(x_tr, x_te)
    f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    defaults = CALIFORNIA_DEFAULTS if name == "california-housing" else ENERGY_DEFAULTS
    return Dataset(name, xt_tr, f32(y_tr), xt_te, f32(y_te), num_classes=0, task="regression", defaults=defaults)


def _california_home(data_dir: Path) -> Path:
    return Path(data_dir) / "scikit_learn_data"


def load_california_housing(data_dir: Path, download: bool = True, progress: bool = True) -> Dataset:
    """California housing: 20,640 × 8, target the median house value (100,000 $); train 16,512 / test 4,128."""
    from sklearn.datasets import fetch_california_housing

    home = _california_home(data_dir)
    try:
        bunch = fetch_california_housing(data_home=str(home), download_if_missing=download)
    except OSError as exc:  # sklearn: "Data not found and `download_if_missing` is False", or a failed download
        reason = "download=False: the network is not used" if not download else f"download failed: {exc}"
        raise DataNotFoundError(
            f"california-housing: {CALIFORNIA_FILE} missing in {home} ({reason}). Run once online, or copy "
            f"scikit-learn's cached {CALIFORNIA_FILE} (from ~/scikit_learn_data) into {home}.") from exc
    return _split(np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.float64),
                  "california-housing")


def california_availability(data_dir: Path) -> Availability:
    home = _california_home(data_dir)
    present = (home / CALIFORNIA_FILE).exists()
    return Availability("present" if present else "missing", home, () if present else (CALIFORNIA_FILE,))


def _read_csv(path: Path) -> list[list[str]]:
    text = path.read_text(encoding="utf-8-sig")
    dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t")
    return [row for row in csv.reader(text.splitlines(), dialect) if any(cell.strip() for cell in row)]


_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def _column_index(ref: str) -> int:
    letters = re.match(r"[A-Z]+", ref).group(0)
    index = 0
    for ch in letters:
        index = index * 26 + ord(ch) - ord("A") + 1
    return index - 1


def read_xlsx(path: Path) -> list[list[str]]:
    """The first worksheet of an .xlsx file as rows of cell strings (numbers, shared and inline strings only)."""
    with zipfile.ZipFile(path) as z:
        shared: list[str] = []
        if "xl/sharedStrings.xml" in z.namelist():
            root = ElementTree.fromstring(z.read("xl/sharedStrings.xml"))
            shared = ["".join(t.text or "" for t in si.iter(f"{{{_NS['m']}}}t")) for si in root.findall("m:si", _NS)]
        sheets = sorted(n for n in z.namelist() if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n))
        if not sheets:
            raise ValueError(f"{path}: no worksheet found")
        sheet = min(sheets, key=lambda n: int(re.search(r"(\d+)\.xml$", n).group(1)))
        root = ElementTree.fromstring(z.read(sheet))
    rows = []
    for row in root.iter(f"{{{_NS['m']}}}row"):
        cells: dict[int, str] = {}
        for i, c in enumerate(row.findall("m:c", _NS)):
            col = _column_index(c.get("r")) if c.get("r") else i
            kind, v = c.get("t"), c.find("m:v", _NS)
            if kind == "s" and v is not None:
                cells[col] = shared[int(v.text)]
            elif kind == "inlineStr":
                cells[col] = "".join(t.text or "" for t in c.iter(f"{{{_NS['m']}}}t"))
            elif v is not None:
                cells[col] = v.text or ""
        if cells:
            rows.append([cells.get(j, "") for j in range(max(cells) + 1)])
    return rows


def read_energy(path: Path) -> np.ndarray:
    """(768, 10) float64 of X1..X8, Y1, Y2 from the ENB2012 CSV or xlsx; raises ValueError on other contents."""
    rows = read_xlsx(path) if path.suffix == ".xlsx" else _read_csv(path)
    if not rows:
        raise ValueError(f"energy-efficiency: {path} is empty")
    header = [h.strip() for h in rows[0][:10]]
    if tuple(header) != ENERGY_COLUMNS:
        raise ValueError(f"energy-efficiency: {path} header {rows[0][:10]} is not {list(ENERGY_COLUMNS)}")
    body = [r[:10] for r in rows[1:] if any(cell.strip() for cell in r[:10])]
    try:
        data = np.array([[float(cell) for cell in r] for r in body], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"energy-efficiency: {path} has a non-numeric cell ({exc})") from None
    if data.shape != (ENERGY_ROWS, 10) or not np.isfinite(data).all():
        raise ValueError(f"energy-efficiency: {path} holds {data.shape} values; expected {ENERGY_ROWS} finite rows "
                         "of 10 (the official ENB2012 file)")
    return data


def _energy_dirs(data_dir: Path) -> list[Path]:
    return [Path(data_dir) / "energy-efficiency", Path(data_dir)]


def load_energy_efficiency(data_dir: Path, download: bool = True, progress: bool = True,
                           target: str = "Y1") -> Dataset:
    """Energy efficiency (ENB2012): 768 × 8, target Y1 (heating load) or Y2 (cooling load); train 614 / test 154."""
    if target not in ("Y1", "Y2"):
        raise ValueError(f"target: expected 'Y1' or 'Y2', got {target!r}")
    (path,) = ensure("energy-efficiency", (ENERGY_FILE,), _energy_dirs(data_dir), download=download,
                     progress=progress)
    data = read_energy(path)
    name = "energy-efficiency" if target == "Y1" else "energy-efficiency-y2"
    return _split(data[:, :8], data[:, 8 if target == "Y1" else 9], name)


def load_energy_efficiency_y2(data_dir: Path, download: bool = True, progress: bool = True) -> Dataset:
    return load_energy_efficiency(data_dir, download, progress, target="Y2")


def energy_availability(data_dir: Path) -> Availability:
    return presence((ENERGY_FILE,), _energy_dirs(data_dir))


__all__ = ["DataNotFoundError", "load_california_housing", "load_energy_efficiency", "read_energy", "read_xlsx"]
