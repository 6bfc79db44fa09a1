"""The pytest-benchmark suite over the registry (bench/cases.py), shared by bench/test_bench_cpu.py
and bench/test_bench_cuda.py: one benchmark group per case, holding ours, the plain versions and
any yardstick, so pytest-benchmark's table shows them side by side.

Every benchmark carries extra_info that bench/compare.py reads to compare runs by ratio:
case, impl, role ("ours" / "plain" / "reference"), tier, device, sizes, target_ratio, and
full_work_scale (the factor from the measured part of a slow baseline to its whole work; 1 for
the rest). Nothing about speed is asserted; each plain version's result is checked against ours
so the comparison is like for like.
"""
from __future__ import annotations

import gc

import pytest
import torch

import cases as registry
import harness

TIER = registry.tier_from_env()


def params(device: str) -> list:
    """pytest params (case name, impl name), ours first within each case, cases in registry order.
    Memory-scale cases (fresh_process, ours only) are bench/run.py's on CPU."""
    out = []
    for case, _ in registry.cases_for(device, TIER):
        if case.fresh_process and device == "cpu":
            continue
        for _, impl in case.impls():
            out.append(pytest.param(case.name, impl.name, id=f"{case.name}-{impl.name}"))
    return out


def group_name(case: registry.Case, sz: dict, device: str) -> str:
    return f"{case.name}: {case.label(sz)} {device} float32 [{TIER}]"


class _Inputs:
    """The current case's inputs and ours' result, built once and dropped when the next case starts
    (full-size inputs of two cases need not fit together)."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.inputs = None
        self.ours_result = None

    def get(self, case: registry.Case, sz: dict, device: str):
        key = (case.name, device)
        if key != self.key:
            self.key, self.inputs, self.ours_result = None, None, None
            gc.collect()
            if device == "cuda":
                torch.cuda.empty_cache()
            self.inputs = case.make_inputs(sz, device)
            self.key = key
        return self.inputs


_CACHE = _Inputs()


def run(benchmark, device: str, case_name: str, impl_name: str, wrap=None, before=None, after=None) -> None:
    """Benchmark one implementation of one case. wrap(fn) -> fn: e.g. a CUDA synchronize after
    the call; before() / after(benchmark): per-device bookkeeping around the timed rounds."""
    case = registry.by_name(case_name)
    sz = case.sizes_for(device, TIER)
    role = next(r for r, i in case.impls() if i.name == impl_name)
    impl = case.impl(impl_name)
    inputs = _CACHE.get(case, sz, device)
    closure = impl.make(inputs, sz)
    fn = wrap(closure) if wrap else closure

    benchmark.group = group_name(case, sz, device)
    benchmark.extra_info.update(case=case.name, op=case.op, impl=impl.name, role=role, tier=TIER, device=device,
                                sizes=sz, target_ratio=case.target_ratio, what=impl.what)
    warmup, rounds = case.reps["slow" if impl.slow else "fast"]
    if before:
        before()
    with harness.CpuMonitor() as mon:
        result = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=warmup)
    if mon.result is not None:
        benchmark.extra_info.update(mon.result)
    if after:
        after(benchmark)
    benchmark.extra_info["full_work_scale"] = impl.scale(sz, result) if impl.scale else 1.0
    stats = getattr(benchmark, "stats", None)
    best = stats.stats.min if stats is not None else None
    if best:
        t = best * benchmark.extra_info["full_work_scale"]
        work = case.floor(sz)
        if "flops" in work and "bytes" not in work:
            benchmark.extra_info["gflops"] = work["flops"] / t / 1e9
        if "bytes" in work and "flops" not in work:
            benchmark.extra_info["gbs"] = work["bytes"] / t / 1e9

    if role == "ours":
        _CACHE.ours_result = result
    elif impl.check is not None:
        if _CACHE.ours_result is None:  # ours was deselected (-k): compute it once, untimed
            _CACHE.ours_result = case.ours.make(inputs, sz)()
        impl.check(inputs, sz, result, _CACHE.ours_result)
