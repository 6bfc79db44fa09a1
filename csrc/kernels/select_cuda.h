// CUDA side of select.h: one fused kernel per pick, the winner kept on the device.
//
// Each pick is a single launch over fixed row blocks: a warp per row computes the distance to
// the newest centre (read from picks[t - 1] on the device), folds it into mind, and the block
// leaves its arg-max (k-center) or its weight sum and eligible count (k-means++) in the
// workspace. The last block to finish (a ticket counter after __threadfence) combines the
// blocks, draws or takes the winner, writes picks[t] and marks mind[winner] = -1. No host
// synchronisation happens between picks; the host only enqueues k launches.
//
// Rows may be stored as float32, float16 or bfloat16; distances are accumulated in float32 and
// the state (mind, a) is float32. Block sums of the k-means++ weights are in double.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace mpts {
namespace cuda {

enum class RowType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

// Bytes of device workspace the loops need for N rows (zero-initialised by the caller).
size_t select_workspace_bytes(int64_t N);

// x: (N, d) contiguous rows of `type`. mind: (N) float32, updated in place (< 0: never pick).
// first >= 0: pick 0 is `first`; first < 0: pick 0 is the arg-max (k-center) or a draw with
// u[0] (k-means++) over mind as given. picks: (k) int64 on the device. u: (k) doubles on the
// device. workspace: select_workspace_bytes(N) bytes, zeroed.
void kcenter_greedy(const void* x, RowType type, int64_t N, int64_t d, float* mind, int64_t first,
                    int64_t k, int64_t* picks, void* workspace, cudaStream_t stream);

void kmeanspp(const void* x, RowType type, int64_t N, int64_t d, float* mind, int64_t first,
              int64_t k, const double* u, int64_t* picks, void* workspace, cudaStream_t stream);

// q: (N, C) float32, h: (N, D) rows of `type`. a: (N) float32 out, |q_i|^2 |h_i|^2.
void badge_sqnorms(const float* q, int64_t C, const void* h, RowType type, int64_t D, int64_t N,
                   float* a, cudaStream_t stream);

void badge_kmeanspp(const float* q, int64_t C, const void* h, RowType type, int64_t D,
                    const float* a, int64_t N, float* mind, int64_t first, int64_t k,
                    const double* u, int64_t* picks, void* workspace, cudaStream_t stream);

}  // namespace cuda
}  // namespace mpts
