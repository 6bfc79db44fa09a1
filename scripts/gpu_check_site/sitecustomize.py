"""Imported at start-up by every Python process of a gpu-check stage (scripts/gpu_check.py puts
this folder first on PYTHONPATH), so the stages import mpts_fast from the checkout without
installing it, as on a GPU machine where nothing can be installed.

- MPTS_GPU_CHECK_ROOT=<checkout>: `mpts_fast.cli` is the checkout's cli/ folder (setup.py maps it
  there with package_dir; without an install nothing else does).
- MPTS_GPU_CHECK_BLOCK=faiss,openml,...: those top-level modules are absent, as on a machine
  that lacks them (`import` raises ModuleNotFoundError and importlib.util.find_spec returns None, so
  code that asks whether a package is installed gets the device's answer), and any installed editable finder for mpts_fast is dropped, so the checkout's
  package is imported exactly the way a machine without an install imports it (the CPU rehearsal).

A sitecustomize that this file shadows (the interpreter's own) still runs, last.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


class _CliFromCheckout(importlib.abc.MetaPathFinder):
    def __init__(self, cli_dir: str) -> None:
        self.cli_dir = cli_dir

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "mpts_fast.cli":
            init = os.path.join(self.cli_dir, "__init__.py")
            return importlib.util.spec_from_file_location(fullname, init, submodule_search_locations=[self.cli_dir])
        return None


class _Blocked(importlib.abc.MetaPathFinder):
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (absent on the GPU machine; blocked by the "
                                      "gpu-check rehearsal)", name=fullname)
        return None


def _editable_mpts_finder(finder) -> bool:
    module = getattr(finder, "__module__", "") or ""
    return module.startswith("__editable__") and "mpts_fast" in module


def _install() -> None:
    blocked = {n.strip() for n in os.environ.get("MPTS_GPU_CHECK_BLOCK", "").split(",") if n.strip()}
    if blocked:
        # an editable install's finder (a .pth in site-packages) would hide whether the checkout
        # imports on its own
        sys.meta_path[:] = [f for f in sys.meta_path if not _editable_mpts_finder(f)]
        sys.meta_path.insert(0, _Blocked(blocked))
        for name in blocked:
            # None in sys.modules: find_spec answers None (absent) instead of the finder's error, and an
            # import stops with ModuleNotFoundError before any finder runs
            sys.modules[name] = None
    root = os.environ.get("MPTS_GPU_CHECK_ROOT")
    if root:
        sys.meta_path.insert(1 if blocked else 0, _CliFromCheckout(os.path.join(root, "cli")))


def _chain() -> None:
    """Run the sitecustomize this one shadows, if any."""
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


_install()
_chain()
