// CUDA side of sensitivity.h (float32). GEMMs through the callback (cuBLAS), epilogues here.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "sensitivity.h"

namespace mpts {
namespace cuda {

size_t sensitivity_workspace_bytes(int64_t P, int64_t I, int64_t J, int64_t K, int64_t chunk = 0);

void sensitivity(const float* x, const float* V, const float* b_v, const float* W, const float* b_w,
                 int64_t P, int64_t I, int64_t J, int64_t K, SensNorm norm, bool sigmoid_output,
                 float* phi, void* workspace, const GemmFn<float>& gemm, cudaStream_t stream,
                 int64_t chunk = 0);

}  // namespace cuda
}  // namespace mpts
