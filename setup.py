"""Builds mpts_fast._C: C++/OpenMP kernels always, CUDA kernels when torch is a CUDA build.

MPTS_FAST_CUDA=auto|0|1 (default auto: on when torch.version.cuda and CUDA_HOME are set;
never decided by torch.cuda.is_available(), build machines often have no GPU).
MPTS_FAST_NATIVE_ARCH=1|0 (default 1): -march=native for the CPU kernels.
Install after torch with `pip install --no-build-isolation .` (or `-e .`): the extension is compiled
against the environment's torch, the one it will run with. pyproject.toml says why torch is not a
build requirement; docs/install.md lists every way to install.
"""
import glob
import os
import sys
import sysconfig

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))

NO_TORCH_MESSAGE = """\
mpts-fast: building the C++ extension needs the torch you will run it with, and this build
environment cannot import torch ({error}).
Install torch first, then build against it, without pip's build isolation:
    pip install --no-build-isolation .          (or: pip install --no-build-isolation -e .)
    pip wheel --no-build-isolation --no-deps .  (a wheel for this torch)
An isolated build (pip's default) runs in a fresh environment without your torch; see docs/install.md."""


def _require_torch() -> None:
    """Stops the build with advice when torch is missing (an isolated build), before setup() runs."""
    try:
        import torch  # noqa: F401
        from torch.utils import cpp_extension  # noqa: F401
    except ImportError as error:
        sys.exit(NO_TORCH_MESSAGE.format(error=error))


_require_torch()


def _want_cuda() -> bool:
    import torch
    from torch.utils import cpp_extension

    mode = os.environ.get("MPTS_FAST_CUDA", "auto").lower()
    has_toolkit = torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None
    if mode in ("0", "off", "false"):
        return False
    if mode in ("1", "on", "true"):
        if not has_toolkit:
            raise RuntimeError(
                "MPTS_FAST_CUDA=1 but torch is a CPU build or CUDA_HOME is unset "
                f"(torch.version.cuda={torch.version.cuda}, CUDA_HOME={cpp_extension.CUDA_HOME})"
            )
        return True
    return has_toolkit


def _extensions():
    from torch.utils import cpp_extension

    # -fno-wrapv: Python's own CFLAGS (sysconfig, added to every extension build) carry -fwrapv,
    # which forbids the compiler to assume that signed index arithmetic does not overflow; it
    # made the snapshot kernel 22% slower (0.86 -> 1.05 ns per logit in cache). Our kernels are
    # standard C++ and never rely on signed wrap-around.
    cxx = ["-O3", "-std=c++20", "-fopenmp", "-Wall", "-Wno-unknown-pragmas", "-fno-wrapv"]
    if os.environ.get("MPTS_FAST_NATIVE_ARCH", "1") != "0":
        cxx.append("-march=native")
    sources = sorted(glob.glob("csrc/torch/*.cpp")) + sorted(glob.glob("csrc/kernels/*_cpu.cpp"))
    include_dirs = [os.path.join(ROOT, "csrc/kernels"), os.path.join(ROOT, "csrc/torch")]
    if _want_cuda():
        sources += sorted(glob.glob("csrc/kernels/*_cuda.cu")) + sorted(glob.glob("csrc/torch/*.cu"))
        nvcc = ["-O3", "-std=c++20", "--expt-relaxed-constexpr", "-lineinfo"]
        return [
            cpp_extension.CUDAExtension(
                "mpts_fast._C",
                sources,
                include_dirs=include_dirs,
                define_macros=[("MPTS_FAST_WITH_CUDA", "1")],
                extra_compile_args={"cxx": cxx, "nvcc": nvcc},
                extra_link_args=["-fopenmp"],
            )
        ]
    return [
        cpp_extension.CppExtension(
            "mpts_fast._C",
            sources,
            include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx},
            extra_link_args=["-fopenmp"],
        )
    ]


def _cmdclass():
    from torch.utils import cpp_extension

    base = cpp_extension.BuildExtension.with_options(use_ninja=True)

    class BuildExt(base):
        """An editable install (`pip install -e`) builds in a new temporary directory each time, so each
        rebuild compiled every file again. build/ext-<platform>-<python> keeps ninja's objects and log
        instead: ninja recompiles what changed (a source, a header it included, or the compile command,
        as with another torch or other flags), nothing else. distutils adds the building virtualenv's
        own include/ to every compile command; the kernels use no header from there, and without it
        another virtualenv over the same torch (make build VENV=...) reuses the objects."""

        def run(self) -> None:
            # the pip package ninja's binary, when there is one, rather than whichever ninja PATH finds
            # first: ninja 1.11 and 1.13 log commands under different hashes, so alternating between
            # them recompiled every file
            try:
                import ninja

                bin_dir = ninja.BIN_DIR  # "" when the package's binary is not found
            except (ImportError, AttributeError):
                bin_dir = ""
            if bin_dir and os.path.isfile(os.path.join(bin_dir, "ninja")):
                os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
            super().run()

        def finalize_options(self) -> None:
            super().finalize_options()
            venv_include = os.path.join(sys.exec_prefix, "include")
            if sys.exec_prefix != sys.base_exec_prefix and self.include_dirs:
                self.include_dirs = [d for d in self.include_dirs if d != venv_include]
            if getattr(self, "editable_mode", False):
                tag = f"{sysconfig.get_platform()}-{sys.implementation.cache_tag}"
                self.build_temp = os.path.join(ROOT, "build", f"ext-{tag}")

    return {"build_ext": BuildExt}


setup(
    name="mpts-fast",
    version="0.1.0",
    description="Deep active learning with fast C++/CUDA kernels: MPTS, MMD, snapshot scores, sensitivity",
    python_requires=">=3.10",
    license="MIT",
    license_files=["LICENSE"],
    packages=find_packages(include=["mpts_fast", "mpts_fast.*"]) + ["mpts_fast.cli"],
    package_dir={"mpts_fast.cli": "cli"},
    ext_modules=_extensions(),
    cmdclass=_cmdclass(),
    install_requires=["torch>=2.1", "numpy", "click", "tqdm", "scikit-learn", "scipy", "matplotlib"],
    extras_require={
        "test": ["pytest", "pytest-benchmark", "expecttest"],
        "cpu": ["faiss-cpu"],
        "study": ["scikit-posthocs"],
        "openml": ["openml"],
        "vit": ["timm"],
        # MNIST-1D (mpts_fast/data/mnist1d.py): its generator, pure Python (numpy, scipy, matplotlib, requests)
        "mnist1d": ["mnist1d"],
        # our kernels inside baal / scikit-activeml (mpts_fast.integrations); the tests skip without them
        "integrations": ["baal", "scikit-activeml"],
    },
    entry_points={"console_scripts": ["mpts-fast=mpts_fast.cli.main:main"]},
)
