// CUDA side of rbf_mmd.h: same tiling and epilogue, tiles sized for the GPU, all results
// left on the device (no host synchronisation inside).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "rbf_mmd.h"

namespace mpts {
namespace cuda {

// Bytes of device workspace rbf_mmd2 needs for these sizes.
size_t rbf_mmd2_workspace_bytes(int64_t n, int64_t m, int64_t d, bool with_grad, int64_t tile = 0);

// z: (n + m, d) float32 contiguous, device. value_out: one double on the device.
// grad_z: (n + m, d) float32 or nullptr. gemm must enqueue on `stream`.
void rbf_mmd2(const float* z, int64_t n, int64_t m, int64_t d, const MmdScales& scales,
              const MmdWeights& weights, double* value_out, float* grad_z, void* workspace,
              const GemmFn<float>& gemm, cudaStream_t stream, int64_t tile = 0);

}  // namespace cuda
}  // namespace mpts
