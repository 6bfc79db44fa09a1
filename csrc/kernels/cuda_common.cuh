// Helpers every CUDA kernel file shares: error checks, workspace alignment, storage-type loads.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace mpts {
namespace cuda {

// Workspace sub-buffers start on 256-byte boundaries (cuBLAS and vector loads like them).
constexpr size_t kWorkspaceAlign = 256;

inline size_t align_up(size_t x) { return (x + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign; }

// The workspace a caller hands in may not be aligned; sizes reserve kWorkspaceAlign extra bytes for this.
inline char* align_ptr(void* p) {
  return reinterpret_cast<char*>(align_up(reinterpret_cast<uintptr_t>(p)));
}

// Throws std::runtime_error("mpts::cuda::<op>: <what>: <CUDA message>") on failure.
inline void check_cuda(cudaError_t err, const char* op, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("mpts::cuda::") + op + ": " + what + ": " + cudaGetErrorString(err));
  }
}

// Rows stored as float, half or bfloat16 are read as float.
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

}  // namespace cuda
}  // namespace mpts
