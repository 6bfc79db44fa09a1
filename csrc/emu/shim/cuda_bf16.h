// Stand-in for <cuda_bf16.h> in the CPU emulation of the CUDA kernels.
#pragma once
#include "../cuda_emu.h"
