"""The PyTorch bindings' own contracts (docs/cuda.md), and the small CUDA
workload that `make gpu-check` runs under compute-sanitizer (scripts/gpu_check.sh).

- Finding 2: the Gram / sensitivity GEMMs run in full FP32 even with TF32 switched on
  globally (torch.set_float32_matmul_precision("high"), allow_tf32, cuBLASLt preferred), and
  the user's switches are left as they were.
- Finding 4: SnapshotAccumulator.update converts float64 logits for a float32 state on CUDA
  as it does on the CPU (the conversion rule, _accumulate_logits_dtype, is tested on the CPU).
- Finding 5: the snapshot state (mean, m2, ent_sum) must sit on one device; the error names
  the argument.
- Finding 6: the CUDA select binding refuses k beyond the pickable rows and an unpickable
  `first`, through the same check (checks.h, check_select_pickable) the CPU binding uses, so
  the CPU cases below exercise that code here.

Every test is small (seconds on a CPU, a few seconds under compute-sanitizer on a GPU); the
cuda cases SKIP cleanly without a GPU and a CUDA build.
"""
from __future__ import annotations

import pytest
import torch

from mpts_fast import ops
from mpts_fast.ops import SnapshotAccumulator
from mpts_testutil import DEVICES, F64, SCORE_FIELDS, cuda_native, oracle_mmd2, oracle_sensitivity, oracle_snapshot, randn, requires_cuda

CUDA_ONLY = [d for d in DEVICES if d.id == "cuda"]
OPS = torch.ops.mpts_fast


@pytest.fixture(autouse=True)
def _needs_native():
    if not ops._native.native_devices():
        pytest.skip("mpts_fast._C is not built")


# ----------------------------------------------------------------- finding 6: select checks


def _select_call(op: str, device: str, gen, mind: torch.Tensor, first: int, k: int) -> torch.Tensor:
    """Call one native selection op on 7 rows with the given mind state."""
    n = mind.shape[0]
    u = torch.rand(max(k, 1), generator=gen, dtype=F64).to(device)
    if op == "kcenter":
        return OPS.select_kcenter(randn(gen, n, 3, device=device), mind, first, k)
    if op == "kmeanspp":
        return OPS.select_kmeanspp(randn(gen, n, 3, device=device), mind, first, k, u)
    q, h = randn(gen, n, 4, device=device), randn(gen, n, 5, device=device)
    a = OPS.select_badge_sqnorms(q, h)
    return OPS.select_badge_kmeanspp(q, h, a, mind, first, k, u)


SELECT_OPS = ["kcenter", "kmeanspp", "badge"]
# rows 1, 4 and 5 are labeled or excluded (mind < 0): 4 pickable rows
MIND = [1.0, -1.0, 2.0, 0.5, -1.0, -2.0, float("inf")]


@pytest.mark.parametrize("op", SELECT_OPS)
def test_select_refuses_k_beyond_the_pickable_rows(device, op, gen):
    mind = torch.tensor(MIND, device=device)
    with pytest.raises(ValueError, match="k = 5 exceeds the 4 rows that can be picked"):
        _select_call(op, device, gen, mind, -1, 5)


@pytest.mark.parametrize("first", [1, 4, 5])
@pytest.mark.parametrize("op", SELECT_OPS)
def test_select_refuses_an_unpickable_first(device, op, first, gen):
    mind = torch.tensor(MIND, device=device)
    with pytest.raises(ValueError, match=rf"first must be a pickable row .*got first = {first}"):
        _select_call(op, device, gen, mind, first, 1)
    assert torch.equal(mind.cpu(), torch.tensor(MIND))  # untouched on refusal


@pytest.mark.parametrize("op", SELECT_OPS)
def test_select_refuses_nan_in_mind(device, op, gen):
    mind = torch.tensor(MIND, device=device)
    mind[3] = float("nan")
    with pytest.raises(ValueError, match=r"mind must not contain NaN \(found 1\)"):
        _select_call(op, device, gen, mind, -1, 1)


@pytest.mark.parametrize("op", SELECT_OPS)
def test_select_takes_every_pickable_row(device, op, gen):
    # k = the number of pickable rows: all of them, each once, none labeled, no -1.
    mind = torch.tensor(MIND, device=device)
    picks = _select_call(op, device, gen, mind, 2, 4).cpu()
    assert picks[0] == 2
    assert sorted(picks.tolist()) == [0, 2, 3, 6]


# ----------------------------------------------------------- finding 5: snapshot state checks


def _state(device, n=6, c=3, dtype=torch.float32):
    return torch.zeros(n, c, device=device, dtype=dtype), torch.zeros(n, c, device=device, dtype=dtype), torch.zeros(n, device=device, dtype=dtype)


@pytest.mark.parametrize("which", ["finalize", "accumulate"])
def test_snapshot_state_shape_errors_name_the_argument(device, which):
    mean, m2, ent = _state(device)

    def call(mean, m2, ent):
        if which == "finalize":
            return OPS.snapshot_finalize(mean, m2, ent, 1)
        return OPS.snapshot_accumulate(mean, m2, ent, torch.zeros_like(mean), 0)

    with pytest.raises(ValueError, match=r"m2 must have the shape of mean"):
        call(mean, m2[:, :2], ent)
    with pytest.raises(ValueError, match=r"ent_sum must have shape \(6,\)"):
        call(mean, m2, ent[:5])
    with pytest.raises(ValueError, match="must be contiguous"):
        call(mean, torch.zeros(3, 6, device=device).T, ent)


@pytest.mark.parametrize("device", CUDA_ONLY)
@pytest.mark.parametrize("which", ["finalize", "accumulate"])
def test_cuda_snapshot_state_on_another_device_is_refused(device, which):
    def call(mean, m2, ent):
        if which == "finalize":
            return OPS.snapshot_finalize(mean, m2, ent, 1)
        return OPS.snapshot_accumulate(mean, m2, ent, torch.zeros_like(mean), 0)

    mean, m2, ent = _state("cuda")
    with pytest.raises(ValueError, match=r"m2 must be on the device of mean \(cuda:0\), got cpu"):
        call(mean, m2.cpu(), ent)
    with pytest.raises(ValueError, match=r"ent_sum must be on the device of mean \(cuda:0\), got cpu"):
        call(mean, m2, ent.cpu())
    # a CPU mean with CUDA m2 / ent_sum dispatches to the CUDA kernel: refused there too
    with pytest.raises(ValueError, match=r"m2 must be on the device of mean \(cpu\), got cuda:0"):
        call(mean.cpu(), m2, ent)


@pytest.mark.parametrize("device", CUDA_ONLY)
def test_cuda_accumulate_refuses_logits_on_another_device(device):
    mean, m2, ent = _state("cuda")
    with pytest.raises(ValueError, match=r"logits must be on the device of mean \(cuda:0\), got cpu"):
        OPS.snapshot_accumulate(mean, m2, ent, torch.zeros(6, 3), 0)


# ------------------------------------------------------ finding 4: accumulator logits dtype


@pytest.mark.parametrize(
    "device,logits,state,expect",
    [
        ("cpu", torch.float64, torch.float32, torch.float32),
        ("cpu", torch.float16, torch.float32, torch.float32),
        ("cpu", torch.float32, torch.float64, torch.float64),
        ("cuda", torch.float64, torch.float32, torch.float32),  # the bug: was passed on as float64
        ("cuda", torch.float32, torch.float32, torch.float32),
        ("cuda", torch.float16, torch.float32, torch.float16),  # read as stored by the kernel
        ("cuda", torch.bfloat16, torch.float32, torch.bfloat16),
        ("cuda", torch.float64, torch.float64, torch.float64),
    ],
)
def test_accumulate_logits_dtype_rule(device, logits, state, expect):
    assert ops._accumulate_logits_dtype(logits, state, torch.device(device)) == expect


@pytest.mark.parametrize("logits_dtype", [F64, torch.float16])
def test_float32_accumulator_takes_other_logit_dtypes(device, logits_dtype, gen):
    l64 = randn(gen, 3, 70, 10, scale=2.0, dtype=F64)
    logits = l64.to(logits_dtype)
    acc = SnapshotAccumulator(70, 10, device=device)  # float32 state
    for s in range(3):
        acc.update(logits[s].to(device))
    want = SnapshotAccumulator(70, 10, device=device).update(logits.float().to(device)).scores()
    oracle = oracle_snapshot(logits.float())
    # the same float32 values reach the kernel (the CUDA kernel reads float16 as stored: its
    # load path may order the arithmetic differently)
    same = dict(rtol=0, atol=0) if device == "cpu" or logits_dtype == F64 else dict(rtol=1e-6, atol=1e-7)
    for f, got, w in zip(SCORE_FIELDS, acc.scores(), want):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, w, **same, msg=f)
        torch.testing.assert_close(got.cpu().double(), oracle[f], rtol=1e-5, atol=1e-6, msg=f)


@pytest.mark.parametrize("device", CUDA_ONLY)
def test_accumulator_made_with_device_cuda_takes_cuda0_logits(device, gen):
    # torch.device("cuda") != torch.device("cuda:0"): the accumulator keeps its state's device.
    acc = SnapshotAccumulator(5, 4, device="cuda")
    assert acc.device == torch.device("cuda", torch.cuda.current_device())
    acc.update(randn(gen, 5, 4, device="cuda"))
    assert acc.scores().entropy.device == acc.device


# ---------------------------------------------------------------- finding 2: FP32, not TF32


@pytest.fixture
def tf32_on():
    """TF32 switched on globally the way users do it; the switches are restored afterwards."""
    prev = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(prev)


def _matmul_switches() -> tuple:
    return torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32, torch.backends.cuda.preferred_blas_library()


def _skip_unless_tf32_changes_a_matmul(gen) -> None:
    # Control: on a GPU without TF32 (before Ampere) the tests below would prove nothing.
    a, b = randn(gen, 256, 1024, device="cuda"), randn(gen, 1024, 256, device="cuda")
    exact = a.double() @ b.double()
    rel = float(((a @ b).double() - exact).abs().max() / exact.abs().max())
    if rel < 1e-5:
        pytest.skip(f"this GPU runs float32 matmuls in full FP32 even with TF32 on (error {rel:.1e})")


@pytest.fixture(params=["default", "cublaslt"])
def blas(request):
    """Run once with the default BLAS and once with cuBLASLt preferred (its path ignores
    at::NoTF32Guard; the binding routes its GEMMs to cuBLAS meanwhile)."""
    prev = torch.backends.cuda.preferred_blas_library()
    if request.param == "cublaslt":
        try:
            torch.backends.cuda.preferred_blas_library("cublaslt")
        except RuntimeError as exc:
            pytest.skip(f"cuBLASLt cannot be preferred here: {exc}")
    try:
        yield request.param
    finally:
        torch.backends.cuda.preferred_blas_library(prev)


@pytest.mark.parametrize("device", CUDA_ONLY)
def test_cuda_rbf_mmd2_ignores_tf32(device, tf32_on, blas, gen):
    _skip_unless_tf32_changes_a_matmul(gen)
    # A common offset of 20 makes |a|^2 + |b|^2 - 2 a.b cancel: TF32 a.b (10-bit mantissa) gives
    # a relative MMD^2 error of ~5e-4 here (emulated on the CPU), FP32 ~1e-6.
    x = randn(gen, 512, 32, device=device, shift=20.0)
    y = randn(gen, 549, 32, device=device, shift=20.5)
    sigmas = [4.0]
    before = _matmul_switches()
    xr, yr = x.clone().requires_grad_(), y.clone().requires_grad_()
    value = ops.rbf_mmd2(xr, yr, sigmas)
    gx, gy = torch.autograd.grad(value, (xr, yr))
    assert _matmul_switches() == before
    x64, y64 = x.double().cpu().requires_grad_(), y.double().cpu().requires_grad_()
    ref = oracle_mmd2(x64, y64, sigmas)
    rx, ry = torch.autograd.grad(ref, (x64, y64))
    value, ref = float(value.detach()), float(ref.detach())
    # the CPU kernel (same algorithm, FP32 MKL GEMMs) gives <= 4e-6 and 7e-5 on these inputs
    assert abs(value - ref) <= 5e-5 * abs(ref), (value, ref)
    g, r = torch.cat([gx, gy]).cpu().double(), torch.cat([rx, ry])
    assert float((g - r).abs().max()) <= 1e-3 * float(r.abs().max())


@pytest.mark.parametrize("device", CUDA_ONLY)
@pytest.mark.parametrize("norm", ["l1", "inf"])
def test_cuda_sensitivity_ignores_tf32(device, norm, tf32_on, blas, gen):
    _skip_unless_tf32_changes_a_matmul(gen)
    # Both GEMMs (x V^T and the (P K, J) x (J, I) one): TF32 gives ~5e-4 relative error in phi
    # at these sizes (emulated on the CPU), FP32 ~1e-6.
    net = (
        randn(gen, 300, 200, device=device),
        randn(gen, 256, 200, device=device, scale=0.1),
        randn(gen, 256, device=device),
        randn(gen, 10, 256, device=device, scale=0.3),
        randn(gen, 10, device=device),
    )
    before = _matmul_switches()
    phi = ops.sensitivity(*net, norm=norm)
    assert _matmul_switches() == before
    ref = oracle_sensitivity(*net, norm=norm)
    rel = float(((phi.cpu().double() - ref).abs() / ref.abs()).max())
    assert rel <= 3e-5, rel


def test_cpu_ops_leave_the_matmul_switches_alone(tf32_on, gen):
    before = torch.get_float32_matmul_precision()
    x, y = randn(gen, 40, 5), randn(gen, 30, 5)
    ops.rbf_mmd2(x, y, [1.0])
    ops.sensitivity(x, randn(gen, 4, 5), randn(gen, 4), randn(gen, 3, 4), randn(gen, 3))
    assert torch.get_float32_matmul_precision() == before == "high"


# ------------------------------------------------------ the compute-sanitizer workload
#
# One call of every CUDA kernel at sizes that cross its block / tile boundaries (several blocks,
# two MMD tiles of 4096 rows, two sensitivity chunks of 1024 patterns, every snapshot class
# team size), checked against the CPU kernels. Small enough for memcheck / racecheck /
# synccheck (10-100x slower than a plain run).


@requires_cuda
def test_cuda_workload_rbf_mmd2(gen):
    x, y = randn(gen, 2100, 17), randn(gen, 2050, 17, shift=0.2)
    for est in ("biased", "unbiased"):
        xr, yr = x.cuda().requires_grad_(), y.cuda().requires_grad_()
        v = ops.rbf_mmd2(xr, yr, [2.0, 5.0], estimator=est)
        gx, gy = torch.autograd.grad(v, (xr, yr))
        xc, yc = x.clone().requires_grad_(), y.clone().requires_grad_()
        w = ops.rbf_mmd2(xc, yc, [2.0, 5.0], estimator=est)
        cx, cy = torch.autograd.grad(w, (xc, yc))
        torch.testing.assert_close(v.cpu(), w, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(torch.cat([gx, gy]).cpu(), torch.cat([cx, cy]), rtol=1e-3, atol=1e-6)


@requires_cuda
@pytest.mark.parametrize("C", [3, 10, 100, 1000])
def test_cuda_workload_snapshot(C, gen):
    l = randn(gen, 3, 600, C, scale=2.0)
    got = ops.snapshot_uncertainty(l.cuda())
    acc = SnapshotAccumulator(600, C, device="cuda")
    for s in range(3):
        acc.update(l[s].cuda())
    want = ops.snapshot_uncertainty(l)
    for f, a, b, w in zip(SCORE_FIELDS, got, acc.scores(), want):
        torch.testing.assert_close(a.cpu(), w, rtol=1e-4, atol=1e-5, msg=f)
        torch.testing.assert_close(b.cpu(), w, rtol=1e-4, atol=1e-5, msg=f)


@requires_cuda
@pytest.mark.parametrize("norm", ["l1", "l2", "inf"])
def test_cuda_workload_sensitivity(norm, gen):
    net = (randn(gen, 1100, 30), randn(gen, 40, 30, scale=0.3), randn(gen, 40), randn(gen, 7, 40, scale=0.3), randn(gen, 7))
    got = ops.sensitivity(*(t.cuda() for t in net), norm=norm)
    torch.testing.assert_close(got.cpu(), ops.sensitivity(*net, norm=norm), rtol=1e-4, atol=1e-7)


@requires_cuda
def test_cuda_workload_selection(gen):
    x = randn(gen, 5000, 24)
    lab = torch.arange(0, 5000, 37)
    for dtype in (torch.float32, torch.float16):
        picks = ops.kcenter_greedy(x.to(dtype).cuda(), 8, labeled=lab).cpu()
        assert len(set(picks.tolist())) == 8 and not set(picks.tolist()) & set(lab.tolist())
    p = ops.kmeanspp(x.cuda(), 8, generator=torch.Generator().manual_seed(3), labeled=lab).cpu()
    assert len(set(p.tolist())) == 8 and not set(p.tolist()) & set(lab.tolist())
    probs = torch.softmax(randn(gen, 5000, 10), -1)
    b = ops.badge_select(probs.cuda(), x.cuda(), 8, generator=torch.Generator().manual_seed(4)).cpu()
    assert len(set(b.tolist())) == 8
    assert cuda_native()
