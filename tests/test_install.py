"""How the package builds and installs (docs/install.md): the build declaration, the advice an isolated
build gets, the `mpts_fast.cli` package in every install, and the emulated CUDA suite's skip line.
The slow checks (a real `make build` from an activated virtualenv, an isolated `pip wheel`) are in
.ci/run."""
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_pyproject_declares_a_setuptools_build_without_torch():
    # torch in `requires` would make every isolated build download a torch of pip's choosing (a
    # multi-GB CUDA build on a CPU machine) and compile against a torch other than the installed one
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    assert build["build-backend"] == "setuptools.build_meta"
    names = {r.split(";")[0].strip().split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip().lower()
             for r in build["requires"]}
    assert "setuptools" in names
    assert "torch" not in names


def test_setup_without_torch_stops_with_the_no_build_isolation_advice():
    # what an isolated build (pip's default) sees: no torch in the build environment
    code = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = ['setup.py', '--name']; "
            "runpy.run_path('setup.py', run_name='__main__')")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "pip install --no-build-isolation ." in res.stderr
    assert "Traceback" not in res.stderr


def test_build_py_puts_the_cli_package_inside_mpts_fast(tmp_path):
    # setup.py maps mpts_fast.cli to cli/; a wheel or non-editable install holds what build_py collects
    res = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    for name in ("__init__.py", "main.py", "run.py"):
        assert (tmp_path / "mpts_fast" / "cli" / name).is_file(), name
    assert (tmp_path / "mpts_fast" / "__init__.py").is_file()
    assert not (tmp_path / "cli").exists()


def _cuda_emu(tmp_path, **env):
    full = {**os.environ, "CUDA_EMU_OUT": str(tmp_path / "emu"), **env}
    full.pop("CUDA_EMU_INSTALL", None)
    res = subprocess.run([str(ROOT / "scripts" / "cuda_emu.sh")], env=full, capture_output=True, text=True,
                         timeout=60)
    return res, (tmp_path / "emu" / "status").read_text()


@pytest.mark.skipif(not Path("/bin/bash").exists(), reason="the script is bash")
def test_cuda_emu_records_why_it_did_not_run(tmp_path):
    res, status = _cuda_emu(tmp_path, HIP_CPU_DIR=str(tmp_path / "nowhere"))
    assert res.returncode == 0
    assert status.startswith("NOT RUN: HIP-CPU not found")


@pytest.mark.skipif(not Path("/bin/bash").exists(), reason="the script is bash")
def test_cuda_emu_without_libtbb_skips_with_the_install_hint(tmp_path):
    hip = tmp_path / "hip" / "include" / "hip"
    hip.mkdir(parents=True)
    (hip / "hip_runtime.h").write_text("")
    no_compiler = tmp_path / "cxx"  # every compile fails, as a compile against a missing libtbb would
    no_compiler.write_text("#!/bin/sh\nexit 1\n")
    no_compiler.chmod(0o755)
    res, status = _cuda_emu(tmp_path, HIP_CPU_DIR=str(tmp_path / "hip"), CXX=str(no_compiler),
                            TBB_PREFIX=str(tmp_path / "no-tbb"), VIRTUAL_ENV="", CONDA_PREFIX="")
    assert res.returncode == 0, res.stdout + res.stderr
    assert status.startswith("NOT RUN: libtbb not found")
    assert "tbb-devel" in status


def test_editable_builds_keep_their_objects_under_build(monkeypatch):
    # pip install -e builds in a new temporary directory each time; without a fixed build_temp every
    # `make build` after an edit recompiled all of the kernels
    import runpy

    import setuptools

    captured = {}
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
    runpy.run_path("setup.py")
    build_ext = captured["cmdclass"]["build_ext"]

    def finalized(editable):
        cmd = build_ext(setuptools.Distribution({"name": "mpts-fast", "ext_modules": captured["ext_modules"]}))
        cmd.editable_mode = editable
        cmd.ensure_finalized()
        return cmd

    editable = finalized(True)
    build_temp = Path(editable.build_temp)
    assert build_temp.parent == ROOT / "build" and build_temp.name.startswith("ext-")
    # the same compile commands from any virtualenv over the same torch, so the objects are reused
    assert os.path.join(sys.exec_prefix, "include") not in editable.include_dirs
    # a regular build keeps setuptools' build/temp.*
    assert not Path(finalized(False).build_temp).name.startswith("ext-")
