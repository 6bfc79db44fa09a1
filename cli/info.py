"""`mpts-fast info`: what this installation can do."""
from __future__ import annotations

import importlib.util
import os
import platform

import click


def collect() -> dict[str, str]:
    """Versions, build and backend facts as display strings."""
    import torch

    import mpts_fast
    from mpts_fast import _native

    facts = {
        "mpts-fast": mpts_fast.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch CUDA": torch.version.cuda or "none (CPU build)",
        "GPU visible": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no",
    }
    if _native._C is None:
        facts["native kernels (_C)"] = f"not built ({_native.IMPORT_ERROR})"
    else:
        facts["native kernels (_C)"] = "built"
        facts["OpenMP threads"] = str(_native._C.openmp_threads())
    facts["native devices"] = ", ".join(_native.native_devices()) or "none (reference ops only)"
    try:
        facts["backend (MPTS_FAST_BACKEND)"] = _native.backend_setting()
    except ValueError:
        facts["backend (MPTS_FAST_BACKEND)"] = f"invalid: {os.environ.get('MPTS_FAST_BACKEND')!r}"
    facts["torch threads"] = str(torch.get_num_threads())
    facts["faiss"] = _faiss_version()
    return facts


def _faiss_version() -> str:
    if importlib.util.find_spec("faiss") is None:
        return "not installed"
    try:
        import faiss

        gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        return f"{faiss.__version__} ({'GPU' if gpus else 'CPU'})"
    except Exception as exc:  # a broken faiss install should not break `info`
        return f"import failed: {exc}"


@click.command()
def info() -> None:
    """Package, torch and CUDA versions, native kernels, threads, faiss."""
    facts = collect()
    width = max(map(len, facts))
    for key, value in facts.items():
        click.echo(f"{key:<{width}}  {value}")
    check_backend()


def check_backend() -> None:
    """A bad MPTS_FAST_BACKEND as a one-line error (exit 1) instead of a traceback from the first op."""
    from mpts_fast import _native

    try:
        _native.backend_setting()
    except ValueError as e:
        raise click.ClickException(f"{e}; set it to one of those or unset it") from None
