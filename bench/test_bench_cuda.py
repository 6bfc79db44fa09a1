"""CUDA float32 benchmarks at the floors-table sizes; skipped without a GPU (or without
mpts_fast's CUDA kernels, where the op would only run its reference).

    pytest bench/test_bench_cuda.py --benchmark-only
    MPTS_BENCH_QUICK=1 pytest bench/test_bench_cuda.py --benchmark-only

Every benchmarked call ends with torch.cuda.synchronize(), so pytest-benchmark's wall-clock
timer sees the whole GPU work (bench/run.py --device cuda times with CUDA events instead).

Sizes: rbf_mmd2 n = m = 65536, d = 512 for ours, plus a comparison group at n = m = 16384, the
size the plain versions fit in GPU memory at (they hold several (n+m)^2 or n^2 float32 matrices
for autograd); snapshot S = 10, N = 1e6, C = 10; sensitivity P = 60000, K = 10, J = 512, I = 785.
A plain version that runs out of memory is skipped.

Precision: every case runs FP32 matmuls. Our ops force full FP32 inside (TF32 would cost about
three digits of ||a||^2 + ||b||^2 - 2 a.b; tests/test_cuda_bindings.py checks that the global
TF32 switches are ignored), so TF32 is switched off for the plain versions too: a TF32 plain
version would be faster for a precision we do not offer.
"""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("pytest_benchmark")

import baselines  # noqa: E402
import harness  # noqa: E402
from mpts_fast import _native, ops  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif("cuda" not in _native.native_devices(), reason="mpts_fast was built without CUDA kernels"),
]

QUICK = harness.quick_from_env()
SZ = harness.sizes_for("cuda", QUICK)
DEV = "cuda"
ROUNDS = 5
SLOW_ROUNDS = 3


@pytest.fixture(autouse=True)
def fp32_matmul():
    """Every case with TF32 off (see the module docstring), restored afterwards."""
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = prev


def _synced(fn):
    def run():
        out = fn()
        torch.cuda.synchronize()
        return out

    return run


def _bench(benchmark, fn, rounds, group, **extra):
    benchmark.group = group
    benchmark.extra_info.update(extra)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    try:
        out = benchmark.pedantic(_synced(fn), rounds=rounds, iterations=1, warmup_rounds=1)
    except harness.OOM_ERRORS as exc:
        torch.cuda.empty_cache()
        pytest.skip(f"out of GPU memory: {str(exc).splitlines()[0]}")
    benchmark.extra_info["peak_extra_mb"] = (torch.cuda.max_memory_allocated() - base) / 1e6
    return out


def _best(benchmark):
    stats = getattr(benchmark, "stats", None)
    return stats.stats.min if stats is not None else None


def _rate(benchmark, amount, key):
    if _best(benchmark):
        benchmark.extra_info[key] = amount / _best(benchmark) / 1e9


@pytest.fixture(autouse=True)
def _free_gpu():
    yield
    torch.cuda.empty_cache()


# ----------------------------------------------------------------------------- rbf_mmd2

MMD_IMPLS = {
    "mpts_fast": ops.rbf_mmd2,
    "plain_three_blocks": baselines.mmd2_three_blocks,
    "plain_concat_cdist": baselines.mmd2_concat_cdist,
}


@pytest.fixture(scope="module")
def mmd_small():
    x, y = harness.mmd_inputs(SZ.mmd_n, SZ.mmd_n, SZ.mmd_d, DEV)
    with torch.no_grad():
        ref = ops.rbf_mmd2(x, y)  # FP32 whatever the TF32 switches say
    return x, y, ref


@pytest.mark.parametrize("impl", list(MMD_IMPLS))
def test_rbf_mmd2_comparison_size(benchmark, mmd_small, impl):
    x, y, ref = mmd_small
    n, d = SZ.mmd_n, SZ.mmd_d
    flops = harness.mmd_flops(n, n, d)
    rounds = ROUNDS if impl == "mpts_fast" else SLOW_ROUNDS
    group = f"rbf_mmd2 fwd+bwd n=m={n} d={d} cuda (comparison size: the plain versions fit here)"
    value = _bench(benchmark, harness.mmd_fwd_bwd(MMD_IMPLS[impl], x, y), rounds, group, floor_flops=flops)
    _rate(benchmark, flops, "gflops")
    benchmark.extra_info["value"] = float(value)
    benchmark.extra_info["rel_diff_vs_ours"] = float((value - ref).abs() / ref.abs())
    torch.testing.assert_close(value, ref, rtol=2e-3, atol=1e-6)


@pytest.fixture(scope="module")
def mmd_large():
    return harness.mmd_inputs(SZ.mmd_big_n, SZ.mmd_big_n, SZ.mmd_d, DEV)


def test_rbf_mmd2_floors_size(benchmark, mmd_large):
    x, y = mmd_large
    n, d = SZ.mmd_big_n, SZ.mmd_d
    flops = harness.mmd_flops(n, n, d)
    group = f"rbf_mmd2 fwd+bwd n=m={n} d={d} cuda (ours only)"
    value = _bench(benchmark, harness.mmd_fwd_bwd(ops.rbf_mmd2, x, y), SLOW_ROUNDS, group, floor_flops=flops)
    _rate(benchmark, flops, "gflops")
    benchmark.extra_info["value"] = float(value)
    assert torch.isfinite(value)


# ------------------------------------------------------------------- snapshot scores

SNAP_GROUP = f"snapshot_uncertainty S={SZ.snap_S} N={SZ.snap_N} C={SZ.snap_C} cuda float32"
SNAP_BYTES = harness.snapshot_bytes(SZ.snap_S, SZ.snap_N, SZ.snap_C)


@pytest.fixture(scope="module")
def snap_data():
    logits = harness.snapshot_inputs(SZ.snap_S, SZ.snap_N, SZ.snap_C, DEV)
    return logits, ops.snapshot_uncertainty(logits)


def test_snapshot_mpts_fast_all_five(benchmark, snap_data):
    logits, _ = snap_data
    _bench(benchmark, lambda: ops.snapshot_uncertainty(logits), ROUNDS, SNAP_GROUP, floor_bytes=SNAP_BYTES)
    _rate(benchmark, SNAP_BYTES, "gbs")


def test_snapshot_plain_five_scores(benchmark, snap_data):
    logits, ref = snap_data
    out = _bench(benchmark, lambda: baselines.snapshot_scores_plain(logits), ROUNDS, SNAP_GROUP)
    _rate(benchmark, SNAP_BYTES, "gbs")
    for name, got, want in zip(ref._fields, out, ref):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4, msg=name)


def test_snapshot_plain_entropy_only(benchmark, snap_data):
    logits, ref = snap_data
    out = _bench(benchmark, lambda: baselines.snapshot_entropy_plain(logits), ROUNDS, SNAP_GROUP)
    _rate(benchmark, SNAP_BYTES, "gbs")
    torch.testing.assert_close(out, ref.entropy, rtol=1e-3, atol=1e-4)


# ------------------------------------------------------------------------ sensitivity

SENS_GROUP = f"sensitivity l1 P={SZ.sens_P} K={SZ.sens_K} J={SZ.sens_J} I={SZ.sens_I} cuda float32"
SENS_FLOPS = harness.sensitivity_flops(SZ.sens_P, SZ.sens_K, SZ.sens_J, SZ.sens_I)


@pytest.fixture(scope="module")
def sens_data():
    args = harness.sensitivity_inputs(SZ.sens_P, SZ.sens_K, SZ.sens_J, SZ.sens_I, DEV)
    return args, ops.sensitivity(*args, norm="l1")  # FP32 whatever the TF32 switches say


def test_sensitivity_mpts_fast(benchmark, sens_data):
    args, _ = sens_data
    _bench(benchmark, lambda: ops.sensitivity(*args, norm="l1"), ROUNDS, SENS_GROUP, floor_flops=SENS_FLOPS)
    _rate(benchmark, SENS_FLOPS, "gflops")


def test_sensitivity_plain_einsum_chunked(benchmark, sens_data):
    args, ref = sens_data
    out = _bench(benchmark, lambda: baselines.sensitivity_einsum_chunked(*args, chunk=SZ.sens_chunk), ROUNDS, SENS_GROUP)
    _rate(benchmark, SENS_FLOPS, "gflops")
    torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-6)


def test_sensitivity_torch_mm_same_gemm(benchmark, sens_data):
    """Not a plain version: the bare (P K x J) @ (J x I) GEMM, the yardstick for ours."""
    args, _ = sens_data
    A = torch.randn(SZ.sens_chunk * SZ.sens_K, SZ.sens_J, device=DEV)
    fn = lambda: baselines.gemm_same_shape_chunked(A, args[1], SZ.sens_P, SZ.sens_K, SZ.sens_chunk)  # noqa: E731
    _bench(benchmark, fn, ROUNDS, SENS_GROUP, what="torch.mm only, same GEMM shape, chunked")
    _rate(benchmark, SENS_FLOPS, "gflops")


JAC_GROUP = f"sensitivity per-pattern cost: P={SZ.sens_jac_P} (autograd Jacobian vs ours) cuda float32"


@pytest.mark.parametrize("impl", ["mpts_fast", "plain_autograd_jacobian"])
def test_sensitivity_small_P(benchmark, sens_data, impl):
    args, ref = sens_data
    P = SZ.sens_jac_P
    sub = (args[0][:P].contiguous(), *args[1:])
    if impl == "mpts_fast":
        fn = lambda: ops.sensitivity(*sub, norm="l1")  # noqa: E731
    else:
        fn = lambda: baselines.sensitivity_autograd_jacobian(*sub)  # noqa: E731
    out = _bench(benchmark, fn, SLOW_ROUNDS, JAC_GROUP, measured_P=P)
    if _best(benchmark):
        benchmark.extra_info["per_pattern_ms"] = _best(benchmark) / P * 1e3
        benchmark.extra_info[f"extrapolated_s_for_P={SZ.sens_P}"] = _best(benchmark) * SZ.sens_P / P
    torch.testing.assert_close(out, ref[:P], rtol=1e-3, atol=1e-6)
