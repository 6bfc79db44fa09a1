"""Loading data pickles (CIFAR batches, Mini-ImageNet caches) without letting them run code.

A pickle can name any importable callable; these files only ever need numpy arrays, dtypes and plain containers,
so every other global is refused with a clear error.
"""
from __future__ import annotations

import pickle
from typing import Any, BinaryIO

import numpy as np

_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"), ("collections", "OrderedDict"),
}


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle (only numpy arrays "
                                         "and plain containers are expected)")
        if module.startswith("numpy.core.") and int(np.__version__.split(".")[0]) >= 2:
            module = "numpy._core." + module[len("numpy.core."):]  # the old path is a deprecated alias in numpy 2
        return super().find_class(module, name)


def load_data_pickle(f: BinaryIO, encoding: str = "ASCII") -> Any:
    """pickle.load restricted to numpy arrays and containers; encoding="bytes" for Python 2 pickles (CIFAR)."""
    return _DataUnpickler(f, encoding=encoding).load()
