# Builds the CPU emulation of the four framework-free CUDA kernel files and their checks.
# Run from the repository root (paths stay relative, so a copy of the tree with its build folder
# rebuilds only what changed; the mutation check relies on that):
#   make -f csrc/emu/emu.mk HIP_CPU_DIR=../shared/third_party/HIP-CPU OUT=build/cuda-emu
# scripts/cuda_emu.sh wraps this, checks that HIP-CPU and libtbb are there and runs the checks.

HIP_CPU_DIR ?= ../shared/third_party/HIP-CPU
OUT ?= build/cuda-emu
KERNELS ?= csrc/kernels
EMU := csrc/emu
PYTHON3 ?= python3
CXX ?= g++

# The kernels: C++20 for HIP-CPU; no FMA contraction and no fast-math, so the emulated
# arithmetic is the one the source spells out (nvcc's contraction is a GPU-only question).
EMU_CXXFLAGS := -std=c++20 -O1 -ffp-contract=off -fno-fast-math -w \
                -I$(EMU)/shim -I$(EMU) -isystem $(HIP_CPU_DIR)/include -I$(KERNELS) -MMD -MP
CPU_CXXFLAGS := -std=c++20 -O2 -fopenmp -I$(KERNELS) -MMD -MP
LDLIBS := -ltbb -fopenmp -lpthread

CHECKS := snapshot mmd sensitivity select
BINS := $(CHECKS:%=$(OUT)/check_%)

all: $(BINS)

$(OUT)/gen/%_cuda.cpp: $(KERNELS)/%_cuda.cu $(EMU)/rewrite_launches.py
	@mkdir -p $(@D)
	$(PYTHON3) $(EMU)/rewrite_launches.py $< $@

$(OUT)/obj/%_cuda.o: $(OUT)/gen/%_cuda.cpp
	@mkdir -p $(@D)
	$(CXX) $(EMU_CXXFLAGS) -c $< -o $@

$(OUT)/obj/%_cpu.o: $(KERNELS)/%_cpu.cpp
	@mkdir -p $(@D)
	$(CXX) $(CPU_CXXFLAGS) -c $< -o $@

$(OUT)/obj/check_%.o: $(EMU)/check_%.cpp
	@mkdir -p $(@D)
	$(CXX) $(EMU_CXXFLAGS) -fopenmp -c $< -o $@

# gemm_naive (the GEMM callback standing in for cuBLAS) lives in rbf_mmd_cpu.cpp.
$(OUT)/check_snapshot: $(OUT)/obj/check_snapshot.o $(OUT)/obj/snapshot_uncertainty_cuda.o \
                       $(OUT)/obj/snapshot_uncertainty_cpu.o
$(OUT)/check_mmd: $(OUT)/obj/check_mmd.o $(OUT)/obj/rbf_mmd_cuda.o $(OUT)/obj/rbf_mmd_cpu.o
$(OUT)/check_sensitivity: $(OUT)/obj/check_sensitivity.o $(OUT)/obj/sensitivity_cuda.o \
                          $(OUT)/obj/sensitivity_cpu.o $(OUT)/obj/rbf_mmd_cpu.o
$(OUT)/check_select: $(OUT)/obj/check_select.o $(OUT)/obj/select_cuda.o $(OUT)/obj/select_cpu.o

$(BINS):
	$(CXX) $^ -o $@ $(LDLIBS)

.PHONY: all
.SECONDARY:

-include $(wildcard $(OUT)/obj/*.d)
