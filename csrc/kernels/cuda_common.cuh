// Helpers every CUDA kernel file shares: launch shape (block size, grid sizing), error checks,
// workspace layout and alignment, storage-type loads, and the warp and block reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace mpts {
namespace cuda {

// ---------------------------------------------------------------- launch shape

// Threads per block of every kernel (a multiple of 32; the kernels' __launch_bounds__).
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;  // warps per block
// Blocks of a grid-stride launch: more than any GPU runs at once; the loops cover the rest.
constexpr int64_t kMaxBlocks = int64_t(1) << 20;

// Blocks for `work` items at `per_block` items per block: ceil(work / per_block), at least 1 (a
// launch of 0 blocks is an error) and at most max_blocks.
inline unsigned grid_for(int64_t work, int64_t per_block, int64_t max_blocks = kMaxBlocks) {
  const int64_t b = (work + per_block - 1) / per_block;
  return unsigned(std::max<int64_t>(1, std::min(b, max_blocks)));
}

// ---------------------------------------------------------------- errors

// Throws std::runtime_error("mpts::cuda::<op>: <what>: <CUDA message>") on failure.
inline void check_cuda(cudaError_t err, const char* op, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("mpts::cuda::") + op + ": " + what + ": " + cudaGetErrorString(err));
  }
}

// check_cuda with the op's name bound, one per kernel file: `constexpr CudaCheck check{"select"};`
// then `check(cudaGetLastError(), "pick_kernel launch");`.
struct CudaCheck {
  const char* op;
  void operator()(cudaError_t err, const char* what) const { check_cuda(err, op, what); }
};

// ---------------------------------------------------------------- workspace

// Workspace sub-buffers start on 256-byte boundaries (cuBLAS and vector loads like them).
constexpr size_t kWorkspaceAlign = 256;

inline size_t align_up(size_t x) { return (x + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign; }

// The workspace a caller hands in may not be aligned; sizes reserve kWorkspaceAlign extra bytes for this.
inline char* align_ptr(void* p) {
  return reinterpret_cast<char*>(align_up(reinterpret_cast<uintptr_t>(p)));
}

// Offsets of a workspace's sub-buffers, each on a kWorkspaceAlign boundary, in the order they are
// taken. A kernel file decides its layout in one function, so the size query and the kernel cannot
// disagree; total() includes the kWorkspaceAlign bytes align_ptr may skip.
class WorkspaceLayout {
 public:
  size_t take(size_t bytes) {
    const size_t at = off_;
    off_ = align_up(off_ + bytes);
    return at;
  }
  size_t total() const { return off_ + kWorkspaceAlign; }

 private:
  size_t off_ = 0;
};

// Rows stored as float, half or bfloat16 are read as float.
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

// ---------------------------------------------------------------- reductions
// Call each with every lane of the warp converged (full-mask shuffles).

// Sum over each aligned group of TEAM lanes (TEAM a power of 2, at most 32) by an xor butterfly:
// every lane of a team ends with bitwise the same value.
template <int TEAM, typename T>
__device__ __forceinline__ T team_sum(T v) {
  if constexpr (TEAM > 1) {
#pragma unroll
    for (int o = TEAM / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o, TEAM);
  }
  return v;
}

// Sum over the warp, in every lane. Lane 0 holds bitwise the sum a shfl_down tree gives it: the
// butterfly adds the same pairs in the same order there, and float addition commutes.
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  return team_sum<32>(v);
}

// Block-wide sum, valid in thread 0; `sh` holds blockDim.x / 32 values. Ends with a barrier so
// `sh` can be reused at once. blockDim.x must be a multiple of 32 and at most 1024.
template <typename T>
__device__ T block_sum(T v, T* sh) {
  const int lane = threadIdx.x & 31;
  const int wid = threadIdx.x >> 5;
  v = warp_sum(v);
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  const int nw = blockDim.x >> 5;
  v = threadIdx.x < nw ? sh[threadIdx.x] : T(0);
  if (wid == 0) v = warp_sum(v);
  __syncthreads();
  return v;
}

}  // namespace cuda
}  // namespace mpts
