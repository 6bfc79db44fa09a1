"""The data-set record every reader returns, and the paper's per-data-set AL defaults."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import torch

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class ALDefaults:
    """Active-learning settings of the MPTS paper's Table 1 for one data set; CLI options override them."""

    initial: int = 100
    budget: int = 100
    rounds: int = 10
    epochs: int = 100
    lr: float = 1e-3
    batch_size: int = 64
    model: str = "mlp"  # "mlp" | "resnet18" | "vit_small" | "cnn1d"
    pretrained: bool = False
    # True where these are the MPTS paper's own settings for the set (Table 1, §4.2): `--recipe paper` trains as the
    # paper did; elsewhere they are ours, and no recipe reproduces a published figure
    paper: bool = False


@dataclass(frozen=True)
class Dataset:
    """Train/test tensors of one data set, ready for a model.

    x_train: (n, d) float32 for tabular data, (n, c, h, w) float32 for images (already normalised)
    y_train: (n,) int64 class ids for classification; (n,) or (n, t) float32 targets for regression
    x_test, y_test: the same for the test split
    num_classes: number of classes (0 for regression)
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    task: Task = "classification"
    defaults: ALDefaults = field(default_factory=ALDefaults)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


@dataclass(frozen=True)
class Availability:
    """Whether a data set can be loaded without the network.

    state: "bundled" (shipped with a dependency), "generated" (made by an installed generator on first load, then
    cached), "present" (every file found locally) or "missing"
    directory: where its files are looked for (None when bundled)
    missing: the file names absent from `directory` (empty unless state == "missing")
    """

    state: Literal["bundled", "generated", "present", "missing"]
    directory: Path | None = None
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetInfo:
    """A registry entry. `files` names what must be present under the data directory (empty when bundled/generated).

    The fields after `bundled` describe the set without loading it (for `mpts-fast datasets`); None means "known only
    once loaded" (the bundled sets are cheap to load, so they leave them unset).
    num_classes: classes (0 for regression); sizes: (pool/train, test) sample counts as loaded (None: unknown);
    defaults: the AL settings a run uses unless overridden; source: where the files come from;
    availability: availability(data_dir) -> Availability, never touching the network.
    """

    name: str
    loader: Callable[..., Dataset]  # loader(data_dir: Path, download: bool, progress: bool, **options) -> Dataset
    description: str
    task: Task = "classification"
    files: tuple[str, ...] = ()
    bundled: bool = False
    num_classes: int | None = None
    sizes: tuple[int | None, int | None] | None = None
    defaults: ALDefaults | None = None
    source: str = ""
    availability: Callable[[Path], Availability] | None = None
