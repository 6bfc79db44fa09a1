# Each target bootstraps .venv on a fresh machine (offline except for the package registries).
# TORCH_SPEC: the torch to install when none is importable (default: the CPU wheel 2.13.0);
# set it explicitly to install that torch even when one is importable.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
DEPS := "setuptools>=64" wheel numpy pybind11 ninja click tqdm scikit-learn scipy matplotlib \
        pytest pytest-benchmark expecttest scikit-posthocs mnist1d
CUDA_HOME ?= $(shell scripts/cuda_home.sh 2>/dev/null)
export CUDA_HOME
SOURCES := setup.py pyproject.toml $(wildcard csrc/kernels/* csrc/torch/*)

.PHONY: all build run test bench bench-compare bench-run cuda-check cuda-emu simd-math-check gpu-check clean

all: build

# The importable torch is the one $(PYTHON) imports: an activated virtualenv's or conda environment's, or the
# system's. `venv --system-site-packages` alone sees only the base interpreter's packages, not an activated
# virtualenv's, so a .pth file in $(VENV) also lists the site-packages of the interpreter that found torch.
# pip is upgraded in both branches: an old pip (a venv's bundled one) handles editable installs worse.
$(VENV)/.bootstrapped:
	@if [ "$(origin TORCH_SPEC)" = "file" ] && $(PYTHON) -c "import torch" 2>/dev/null; then \
	  echo "using the importable torch: $$($(PYTHON) -c 'import torch, sys; print(torch.__version__, "from", sys.prefix)')"; \
	  $(PYTHON) -m venv --system-site-packages $(VENV) && \
	  $(VENV)/bin/python -m pip install -q --upgrade pip && \
	  $(PYTHON) -c 'import site, sysconfig; p = sysconfig.get_paths(); print("\n".join(dict.fromkeys([p["purelib"], p["platlib"], *site.getsitepackages(), site.getusersitepackages()])))' \
	    > "$$($(VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/mpts_outer_env.pth" && \
	  $(VENV)/bin/python -c "import torch" || { echo "bootstrap: $(VENV) cannot import the torch $(PYTHON) imports"; exit 1; }; \
	else \
	  $(PYTHON) -m venv $(VENV) && $(VENV)/bin/python -m pip install -q --upgrade pip && \
	  $(VENV)/bin/pip install -q "$(TORCH_SPEC)"; \
	fi
	$(VENV)/bin/pip install -q $(DEPS)
	@# faiss is optional for these ops (the selection engine uses it); never fail the bootstrap on it
	-$(VENV)/bin/pip install -q faiss-cpu
	touch $@

$(VENV)/.built: $(VENV)/.bootstrapped $(SOURCES)
	$(VENV)/bin/pip install -q -e . --no-build-isolation
	touch $@

build: $(VENV)/.built

# The main job: MPTS on the embedded digits data set (offline), results and plot in runs/digits-mpts/
run: build
	$(VENV)/bin/mpts-fast info
	$(VENV)/bin/mpts-fast run --overwrite

# Ends with a summary; a loud block when the emulated CUDA suite did not run (the CUDA kernels were
# then not checked at all on a machine without a GPU).
test: build
	@if command -v nvcc >/dev/null 2>&1; then $(MAKE) --no-print-directory cuda-check; \
	else echo "cuda-check: no nvcc on PATH, skipped"; fi
	@$(MAKE) --no-print-directory cuda-emu
	@$(MAKE) --no-print-directory simd-math-check
	$(PY) scripts/gpu_check.py --rehearse
	@$(PY) -m pytest -q tests; rc=$$?; \
	echo "== make test summary =="; \
	echo "pytest: $$([ $$rc -eq 0 ] && echo passed || echo "FAILED (exit $$rc)")"; \
	echo "cuda-check (nvcc): $$(command -v nvcc >/dev/null 2>&1 && echo ran || echo 'skipped, no nvcc on PATH')"; \
	emu=$$(cat $(CUDA_EMU_OUT)/status 2>/dev/null || echo "NOT RUN: no result in $(CUDA_EMU_OUT)/status"); \
	echo "cuda-emu (CUDA kernels on the CPU): $$emu"; \
	case "$$emu" in ran:*) ;; *) \
	  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
	  echo "!!! THE EMULATED CUDA SUITE DID NOT RUN: the CUDA kernels were not checked (docs/cuda.md)"; \
	  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!";; \
	esac; \
	exit $$rc

# Benchmarks (bench/README.md): the pytest-benchmark suite over bench/cases.py, saved with
# pytest-benchmark's own storage in $(BENCH_STORAGE); MPTS_BENCH_QUICK=1 for the quick tier (< 2 min
# on 2 cores; the full tier 5-10 min). bench-compare runs the suite on the current tree
# and fails when a case's ratio plain / ours fell by more than TOL (a fraction) against the median
# of the last 3 saved runs of the same tier, in a re-run of that case too. bench-run: bench/run.py (floors, peak memory, results JSON).
BENCH_STORAGE ?= bench/results/pytest-benchmark
BENCH_TIER := $(if $(filter-out 0 false no off,$(MPTS_BENCH_QUICK)),quick,full)
TOL ?= 0.25
BENCH_PYTEST = $(PY) -m pytest bench/ --benchmark-only -q --benchmark-storage=file://$(BENCH_STORAGE)

bench: build
	$(BENCH_PYTEST) --benchmark-save=$(BENCH_TIER) --benchmark-json=$(BENCH_STORAGE)/last-$(BENCH_TIER).json

bench-compare: build
	$(BENCH_PYTEST) --benchmark-json=$(BENCH_STORAGE)/current-$(BENCH_TIER).json
	$(PY) bench/compare.py --current $(BENCH_STORAGE)/current-$(BENCH_TIER).json --storage $(BENCH_STORAGE) --tol $(TOL) --recheck

bench-run: build
	$(PY) bench/run.py --device cpu

cuda-check: $(VENV)/.bootstrapped
	scripts/cuda_check.sh $(PY)

# The four framework-free CUDA kernel files run on the CPU under HIP-CPU (HIP_CPU_DIR, default
# ../shared/third_party/HIP-CPU) against their CPU twins and float64 references; objects cached in
# $(CUDA_EMU_OUT). libtbb, when missing, is installed: PyPI's tbb-devel into $(VENV) (no root), else
# apt-get install libtbb-dev as root. Skips with a note when HIP-CPU or libtbb is still missing.
CUDA_EMU_OUT ?= build/cuda-emu
cuda-emu:
	CUDA_EMU_INSTALL=1 CUDA_EMU_OUT=$(CUDA_EMU_OUT) \
	  CUDA_EMU_PIP=$(if $(wildcard $(VENV)/bin/pip),$(VENV)/bin/pip) scripts/cuda_emu.sh

# The exp/log variants of csrc/kernels/simd_math.h against double-precision exp/log: the error
# bounds their comments state, NaN/inf behaviour, vector twins bitwise their scalar versions. Built
# with the extension's -O3 and -march=native (MPTS_FAST_NATIVE_ARCH=0: without); a few seconds.
build/simd-math-check: csrc/kernels/simd_math_check.cc csrc/kernels/simd_math.h
	@mkdir -p $(@D)
	$(CXX) -std=c++20 -O3 $(if $(filter 0,$(MPTS_FAST_NATIVE_ARCH)),,-march=native) -Icsrc/kernels $< -o $@

simd-math-check: build/simd-math-check
	build/simd-math-check

# On a GPU machine, with its own python3 and torch, installing nothing (scripts/gpu_check.py, docs/cuda.md):
# in-place CUDA build, the CUDA tests, `mpts-fast run` on CUDA against the CPU, judged benchmarks, then
# compute-sanitizer memcheck / racecheck / synccheck; each stage's verdict, log and the bench JSON land in
# GPU_CHECK_OUT ($OUT on a lent GPU machine) as the stage ends. 540 s at most (GPU_CHECK_BUDGET_S): give
# the call 600 s. Exit 1 on a failure, 2 if a stage could not run. `make test` rehearses it on the CPU.
GPU_CHECK_OUT ?= build/gpu-check/out
gpu-check:
	PYTHON=$(PYTHON) $(PYTHON) scripts/gpu_check.py --out $(GPU_CHECK_OUT) $(GPU_CHECK_ARGS)

clean:
	rm -rf build $(VENV) mpts_fast/_C*.so *.egg-info
