"""Backend selection (MPTS_FAST_BACKEND, read on every call), native/reference agreement, the
fallback without mpts_fast._C, and torch.library.opcheck on every registered op."""
from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch
from torch.library import opcheck

from mpts_fast import _native, ops, reference
from mpts_fast.ops import SnapshotAccumulator
from mpts_testutil import F64, SCORE_FIELDS, cuda_native, randn, requires_cuda

NATIVE_OPS = ("rbf_mmd2", "snapshot_scores", "snapshot_accumulate", "snapshot_finalize", "sensitivity")


def _spy(monkeypatch, obj, name):
    """Counts calls of obj.name (restored after the test)."""
    calls = []
    orig = getattr(obj, name)

    def wrapper(*args, **kwargs):
        calls.append(name)
        return orig(*args, **kwargs)

    monkeypatch.setattr(obj, name, wrapper)
    return calls


@pytest.fixture
def spies(monkeypatch):
    """Call counters on every native op (torch.ops.mpts_fast.*) and every reference entry point
    mpts_fast.ops falls back to."""
    native = {name: _spy(monkeypatch, torch.ops.mpts_fast, name) for name in NATIVE_OPS}
    ref = {name: _spy(monkeypatch, reference, name) for name in ("rbf_mmd2", "snapshot_uncertainty", "sensitivity")}
    ref["accumulate"] = _spy(monkeypatch, reference.SnapshotMoments, "update")
    ref["finalize"] = _spy(monkeypatch, reference.SnapshotMoments, "scores")

    class Spies:
        def native_calls(self):
            return sum(len(c) for c in native.values())

        def reference_calls(self):
            return sum(len(c) for c in ref.values())

        def reset(self):
            for c in list(native.values()) + list(ref.values()):
                c.clear()

    return Spies()


def _run_all_ops(device, dtype, gen):
    """One call of every public op on fixed-seed data; returns the outputs in a flat dict."""
    out = {}
    x = randn(gen, 600, 4, dtype=dtype, device=device)
    y = randn(gen, 425, 4, dtype=dtype, device=device, shift=0.3)  # n + m = 1025: two tiles
    for est in ("biased", "unbiased"):
        for sig in (None, [0.6, 1.9]):
            xr, yr = x.clone().requires_grad_(), y.clone().requires_grad_()
            v = ops.rbf_mmd2(xr, yr, sig, estimator=est)
            gx, gy = torch.autograd.grad(v, (xr, yr))
            key = f"mmd-{est}-{'default' if sig is None else 'explicit'}"
            out[key] = v.detach()
            out[key + "-grad"] = torch.cat([gx, gy])
    l = randn(gen, 3, 65, 10, scale=2.0, dtype=dtype, device=device)
    for f, t in zip(SCORE_FIELDS, ops.snapshot_uncertainty(l)):
        out[f"snap-{f}"] = t
    acc = SnapshotAccumulator(65, 10, device=device, dtype=dtype)
    for s in range(3):
        acc.update(l[s])
    for f, t in zip(SCORE_FIELDS, acc.scores()):
        out[f"acc-{f}"] = t
    net = (
        randn(gen, 65, 7, dtype=dtype, device=device),
        randn(gen, 5, 7, dtype=dtype, device=device, scale=0.4),
        randn(gen, 5, dtype=dtype, device=device),
        randn(gen, 3, 5, dtype=dtype, device=device, scale=0.4),
        randn(gen, 3, dtype=dtype, device=device),
    )
    for norm in ("l1", "l2", "inf"):
        for output in ("sigmoid", "linear"):
            out[f"sens-{norm}-{output}"] = ops.sensitivity(*net, norm=norm, output=output)
    return out


def _compare(a: dict, b: dict, dtype):
    assert a.keys() == b.keys()
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == F64 else dict(rtol=2e-5, atol=2e-6)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        torch.testing.assert_close(a[k], b[k], **tol, msg=lambda m: f"{k}: {m}")


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_reference_backend_matches_native(device, dtype, set_backend, spies, gen):
    state = gen.get_state()
    native = _run_all_ops(device, dtype, gen)
    if not (device == "cuda" and dtype == F64):  # float64 on CUDA runs the reference by design
        assert spies.native_calls() > 0
    spies.reset()
    set_backend("reference")
    gen.set_state(state)
    ref = _run_all_ops(device, dtype, gen)
    assert spies.native_calls() == 0, "MPTS_FAST_BACKEND=reference must not reach torch.ops.mpts_fast"
    assert spies.reference_calls() > 0
    _compare(native, ref, dtype)


def test_forced_native_backend(device, set_backend, spies, gen):
    state = gen.get_state()
    auto = _run_all_ops(device, torch.float32, gen)
    spies.reset()
    set_backend("native")
    gen.set_state(state)
    forced = _run_all_ops(device, torch.float32, gen)
    assert spies.native_calls() > 0 and spies.reference_calls() == 0
    _compare(auto, forced, torch.float32)


def test_backend_read_on_every_call(set_backend, spies, gen):
    x, y = randn(gen, 20, 3), randn(gen, 15, 3)
    for setting, native_expected in [("native", True), ("reference", False), ("auto", True), ("reference", False)]:
        set_backend(setting)
        spies.reset()
        ops.rbf_mmd2(x, y, 1.0)
        assert (spies.native_calls() > 0) is native_expected, setting
        assert (spies.reference_calls() > 0) is not native_expected, setting


@pytest.mark.parametrize("value", [" Reference ", "REFERENCE", "reference\n"])
def test_backend_setting_is_normalised(value, set_backend, spies, gen):
    set_backend(value)
    ops.snapshot_uncertainty(randn(gen, 2, 5, 3))
    assert spies.native_calls() == 0 and spies.reference_calls() > 0


def test_create_graph_depends_on_backend(set_backend, gen):
    # An observable consequence of the per-call switch: the reference path is plain autograd
    # (double backward works), the native op is first-order only.
    x = randn(gen, 6, 3, dtype=F64).requires_grad_()
    y = randn(gen, 5, 3, dtype=F64)
    set_backend("reference")
    (gx,) = torch.autograd.grad(ops.rbf_mmd2(x, y, 1.0), x, create_graph=True)
    assert gx.requires_grad
    set_backend("native")
    with pytest.raises(RuntimeError, match="first-order"):
        torch.autograd.grad(ops.rbf_mmd2(x, y, 1.0), x, create_graph=True)


BOGUS_CALLS = {
    "rbf_mmd2": lambda g: ops.rbf_mmd2(randn(g, 4, 2), randn(g, 3, 2), 1.0),
    "rbf_mmd2-default-sigmas": lambda g: ops.rbf_mmd2(randn(g, 4, 2), randn(g, 3, 2)),
    "snapshot_uncertainty": lambda g: ops.snapshot_uncertainty(randn(g, 2, 4, 3)),
    "accumulator-update": lambda g: SnapshotAccumulator(4, 3).update(randn(g, 4, 3)),
    "sensitivity": lambda g: ops.sensitivity(randn(g, 4, 3), randn(g, 2, 3), randn(g, 2), randn(g, 2, 2), randn(g, 2)),
}


@pytest.mark.parametrize("value", ["bogus", "cuda", ""])
@pytest.mark.parametrize("call", list(BOGUS_CALLS))
def test_bogus_backend_raises(call, value, set_backend, gen):
    set_backend(value)
    with pytest.raises(ValueError, match=r"MPTS_FAST_BACKEND must be auto, native or reference"):
        BOGUS_CALLS[call](gen)


def test_bogus_backend_raises_in_scores(set_backend, gen):
    acc = SnapshotAccumulator(4, 3).update(randn(gen, 4, 3))
    set_backend("bogus")
    with pytest.raises(ValueError, match=r"MPTS_FAST_BACKEND"):
        acc.scores()


def test_device_helpers(devices):
    assert devices[0] == "cpu"
    assert ("cuda" in devices) == (torch.cuda.is_available() and "cuda" in _native.native_devices())
    assert ("cuda" in devices) == cuda_native()


def test_native_devices():
    devs = _native.native_devices()
    assert "cpu" in devs
    assert ("cuda" in devs) == bool(_native._C.cuda_compiled())
    assert _native._C.openmp_threads() >= 0


# --------------------------------------------------------------------------- no _C


@pytest.fixture
def without_native(monkeypatch):
    """Simulates a build without mpts_fast._C (the package must still work, on the reference)."""
    monkeypatch.setattr(_native, "_C", None)
    monkeypatch.setattr(_native, "IMPORT_ERROR", ImportError("simulated: no _C"))
    monkeypatch.setattr(_native, "_warned", set())


def test_fallback_without_native_module(without_native, set_backend, spies, gen):
    assert _native.native_devices() == []
    state = gen.get_state()
    with pytest.warns(RuntimeWarning, match=r"not built.*reference") as record:
        fallback = _run_all_ops("cpu", torch.float32, gen)
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1  # one per reason
    assert spies.native_calls() == 0 and spies.reference_calls() > 0
    set_backend("reference")
    gen.set_state(state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the reference setting never warns
        ref = _run_all_ops("cpu", torch.float32, gen)
    _compare(fallback, ref, torch.float32)


@pytest.mark.parametrize("call", list(BOGUS_CALLS))
def test_forced_native_without_native_module_raises(call, without_native, set_backend, gen):
    set_backend("native")
    with pytest.raises(RuntimeError, match=r"MPTS_FAST_BACKEND=native but mpts_fast._C is not built"):
        BOGUS_CALLS[call](gen)


def test_import_without_optional_dependencies():
    # faiss and openml are optional: blocking them must not break importing or using the ops.
    code = (
        "import sys\n"
        "sys.modules['faiss'] = None\n"
        "sys.modules['openml'] = None\n"
        "import torch, mpts_fast\n"
        "from mpts_fast import ops\n"
        "v = ops.rbf_mmd2(torch.randn(5, 3), torch.randn(4, 3))\n"
        "s = ops.snapshot_uncertainty(torch.randn(2, 3, 4))\n"
        "assert torch.isfinite(v) and s.entropy.shape == (3,)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


# --------------------------------------------------------------------------- opcheck

# Default opcheck sub-tests: test_schema, test_autograd_registration, test_faketensor,
# test_aot_dispatch_dynamic. All four apply to every op except one rbf_mmd2 case (see below).
ALL_OPCHECK = ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")


def _mmd_args(gen, device, dtype, n, m, unbiased, with_grad, requires_grad):
    x = randn(gen, n, 3, dtype=dtype, device=device).requires_grad_(requires_grad)
    y = randn(gen, m, 3, dtype=dtype, device=device).requires_grad_(requires_grad)
    return (x, y, [0.5, 1.0, 2.0], unbiased, with_grad)


@pytest.mark.parametrize("n,m", [(5, 4), (600, 425)])
@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("with_grad,requires_grad", [(True, True), (True, False), (False, False)])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_opcheck_rbf_mmd2(device, dtype, with_grad, requires_grad, unbiased, n, m, gen):
    if device == "cuda" and dtype == F64:
        pytest.skip("float64 on CUDA never reaches the native op (mpts_fast.ops runs the reference)")
    args = _mmd_args(gen, device, dtype, n, m, unbiased, with_grad, requires_grad)
    opcheck(torch.ops.mpts_fast.rbf_mmd2.default, args, test_utils=ALL_OPCHECK)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_opcheck_rbf_mmd2_without_grad_but_requires_grad(device, dtype, gen):
    if device == "cuda" and dtype == F64:
        pytest.skip("float64 on CUDA never reaches the native op")
    # with_grad=False on inputs that require grad is a documented contract: the op returns no
    # gradient, and backward raises "called with with_grad=False". test_aot_dispatch_dynamic
    # runs a backward pass, so it cannot apply; the other three sub-tests do.
    args = _mmd_args(gen, device, dtype, 5, 4, False, False, True)
    opcheck(torch.ops.mpts_fast.rbf_mmd2.default, args, test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
    v, _ = torch.ops.mpts_fast.rbf_mmd2(*args)
    with pytest.raises(RuntimeError, match="with_grad=False"):
        v.backward()


@pytest.mark.parametrize("S,N,C", [(3, 65, 10), (1, 1, 1), (2, 17, 100)])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_opcheck_snapshot_scores(device, dtype, S, N, C, gen):
    if device == "cuda" and dtype == F64:
        pytest.skip("float64 on CUDA never reaches the native op")
    opcheck(torch.ops.mpts_fast.snapshot_scores.default, (randn(gen, S, N, C, dtype=dtype, device=device),), test_utils=ALL_OPCHECK)


def _state(gen, device, dtype, N, C, count):
    acc = SnapshotAccumulator(N, C, device=device, dtype=dtype)
    for _ in range(count):
        acc.update(randn(gen, N, C, dtype=dtype, device=device))
    st = acc._state
    return st.mean, st.m2, st.ent_sum


@pytest.mark.parametrize("count", [0, 2])
@pytest.mark.parametrize("N,C", [(65, 10), (1, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_opcheck_snapshot_accumulate(device, dtype, N, C, count, gen):
    if device == "cuda" and dtype == F64:
        pytest.skip("float64 on CUDA never reaches the native op")
    mean, m2, ent = _state(gen, device, dtype, N, C, count)
    logits = randn(gen, N, C, dtype=dtype, device=device)
    opcheck(torch.ops.mpts_fast.snapshot_accumulate.default, (mean, m2, ent, logits, count), test_utils=ALL_OPCHECK)


@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("N,C", [(65, 10), (1, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_opcheck_snapshot_finalize(device, dtype, N, C, count, gen):
    if device == "cuda" and dtype == F64:
        pytest.skip("float64 on CUDA never reaches the native op")
    mean, m2, ent = _state(gen, device, dtype, N, C, count)
    opcheck(torch.ops.mpts_fast.snapshot_finalize.default, (mean, m2, ent, count), test_utils=ALL_OPCHECK)


@pytest.mark.parametrize("sigmoid_output", [True, False])
@pytest.mark.parametrize("norm", [1, 2, 0], ids=["l1", "l2", "inf"])
@pytest.mark.parametrize("P", [1, 65])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_opcheck_sensitivity(device, dtype, P, norm, sigmoid_output, gen):
    if device == "cuda" and dtype == F64:
        pytest.skip("float64 on CUDA never reaches the native op")
    args = (
        randn(gen, P, 6, dtype=dtype, device=device),
        randn(gen, 4, 6, dtype=dtype, device=device),
        randn(gen, 4, dtype=dtype, device=device),
        randn(gen, 3, 4, dtype=dtype, device=device),
        randn(gen, 3, dtype=dtype, device=device),
    )
    opcheck(torch.ops.mpts_fast.sensitivity.default, args + (norm, sigmoid_output), test_utils=ALL_OPCHECK)


def test_direct_op_argument_checks(gen):
    # The C++ registrations validate direct callers too (TORCH_CHECK_VALUE/TYPE).
    x, y = randn(gen, 5, 3), randn(gen, 4, 3)
    with pytest.raises(ValueError, match=r"scales"):
        torch.ops.mpts_fast.rbf_mmd2(x, y, [], False, False)
    with pytest.raises(ValueError, match=r"scales"):
        torch.ops.mpts_fast.rbf_mmd2(x, y, [-1.0], False, False)
    with pytest.raises(ValueError, match=r"feature dim"):
        torch.ops.mpts_fast.rbf_mmd2(x, y[:, :2], [1.0], False, False)
    with pytest.raises(ValueError, match=r"rows"):
        torch.ops.mpts_fast.rbf_mmd2(x[:1], y, [1.0], True, False)
    with pytest.raises(TypeError, match=r"one dtype"):
        torch.ops.mpts_fast.rbf_mmd2(x, y.double(), [1.0], False, False)
    with pytest.raises(TypeError, match=r"floating"):
        torch.ops.mpts_fast.snapshot_scores(torch.zeros(2, 3, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"3-D"):
        torch.ops.mpts_fast.snapshot_scores(torch.zeros(3, 4))
    mean, m2, ent = torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(4)
    with pytest.raises(ValueError, match=r"no snapshot"):
        torch.ops.mpts_fast.snapshot_finalize(mean, m2, ent, 0)
    with pytest.raises(ValueError, match=r"state shapes"):
        torch.ops.mpts_fast.snapshot_finalize(mean, m2, torch.zeros(5), 1)
    with pytest.raises(ValueError, match=r"contiguous"):
        torch.ops.mpts_fast.snapshot_accumulate(torch.zeros(3, 4).T, m2, ent, torch.zeros(4, 3), 0)
    with pytest.raises(ValueError, match=r"logits must have shape"):
        torch.ops.mpts_fast.snapshot_accumulate(mean, m2, ent, torch.zeros(4, 2), 0)
    net = (randn(gen, 5, 3), randn(gen, 2, 3), randn(gen, 2), randn(gen, 2, 2), randn(gen, 2))
    with pytest.raises(ValueError, match=r"norm code"):
        torch.ops.mpts_fast.sensitivity(*net, 3, True)
    with pytest.raises(ValueError, match=r"shapes disagree"):
        torch.ops.mpts_fast.sensitivity(net[0], net[1], torch.zeros(3), *net[3:], 1, True)


def _meta(*shape, dtype=torch.float32):
    return torch.empty(*shape, dtype=dtype, device="meta")


@pytest.mark.parametrize("op,args,message", [
    ("rbf_mmd2", lambda: (_meta(5, 3), _meta(4, 2), [1.0], False, False), "same number of columns"),
    ("rbf_mmd2", lambda: (_meta(1, 3), _meta(4, 3), [1.0], True, False), "enough rows in x"),
    ("rbf_mmd2", lambda: (_meta(5, 3), _meta(4, 3), [1.0] * 17, False, False), "1 to 16 scales"),
    ("snapshot_scores", lambda: (_meta(3, 4),), r"\(S, N, C\) logits"),
    ("snapshot_accumulate", lambda: (_meta(4, 3), _meta(4, 3), _meta(4), _meta(4, 2), 0), "logits of shape"),
    ("snapshot_finalize", lambda: (_meta(4, 3), _meta(4, 3), _meta(5), 1), r"\(N,\) ent_sum"),
    ("sensitivity", lambda: (_meta(5, 3), _meta(2, 3), _meta(3), _meta(2, 2), _meta(2), 1, True), "b_v of 2"),
    ("select_kcenter", lambda: (_meta(6, 2), _meta(5), -1, 2), r"\(6,\) mind"),
    ("select_kmeanspp", lambda: (_meta(6, 2), _meta(6), -1, 3, _meta(2, dtype=F64)), "at least 3 uniforms"),
])
def test_fakes_check_what_the_kernels_check(op, args, message):
    # The fakes (meta implementations beside each op in mpts_fast/ops/) refuse the shapes the C++
    # registrations refuse, so meta tensors and torch.compile traces fail where a real call would.
    if _native._C is None:
        pytest.skip("no compiled kernels, so no fakes are registered")
    with pytest.raises(RuntimeError, match=message):
        getattr(torch.ops.mpts_fast, op)(*args())


# --------------------------------------------------------------------------- CUDA


@requires_cuda
def test_cuda_matches_cpu_all_ops(gen):
    state = gen.get_state()
    cpu = _run_all_ops("cpu", torch.float32, gen)
    gen.set_state(state)
    gpu = _run_all_ops("cuda", torch.float32, gen)
    for k in cpu:
        assert gpu[k].device.type == "cuda", k
        torch.testing.assert_close(gpu[k].cpu(), cpu[k], rtol=1e-4, atol=1e-5, msg=lambda m: f"{k}: {m}")
