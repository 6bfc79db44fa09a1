// CUDA side of snapshot_uncertainty.h. Logits may be float, half or bfloat16 (InT);
// state and scores are float32. One thread per item; classes live in registers up to
// kMaxClassesCuda.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "snapshot_uncertainty.h"

namespace mpts {
namespace cuda {

constexpr int64_t kMaxClassesCuda = 1024;

enum class LogitType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

// logits: (S, N, C) with strides (stride_s, C, 1) in elements. scores: (5, N) float32.
void snapshot_scores(const void* logits, LogitType type, int64_t S, int64_t stride_s, int64_t N,
                     int64_t C, float* scores, cudaStream_t stream);

void snapshot_accumulate(const void* logits, LogitType type, int64_t N, int64_t C, int64_t count,
                         float* mean, float* m2, float* ent_sum, cudaStream_t stream);

void snapshot_finalize(const float* mean, const float* m2, const float* ent_sum, int64_t N,
                       int64_t C, int64_t count, float* scores, cudaStream_t stream);

}  // namespace cuda
}  // namespace mpts
