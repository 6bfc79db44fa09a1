# Each target bootstraps .venv on a fresh machine (offline except for the package registries).
# TORCH_SPEC: the torch to install when none is importable (default: the CPU wheel 2.13.0);
# set it explicitly to install that torch even when one is importable.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
DEPS := setuptools wheel numpy pybind11 ninja click tqdm scikit-learn scipy matplotlib \
        pytest pytest-benchmark expecttest scikit-posthocs
CUDA_HOME ?= $(shell scripts/cuda_home.sh 2>/dev/null)
export CUDA_HOME
SOURCES := setup.py $(wildcard csrc/kernels/* csrc/torch/*)

.PHONY: all build run test bench bench-compare bench-run cuda-check cuda-emu simd-math-check gpu-check clean

all: build

# The importable torch is the one $(PYTHON) imports: an activated virtualenv's or conda environment's, or the
# system's. `venv --system-site-packages` alone sees only the base interpreter's packages, not an activated
# virtualenv's, so a .pth file in $(VENV) also lists the site-packages of the interpreter that found torch.
$(VENV)/.bootstrapped:
	@if [ "$(origin TORCH_SPEC)" = "file" ] && $(PYTHON) -c "import torch" 2>/dev/null; then \
	  echo "using the importable torch: $$($(PYTHON) -c 'import torch, sys; print(torch.__version__, "from", sys.prefix)')"; \
	  $(PYTHON) -m venv --system-site-packages $(VENV) && \
	  $(PYTHON) -c 'import site, sysconfig; p = sysconfig.get_paths(); print("\n".join(dict.fromkeys([p["purelib"], p["platlib"], *site.getsitepackages(), site.getusersitepackages()])))' \
	    > "$$($(VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/mpts_outer_env.pth" && \
	  $(VENV)/bin/python -c "import torch" || { echo "bootstrap: $(VENV) cannot import the torch $(PYTHON) imports"; exit 1; }; \
	else \
	  $(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install -q --upgrade pip && \
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

test: build
	@if command -v nvcc >/dev/null 2>&1; then $(MAKE) --no-print-directory cuda-check; \
	else echo "cuda-check: no nvcc on PATH, skipped"; fi
	@$(MAKE) --no-print-directory cuda-emu
	@$(MAKE) --no-print-directory simd-math-check
	$(PY) -m pytest -q tests

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
	$(PY) bench/run.py --device cpu --out bench/results

cuda-check: $(VENV)/.bootstrapped
	scripts/cuda_check.sh $(PY)

# The four framework-free CUDA kernel files run on the CPU under HIP-CPU (HIP_CPU_DIR, default
# ../shared/third_party/HIP-CPU) against their CPU twins and float64 references; objects cached in
# build/cuda-emu. Skips with a note when HIP-CPU or libtbb is missing.
cuda-emu:
	scripts/cuda_emu.sh

# The exp/log variants of csrc/kernels/simd_math.h against double-precision exp/log: the error
# bounds their comments state, NaN/inf behaviour, vector twins bitwise their scalar versions. Built
# with the extension's -O3 and -march=native (MPTS_FAST_NATIVE_ARCH=0: without); a few seconds.
build/simd-math-check: csrc/kernels/simd_math_check.cc csrc/kernels/simd_math.h
	@mkdir -p $(@D)
	$(CXX) -std=c++20 -O3 $(if $(filter 0,$(MPTS_FAST_NATIVE_ARCH)),,-march=native) -Icsrc/kernels $< -o $@

simd-math-check: build/simd-math-check
	build/simd-math-check

# On a GPU machine: its own python3 and torch (nothing can be installed there). Stages, each
# recorded whatever the others do (scripts/gpu_check.py): in-place CUDA build, the CUDA tests,
# the small CUDA workload under compute-sanitizer memcheck / racecheck / synccheck, the GPU
# benchmarks; bench/results/<date>-gpu-check-<gpu>.json says what passed, failed or could not
# run. About 8 minutes at most (GPU_CHECK_BUDGET_S); exit 1 on a failure, 2 if a stage could not run.
# GPU_CHECK_ARGS passes options on, e.g. GPU_CHECK_ARGS="--bundle $OUT/gpu-check.tar.gz".
gpu-check:
	PYTHON=$(PYTHON) $(PYTHON) scripts/gpu_check.py $(GPU_CHECK_ARGS)

clean:
	rm -rf build $(VENV) mpts_fast/_C*.so *.egg-info
