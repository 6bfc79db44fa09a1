"""pytest setup for the benchmark suites.

The suites only run when bench/ (or a file in it) is named on the command line:

    pytest bench/ --benchmark-only                     # full sizes (minutes)
    MPTS_BENCH_QUICK=1 pytest bench/ --benchmark-only  # quick sizes (under two minutes)
    make bench / make bench-compare                    # save a run / compare with it (bench/README.md)

A plain `pytest` (testpaths = tests) never comes here, and runs that only reach bench/ by walking
the tree (`pytest .`) skip its files (pytest_ignore_collect).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent

if str(BENCH_DIR) not in sys.path:  # `import cases, suite, harness` under any --import-mode
    sys.path.insert(0, str(BENCH_DIR))


def _bench_named_explicitly(config) -> bool:
    base = Path(config.invocation_params.dir)
    for arg in config.invocation_params.args:
        if arg.startswith("-"):
            continue
        path = Path(arg.split("::", 1)[0])
        try:
            path = (base / path).resolve()
        except OSError:
            continue
        if path == BENCH_DIR or BENCH_DIR in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path, config):
    if not _bench_named_explicitly(config):
        return True
    return None


def pytest_report_header(config):
    if not _bench_named_explicitly(config):
        return None
    quick = os.environ.get("MPTS_BENCH_QUICK", "0").strip().lower() not in ("", "0", "false", "no", "off")
    return f"mpts_fast bench: {'quick' if quick else 'full'} sizes (MPTS_BENCH_QUICK={'1' if quick else '0'})"
