"""CPU float32 benchmarks: every case of bench/cases.py with CPU sizes, ours next to its plain versions.

    pytest bench/test_bench_cpu.py --benchmark-only                      # full sizes (see bench/README.md)
    MPTS_BENCH_QUICK=1 pytest bench/test_bench_cpu.py --benchmark-only   # quick sizes, < 2 min on 2 cores
    make bench / make bench-compare                                      # save a run / compare with it

One benchmark group per case (bench/suite.py). Nothing about speed is asserted; the plain
versions' results are checked against ours. Floors, memory and the memory-scale cases are
bench/run.py's.
"""
from __future__ import annotations

import pytest

pytest.importorskip("pytest_benchmark")

import suite  # noqa: E402


@pytest.mark.parametrize("case,impl", suite.params("cpu"))
def test_cpu(benchmark, case, impl):
    suite.run(benchmark, "cpu", case, impl)
