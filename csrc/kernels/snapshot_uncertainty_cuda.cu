// CUDA implementation of snapshot_uncertainty_cuda.h. See snapshot_uncertainty.h for the math.
//
// Each item is owned by a "team" of TEAM lanes inside one warp (TEAM = 1: one thread per
// item). Lane t of a team holds classes t, t + TEAM, ... in registers (MAXC / TEAM of them),
// so the per-class state never leaves registers and, for many classes, a warp's loads of a
// row are contiguous instead of 32 rows apart. Team reductions are xor butterflies, so every
// lane of a team ends with bitwise the same value.
//
// Non-finite logits: NaN and +inf - max = NaN are left to happen (no fast-math), and the
// finaliser turns every score of an item with a non-finite state into NaN. A -inf logit masks
// its class (exp gives 0, and the entropy term e * (l - max) is skipped where e = 0); an item
// whose logits are all -inf has max = -inf, -inf - -inf = NaN, and is poisoned like NaN.
#include "snapshot_uncertainty_cuda.h"

#include "cuda_common.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace mpts {
namespace cuda {
namespace {

constexpr CudaCheck check{"snapshot"};

__device__ __forceinline__ bool is_finite(float v) { return fabsf(v) <= FLT_MAX; }

template <int TEAM>
__device__ __forceinline__ float team_max(float v) {
  if constexpr (TEAM > 1) {
#pragma unroll
    for (int o = TEAM / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o, TEAM));
  }
  return v;
}

template <int TEAM>
__device__ __forceinline__ int team_or(int v) {
  if constexpr (TEAM > 1) {
#pragma unroll
    for (int o = TEAM / 2; o > 0; o >>= 1) v |= __shfl_xor_sync(0xffffffffu, v, o, TEAM);
  }
  return v;
}

// Largest and second largest of the team's values (t1 >= t2 on every lane on entry).
template <int TEAM>
__device__ __forceinline__ void team_top2(float& t1, float& t2) {
  if constexpr (TEAM > 1) {
#pragma unroll
    for (int o = TEAM / 2; o > 0; o >>= 1) {
      const float o1 = __shfl_xor_sync(0xffffffffu, t1, o, TEAM);
      const float o2 = __shfl_xor_sync(0xffffffffu, t2, o, TEAM);
      t2 = fmaxf(fminf(t1, o1), fmaxf(t2, o2));
      t1 = fmaxf(t1, o1);
    }
  }
}

// Folds one softmax snapshot of the item (row: its C logits) into the Welford state.
// `count_new` is the number of snapshots including this one. `row` may be null when !valid.
template <typename InT, int R, int TEAM>
__device__ __forceinline__ void fold_snapshot(const InT* __restrict__ row, int64_t C, int tl,
                                              bool valid, float count_new, float (&mean)[R],
                                              float (&m2)[R], float& ent_sum) {
  float e[R];
  float mx = -INFINITY;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int c = tl + r * TEAM;
    e[r] = (valid && c < C) ? to_float(row[c]) : -INFINITY;
    mx = fmaxf(mx, e[r]);
  }
  mx = team_max<TEAM>(mx);
  // A NaN logit is skipped by fmaxf but still reaches the sum through expf(NaN).
  // Sums over classes run in double, as on the CPU: a float32 sum drops every term below half
  // an ulp of the running sum, so its error grows with C; the per-class work stays float32.
  double sum = 0.0, sed = 0.0;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int c = tl + r * TEAM;
    if (valid && c < C) {
      const float dl = e[r] - mx;
      e[r] = expf(dl);
      sum += double(e[r]);
      // A -inf logit (masked class): expf(-inf) = 0 exactly and the class adds nothing; its
      // e * dl would be 0 * (-inf) = NaN, hence the guard (a NaN e still poisons `sum`).
      sed += e[r] > 0.f ? double(e[r] * dl) : 0.0;
    }
  }
  sum = team_sum<TEAM>(sum);
  sed = team_sum<TEAM>(sed);
  // H = log(sum) - sum_c p_c (l_c - max), with p_c = e_c / sum factored out of the dot.
  const float sumf = float(sum);
  const float H = logf(sumf) - float(sed / sum);
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int c = tl + r * TEAM;
    if (valid && c < C) {
      const float p = e[r] / sumf;
      const float delta = p - mean[r];
      mean[r] += delta / count_new;
      m2[r] += delta * (p - mean[r]);
    }
  }
  ent_sum += H;
}

// Scores of one item from its state; written by the team's lane 0.
template <int R, int TEAM>
__device__ __forceinline__ void finish_item(const float (&mean)[R], const float (&m2)[R],
                                            float ent_sum, int64_t count, int64_t C, int tl,
                                            bool valid, int64_t item, int64_t N,
                                            float* __restrict__ scores) {
  double ent = 0.0, var = 0.0;  // class sums in double, as on the CPU
  float t1 = 0.f, t2 = 0.f;
  int bad = 0;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int c = tl + r * TEAM;
    if (valid && c < C) {
      const float p = mean[r];
      bad |= int(!is_finite(p) || !is_finite(m2[r]));
      ent -= p > FLT_MIN ? double(p * logf(p)) : 0.0;  // 0 log 0 = 0, subnormals as 0
      var += double(m2[r]);
      if (p > t1) {
        t2 = t1;
        t1 = p;
      } else if (p > t2) {
        t2 = p;
      }
    }
  }
  ent = team_sum<TEAM>(ent);
  var = team_sum<TEAM>(var);
  team_top2<TEAM>(t1, t2);
  bad = team_or<TEAM>(bad);
  if (!valid || tl != 0) return;
  const bool nan_out = bad || !is_finite(ent_sum);
  const float entf = float(ent);
  float bald = entf - ent_sum / float(count);
  bald = bald < 0.f ? 0.f : bald;
  const float variance = count > 1 ? fmaxf(float(var) / float(count - 1), 0.f) : 0.f;  // m2 rounds below 0
  scores[int64_t(kEntropy) * N + item] = nan_out ? NAN : entf;
  scores[int64_t(kBald) * N + item] = nan_out ? NAN : bald;
  scores[int64_t(kVariance) * N + item] = nan_out ? NAN : variance;
  scores[int64_t(kMargin) * N + item] = nan_out ? NAN : t1 - t2;
  scores[int64_t(kLeastConfidence) * N + item] = nan_out ? NAN : 1.f - t1;
}

// Team geometry. Loops run over warp-uniform bases so that every lane reaches every shuffle;
// lanes whose item is past N carry valid = false and write nothing.
template <int TEAM>
struct Geometry {
  static constexpr int kItemsPerWarp = 32 / TEAM;
  int tl;
  int slot;
  int64_t first;
  int64_t step;
  __device__ Geometry() {
    const int lane = threadIdx.x & 31;
    tl = lane % TEAM;
    slot = lane / TEAM;
    const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
    const int64_t nwarps = (int64_t(gridDim.x) * blockDim.x) >> 5;
    first = warp * kItemsPerWarp;
    step = nwarps * kItemsPerWarp;
  }
};

template <typename InT, int MAXC, int TEAM>
__global__ void __launch_bounds__(kThreads)
    scores_kernel(const InT* __restrict__ logits, int64_t S, int64_t stride_s, int64_t N,
                  int64_t C, float* __restrict__ scores) {
  constexpr int R = MAXC / TEAM;
  const Geometry<TEAM> g;
  for (int64_t base = g.first; base < N; base += g.step) {
    const int64_t item = base + g.slot;
    const bool valid = item < N;
    float mean[R], m2[R];
#pragma unroll
    for (int r = 0; r < R; ++r) mean[r] = m2[r] = 0.f;
    float ent_sum = 0.f;
    for (int64_t s = 0; s < S; ++s) {
      const InT* row = valid ? logits + s * stride_s + item * C : nullptr;
      fold_snapshot<InT, R, TEAM>(row, C, g.tl, valid, float(s + 1), mean, m2, ent_sum);
    }
    finish_item<R, TEAM>(mean, m2, ent_sum, S, C, g.tl, valid, item, N, scores);
  }
}

template <typename InT, int MAXC, int TEAM>
__global__ void __launch_bounds__(kThreads)
    accumulate_kernel(const InT* __restrict__ logits, int64_t N, int64_t C, int64_t count,
                      float* __restrict__ mean_g, float* __restrict__ m2_g,
                      float* __restrict__ ent_g) {
  constexpr int R = MAXC / TEAM;
  const Geometry<TEAM> g;
  for (int64_t base = g.first; base < N; base += g.step) {
    const int64_t item = base + g.slot;
    const bool valid = item < N;
    float mean[R], m2[R];
    // With count == 0 the state is defined to be empty, whatever the buffers hold.
    const bool fresh = count == 0;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int c = g.tl + r * TEAM;
      const bool here = valid && !fresh && c < C;
      mean[r] = here ? mean_g[item * C + c] : 0.f;
      m2[r] = here ? m2_g[item * C + c] : 0.f;
    }
    float ent_sum = (valid && !fresh) ? ent_g[item] : 0.f;
    const InT* row = valid ? logits + item * C : nullptr;
    fold_snapshot<InT, R, TEAM>(row, C, g.tl, valid, float(count + 1), mean, m2, ent_sum);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int c = g.tl + r * TEAM;
      if (valid && c < C) {
        mean_g[item * C + c] = mean[r];
        m2_g[item * C + c] = m2[r];
      }
    }
    if (valid && g.tl == 0) ent_g[item] = ent_sum;
  }
}

template <int MAXC, int TEAM>
__global__ void __launch_bounds__(kThreads)
    finalize_kernel(const float* __restrict__ mean_g, const float* __restrict__ m2_g,
                    const float* __restrict__ ent_g, int64_t N, int64_t C, int64_t count,
                    float* __restrict__ scores) {
  constexpr int R = MAXC / TEAM;
  const Geometry<TEAM> g;
  for (int64_t base = g.first; base < N; base += g.step) {
    const int64_t item = base + g.slot;
    const bool valid = item < N;
    float mean[R], m2[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int c = g.tl + r * TEAM;
      const bool here = valid && c < C;
      mean[r] = here ? mean_g[item * C + c] : 0.f;
      m2[r] = here ? m2_g[item * C + c] : 0.f;
    }
    const float ent_sum = valid ? ent_g[item] : 0.f;
    finish_item<R, TEAM>(mean, m2, ent_sum, count, C, g.tl, valid, item, N, scores);
  }
}

template <int MAXC, int TEAM>
struct Config {
  static constexpr int kMaxC = MAXC;
  static constexpr int kTeam = TEAM;
};

// Smallest configuration holding C classes. Per-lane register arrays stay at 16 or 32
// entries; larger C spreads over more lanes of the warp instead.
template <typename F>
void dispatch_classes(int64_t C, F&& f) {
  if (C <= 16) {
    f(Config<16, 1>{});
  } else if (C <= 32) {
    f(Config<32, 1>{});
  } else if (C <= 64) {
    f(Config<64, 4>{});
  } else if (C <= 128) {
    f(Config<128, 8>{});
  } else if (C <= 256) {
    f(Config<256, 16>{});
  } else {
    f(Config<1024, 32>{});
  }
}

template <typename F>
void dispatch_type(LogitType type, F&& f) {
  switch (type) {
    case LogitType::kFloat32:
      f(float{});
      break;
    case LogitType::kFloat16:
      f(__half{});
      break;
    case LogitType::kBFloat16:
      f(__nv_bfloat16{});
      break;
    default:
      throw std::invalid_argument("mpts::cuda::snapshot: unknown logit type");
  }
}

// The bindings validate shapes; these guards only keep a bad call from reading past the
// per-lane register arrays.
void check_classes(int64_t C) {
  if (C < 1 || C > kMaxClassesCuda) {
    throw std::invalid_argument("mpts::cuda::snapshot: number of classes must be in [1, " +
                                std::to_string(kMaxClassesCuda) + "], got " + std::to_string(C));
  }
}

}  // namespace

void snapshot_scores(const void* logits, LogitType type, int64_t S, int64_t stride_s, int64_t N,
                     int64_t C, float* scores, cudaStream_t stream) {
  if (N <= 0) return;
  check_classes(C);
  if (S < 1) throw std::invalid_argument("mpts::cuda::snapshot_scores: need at least one snapshot");
  dispatch_type(type, [&](auto tag) {
    using InT = decltype(tag);
    const InT* p = static_cast<const InT*>(logits);
    dispatch_classes(C, [&](auto cfg) {
      using Cfg = decltype(cfg);
      scores_kernel<InT, Cfg::kMaxC, Cfg::kTeam>
          <<<grid_for(N, kThreads / Cfg::kTeam), kThreads, 0, stream>>>(p, S, stride_s, N, C, scores);
    });
  });
  check(cudaGetLastError(), "scores_kernel launch");
}

void snapshot_accumulate(const void* logits, LogitType type, int64_t N, int64_t C, int64_t count,
                         float* mean, float* m2, float* ent_sum, cudaStream_t stream) {
  if (N <= 0) return;
  check_classes(C);
  if (count < 0) throw std::invalid_argument("mpts::cuda::snapshot_accumulate: negative count");
  dispatch_type(type, [&](auto tag) {
    using InT = decltype(tag);
    const InT* p = static_cast<const InT*>(logits);
    dispatch_classes(C, [&](auto cfg) {
      using Cfg = decltype(cfg);
      accumulate_kernel<InT, Cfg::kMaxC, Cfg::kTeam>
          <<<grid_for(N, kThreads / Cfg::kTeam), kThreads, 0, stream>>>(p, N, C, count, mean, m2, ent_sum);
    });
  });
  check(cudaGetLastError(), "accumulate_kernel launch");
}

void snapshot_finalize(const float* mean, const float* m2, const float* ent_sum, int64_t N,
                       int64_t C, int64_t count, float* scores, cudaStream_t stream) {
  if (N <= 0) return;
  check_classes(C);
  if (count < 1) throw std::invalid_argument("mpts::cuda::snapshot_finalize: count must be >= 1");
  dispatch_classes(C, [&](auto cfg) {
    using Cfg = decltype(cfg);
    finalize_kernel<Cfg::kMaxC, Cfg::kTeam>
        <<<grid_for(N, kThreads / Cfg::kTeam), kThreads, 0, stream>>>(mean, m2, ent_sum, N, C, count, scores);
  });
  check(cudaGetLastError(), "finalize_kernel launch");
}

}  // namespace cuda
}  // namespace mpts
