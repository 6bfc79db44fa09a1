"""scripts/gpu_check.py: the plan fits the GPU machine's call, the CPU rehearsal fails on the faults
that would waste that call (a test module that needs a package the machine lacks, a stage command
with a wrong path, a package that imports only thanks to an install), and the verdicts read the
tools' output right. The full rehearsal itself runs in `make test`."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gpu_check = _load("gpu_check_under_test", ROOT / "scripts" / "gpu_check.py")


def _rehearse(tree: Path, out: Path, only: str) -> tuple[int, dict, str]:
    res = subprocess.run([sys.executable, str(tree / "scripts" / "gpu_check.py"), "--rehearse", "--only", only,
                          "--out", str(out)], capture_output=True, text=True, timeout=600)
    doc = json.loads((out / "gpu-check.json").read_text())
    return res.returncode, {s["name"]: s for s in doc["stages"]}, res.stdout + res.stderr


def _small_copy(tmp_path: Path) -> Path:
    """The tree as the rehearsal copies it, with one small test module left (collection is the point)."""
    tree = tmp_path / "tree"
    gpu_check.copy_tree(str(ROOT), str(tree))
    for module in (tree / "tests").glob("test_*.py"):
        if module.name != "test_autocast.py":
            module.unlink()
    return tree


def test_dry_run_lists_the_stages_by_value_within_the_budget():
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--dry-run"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    names = [line.split()[1] for line in res.stdout.splitlines() if line[:1].isdigit()]
    assert names == ["build", "correctness", "e2e", "bench", "memcheck", "racecheck", "synccheck"]
    ctx = gpu_check.Context(root=str(ROOT), py=sys.executable, out="/o", work="/w", device="cuda", rehearse=False)
    assert sum(s.limit_s for s in gpu_check.plan(ctx)) <= 540
    # what comes back from the machine: at most 8 files
    assert len({s.log for s in gpu_check.plan(ctx)} | {"gpu-check.json", "bench.json"}) <= 8


def test_rehearsal_fails_on_a_planted_missing_package_and_a_wrong_stage_path(tmp_path):
    tree = _small_copy(tmp_path)
    (tree / "tests" / "test_planted_optional.py").write_text("import faiss  # top level: absent on the GPU machine\n\n"
                                                             "def test_x():\n    assert faiss\n")
    script = tree / "scripts" / "gpu_check.py"
    script.write_text(script.read_text().replace('"scripts/gpu_check_e2e.py"', '"scripts/gpu_check_e2e_moved.py"'))
    rc, stages, output = _rehearse(tree, tmp_path / "out", "correctness,e2e")
    assert rc == 1, output
    assert stages["correctness"]["status"] == "fail"
    assert "collection" in stages["correctness"]["verdict"]
    assert "faiss" in "\n".join(stages["correctness"]["log_tail"])
    assert stages["e2e"]["status"] == "fail"
    assert "gpu_check_e2e_moved.py" in "\n".join(stages["e2e"]["log_tail"])


def test_rehearsal_fails_when_the_cli_imports_only_thanks_to_an_install(tmp_path):
    """The venv's editable install maps mpts_fast.cli; the GPU machine has no install, so the
    rehearsal must not lean on it: with the checkout's own mapping removed, the build stage fails."""
    tree = _small_copy(tmp_path)
    site = tree / "scripts" / "gpu_check_site" / "sitecustomize.py"
    text = site.read_text()
    assert 'if fullname == "mpts_fast.cli":' in text
    site.write_text(text.replace('if fullname == "mpts_fast.cli":', 'if fullname == "mpts_fast.cli.unmapped":'))
    rc, stages, output = _rehearse(tree, tmp_path / "out", "build")
    assert rc == 1, output
    assert stages["build"]["status"] == "fail"
    assert "mpts_fast.cli" in stages["build"]["verdict"]


def test_out_folder_limits_of_the_gpu_machine(tmp_path):
    for i in range(9):
        (tmp_path / f"f{i}.log").write_text("x")
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c" / "deep.txt").write_text("x")
    problems = gpu_check.out_problems(str(tmp_path))
    assert any("10 files" in p for p in problems)
    assert any("deep.txt" in p for p in problems)


SANITIZER_LOG = """\
========= COMPUTE-SANITIZER
========= Program hit cudaErrorInvalidValue (error 1) due to "invalid argument" on CUDA API call to cudaFuncGetAttributes.
=========     Saved host backtrace up to driver entry point at error
=========         Host Frame: cudaFuncGetAttributes [0x4d2f1] in libcudart.so.13
=========         Host Frame: at::native::something [0x1234] in libtorch_cuda.so
=========
========= Program hit cudaErrorInvalidConfiguration (error 9) due to "invalid configuration" on CUDA API call to cudaLaunchKernel.
=========     Saved host backtrace up to driver entry point at error
=========         Host Frame: mpts::cuda::launch [0x99] in _C.cpython-312-x86_64-linux-gnu.so
=========
========= Invalid __global__ read of size 4 bytes
=========     at mpts::cuda::(anonymous namespace)::tile_kernel+0x1a0
=========     by thread (3,0,0) in block (0,0,0)
=========
========= Invalid __global__ write of size 4 bytes
=========     at void at::native::vectorized_elementwise_kernel<4>+0x90
=========     by thread (0,0,0) in block (7,0,0)
=========
========= ERROR SUMMARY: 4 errors
"""


def test_sanitizer_errors_are_split_into_ours_and_torchs(tmp_path):
    log = tmp_path / "memcheck.txt"
    log.write_text(SANITIZER_LOG)
    rep = gpu_check.sanitizer_report(str(log))
    assert rep["error_summary"] == 4
    assert rep["torch_api"] == 1
    assert rep["ours_api"] == 1
    assert rep["ours_kernel"] == 1
    assert rep["torch_kernel"] == 1


def test_sanitizer_stage_passes_with_only_torchs_api_errors(tmp_path):
    log = tmp_path / "memcheck.txt"
    log.write_text("\n".join(SANITIZER_LOG.splitlines()[:6]) + "\n========= ERROR SUMMARY: 1 error\n")
    ctx = gpu_check.Context(root=str(ROOT), py=sys.executable, out=str(tmp_path), work=str(tmp_path), device="cuda",
                            rehearse=False)
    stage = next(s for s in gpu_check.plan(ctx) if s.name == "memcheck")
    stage.report = str(log)
    out = gpu_check.Outcome("memcheck", "skipped", "", "cmd", 45, exit_code=99)
    gpu_check.judge(ctx, stage, out, "5 passed in 3.0s")
    assert out.status == "pass", out.verdict
    assert "torch's own" in out.verdict


@pytest.mark.parametrize("text, expected", [
    ("===== 3 passed, 2 skipped, 1 deselected in 1.0s =====", {"passed": 3, "skipped": 2, "deselected": 1}),
    ("1 failed, 2 errors in 0.5s", {"failed": 1, "error": 2}),
])
def test_pytest_counts(text, expected):
    assert gpu_check.pytest_counts(text) == expected


def test_bench_case_verdicts():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        run = _load("bench_run_under_test", ROOT / "bench" / "run.py")
    finally:
        sys.path.remove(str(ROOT / "bench"))
    case = {"target_ratio": 1.5, "floor": {"seconds": 1.0}, "ours": {"best_s": 1.5},
            "baselines": {"plain": {"ratio_vs_ours": 2.0, "agrees_with_ours": True}}}
    assert run.judge_case(case)["status"] == "pass"
    slow = {**case, "ours": {"best_s": 2.5}}
    assert any("floor" in p for p in run.judge_case(slow)["problems"])
    low = {**case, "baselines": {"plain": {"ratio_vs_ours": 1.2}}}
    assert any("1.20 < 1.5" in p for p in run.judge_case(low)["problems"])
    wrong = {**case, "baselines": {"plain": {"ratio_vs_ours": 3.0, "agrees_with_ours": False, "disagreement": "x"}}}
    assert run.judge_case(wrong)["status"] == "fail"
