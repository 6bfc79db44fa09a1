"""CPU float32 benchmarks: mpts_fast next to the plain-PyTorch versions in bench/baselines.py.

    pytest bench/test_bench_cpu.py --benchmark-only                    # full sizes
    MPTS_BENCH_QUICK=1 pytest bench/test_bench_cpu.py --benchmark-only # quick sizes, < 1 min

Each op is one benchmark group, so pytest-benchmark's table lists ours next to the plain versions
and prints every time relative to the group's fastest in parentheses. Nothing about speed is
asserted; each plain version's result is checked against ours so the comparison is like for
like. The memory-scale rbf_mmd2 case (n = m = 32768) and the floors are in bench/run.py.
"""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("pytest_benchmark")

import baselines  # noqa: E402
import harness  # noqa: E402
from mpts_fast import ops  # noqa: E402

QUICK = harness.quick_from_env()
SZ = harness.sizes_for("cpu", QUICK)
DEV = "cpu"
FAST_ROUNDS = 3  # ours and cheap cases
SLOW_ROUNDS = 3 if QUICK else 2  # plain versions taking seconds at full size


def _bench(benchmark, fn, rounds, group, **extra):
    benchmark.group = group
    benchmark.extra_info.update(extra)
    with harness.CpuMonitor() as mon:
        out = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
    if mon.result is not None:
        benchmark.extra_info.update(mon.result)
    return out


def _best(benchmark):
    stats = getattr(benchmark, "stats", None)
    return stats.stats.min if stats is not None else None


# ----------------------------------------------------------------------------- rbf_mmd2

MMD_GROUP = f"rbf_mmd2 fwd+bwd n=m={SZ.mmd_n} d={SZ.mmd_d} 5 bandwidths cpu float32"
MMD_IMPLS = {
    "mpts_fast": ops.rbf_mmd2,
    "plain_three_blocks": baselines.mmd2_three_blocks,
    "plain_concat_cdist": baselines.mmd2_concat_cdist,
}


@pytest.fixture(scope="module")
def mmd_data():
    x, y = harness.mmd_inputs(SZ.mmd_n, SZ.mmd_n, SZ.mmd_d, DEV)
    with torch.no_grad():
        ref = ops.rbf_mmd2(x, y)
    return x, y, ref


@pytest.mark.parametrize("impl", list(MMD_IMPLS))
def test_rbf_mmd2(benchmark, mmd_data, impl):
    x, y, ref = mmd_data
    run = harness.mmd_fwd_bwd(MMD_IMPLS[impl], x, y)
    flops = harness.mmd_flops(SZ.mmd_n, SZ.mmd_n, SZ.mmd_d)
    rounds = FAST_ROUNDS if impl == "mpts_fast" else SLOW_ROUNDS
    value = _bench(benchmark, run, rounds, MMD_GROUP, floor_flops=flops, n=SZ.mmd_n, d=SZ.mmd_d)
    if _best(benchmark):
        benchmark.extra_info["gflops"] = flops / _best(benchmark) / 1e9
    torch.testing.assert_close(value, ref, rtol=2e-3, atol=1e-6)
    assert x.grad is not None and torch.isfinite(x.grad).all()


# ------------------------------------------------------------------- snapshot scores

SNAP_GROUP = f"snapshot_uncertainty S={SZ.snap_S} N={SZ.snap_N} C={SZ.snap_C} cpu float32"


@pytest.fixture(scope="module")
def snap_data():
    logits = harness.snapshot_inputs(SZ.snap_S, SZ.snap_N, SZ.snap_C, DEV)
    return logits, ops.snapshot_uncertainty(logits)


def test_snapshot_mpts_fast_all_five(benchmark, snap_data):
    logits, _ = snap_data
    nbytes = harness.snapshot_bytes(SZ.snap_S, SZ.snap_N, SZ.snap_C)
    _bench(benchmark, lambda: ops.snapshot_uncertainty(logits), FAST_ROUNDS, SNAP_GROUP, floor_bytes=nbytes)
    if _best(benchmark):
        benchmark.extra_info["gbs"] = nbytes / _best(benchmark) / 1e9


def test_snapshot_plain_five_scores(benchmark, snap_data):
    logits, ref = snap_data
    out = _bench(benchmark, lambda: baselines.snapshot_scores_plain(logits), FAST_ROUNDS, SNAP_GROUP)
    for name, got, want in zip(ref._fields, out, ref):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4, msg=name)


def test_snapshot_plain_entropy_only(benchmark, snap_data):
    logits, ref = snap_data
    out = _bench(benchmark, lambda: baselines.snapshot_entropy_plain(logits), FAST_ROUNDS, SNAP_GROUP)
    torch.testing.assert_close(out, ref.entropy, rtol=1e-3, atol=1e-4)


# ------------------------------------------------------------------------ sensitivity

SENS_GROUP = f"sensitivity l1 P={SZ.sens_P} K={SZ.sens_K} J={SZ.sens_J} I={SZ.sens_I} cpu float32"
SENS_FLOPS = harness.sensitivity_flops(SZ.sens_P, SZ.sens_K, SZ.sens_J, SZ.sens_I)


@pytest.fixture(scope="module")
def sens_data():
    args = harness.sensitivity_inputs(SZ.sens_P, SZ.sens_K, SZ.sens_J, SZ.sens_I, DEV)
    return args, ops.sensitivity(*args, norm="l1")


def _gflops(benchmark):
    if _best(benchmark):
        benchmark.extra_info["gflops"] = SENS_FLOPS / _best(benchmark) / 1e9


def test_sensitivity_mpts_fast(benchmark, sens_data):
    args, _ = sens_data
    _bench(benchmark, lambda: ops.sensitivity(*args, norm="l1"), SLOW_ROUNDS, SENS_GROUP, floor_flops=SENS_FLOPS)
    _gflops(benchmark)


def test_sensitivity_plain_einsum_chunked(benchmark, sens_data):
    args, ref = sens_data
    out = _bench(
        benchmark, lambda: baselines.sensitivity_einsum_chunked(*args, chunk=SZ.sens_chunk), SLOW_ROUNDS, SENS_GROUP
    )
    _gflops(benchmark)
    torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-6)


def test_sensitivity_torch_mm_same_gemm(benchmark, sens_data):
    """Not a plain version: the bare (P K x J) @ (J x I) GEMM, the yardstick for ours."""
    args, _ = sens_data
    V = args[1]
    A = torch.randn(SZ.sens_chunk * SZ.sens_K, SZ.sens_J)
    _bench(
        benchmark,
        lambda: baselines.gemm_same_shape_chunked(A, V, SZ.sens_P, SZ.sens_K, SZ.sens_chunk),
        SLOW_ROUNDS,
        SENS_GROUP,
        what="torch.mm only, same GEMM shape, chunked",
    )
    _gflops(benchmark)


JAC_GROUP = f"sensitivity per-pattern cost: P={SZ.sens_jac_P} (autograd Jacobian vs ours) cpu float32"


@pytest.mark.parametrize("impl", ["mpts_fast", "plain_autograd_jacobian"])
def test_sensitivity_small_P(benchmark, sens_data, impl):
    args, ref = sens_data
    P = SZ.sens_jac_P
    sub = (args[0][:P].contiguous(), *args[1:])
    fn = (lambda: ops.sensitivity(*sub, norm="l1")) if impl == "mpts_fast" else (
        lambda: baselines.sensitivity_autograd_jacobian(*sub)
    )
    out = _bench(benchmark, fn, FAST_ROUNDS, JAC_GROUP, measured_P=P)
    if _best(benchmark):
        benchmark.extra_info["per_pattern_ms"] = _best(benchmark) / P * 1e3
        benchmark.extra_info[f"extrapolated_s_for_P={SZ.sens_P}"] = _best(benchmark) * SZ.sens_P / P
    torch.testing.assert_close(out, ref[:P], rtol=1e-3, atol=1e-6)
