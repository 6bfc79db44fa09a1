// CUDA implementation of select_cuda.h. See select.h for the loops' contract.
//
// Launch shape: G blocks of kThreads, block b owns rows [b R, (b + 1) R) for a fixed R, so the
// block partition (and with it the summation order of every block sum) is the same on every
// pick. Inside a block, warp w takes rows lo + w, lo + w + kWarps, ...; its lanes stride over
// the row's columns (coalesced) and reduce with xor shuffles.
//
// Ties (k-center): the order (value desc, index asc) is total, so the combination is the same
// whatever order blocks finish in: the lowest index among equal maxima wins, as on the CPU.
#include "select_cuda.h"

#include "cuda_common.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace mpts {
namespace cuda {
namespace {

constexpr int64_t kMaxPickBlocks = 1024;  // the combination walks one value per block
constexpr int64_t kMinRowsPerBlock = 64;

constexpr CudaCheck check{"select"};

// The fixed partition of N rows: rows per block and block count.
struct Partition {
  int64_t rows;
  int64_t blocks;
};

Partition partition_rows(int64_t N) {
  const int64_t rows = std::max<int64_t>(kMinRowsPerBlock, (N + kMaxPickBlocks - 1) / kMaxPickBlocks);
  return {rows, grid_for(N, rows, kMaxPickBlocks)};
}

// Workspace layout (all zeroed once by the caller; the ticket is reset by each last block).
struct Workspace {
  unsigned int* ticket;  // 1
  float* best;           // G
  int64_t* arg;          // G
  double* sum;           // G
  int64_t* count;        // G
};

Workspace carve(void* base, int64_t G) {
  char* p = static_cast<char*>(base);
  Workspace ws;
  ws.ticket = reinterpret_cast<unsigned int*>(p);
  p += 16;
  ws.sum = reinterpret_cast<double*>(p);
  p += G * sizeof(double);
  ws.count = reinterpret_cast<int64_t*>(p);
  p += G * sizeof(int64_t);
  ws.arg = reinterpret_cast<int64_t*>(p);
  p += G * sizeof(int64_t);
  ws.best = reinterpret_cast<float*>(p);
  return ws;
}

// ||x_i - x_c||^2, computed by one warp (every lane returns the sum).
template <typename InT>
struct FeatureDist {
  const InT* x;
  int64_t d;
  __device__ __forceinline__ float operator()(int64_t i, int64_t c, int lane) const {
    const InT* a = x + i * d;
    const InT* b = x + c * d;
    float acc = 0.f;
    for (int64_t j = lane; j < d; j += 32) {
      const float v = to_float(a[j]) - to_float(__ldg(b + j));
      acc = fmaf(v, v, acc);
    }
    return warp_sum(acc);
  }
};

// Factored BADGE distance, max(0, a_i + a_c - 2 (q_i . q_c)(h_i . h_c)).
template <typename InT>
struct BadgeDist {
  const float* q;
  int64_t C;
  const InT* h;
  int64_t D;
  const float* a;
  __device__ __forceinline__ float operator()(int64_t i, int64_t c, int lane) const {
    float qq = 0.f, hh = 0.f;
    for (int64_t j = lane; j < C; j += 32) qq = fmaf(q[i * C + j], __ldg(q + c * C + j), qq);
    for (int64_t j = lane; j < D; j += 32)
      hh = fmaf(to_float(h[i * D + j]), to_float(__ldg(h + c * D + j)), hh);
    qq = warp_sum(qq);
    hh = warp_sum(hh);
    // explicit roundings (never contracted into an FMA): the product is rounded as in a_i, so
    // an exact copy of the centre gets exactly 0, as on the CPU
    const float v = __fsub_rn(__fadd_rn(a[i], a[c]), __fmul_rn(2.f, __fmul_rn(qq, hh)));
    return v > 0.f ? v : 0.f;
  }
};

__device__ __forceinline__ bool better(float v, int64_t i, float bv, int64_t bi) {
  return i >= 0 && (bi < 0 || v > bv || (v == bv && i < bi));
}

// Combination by the last block (warp 0 only): k-center.
__device__ int64_t final_argmax(const Workspace& ws, int64_t G, int lane) {
  float bv = -1.f;
  int64_t bi = -1;
  for (int64_t g = lane; g < G; g += 32) {
    const float v = __ldcg(ws.best + g);
    const int64_t i = static_cast<int64_t>(__ldcg(reinterpret_cast<const long long*>(ws.arg) + g));
    if (better(v, i, bv, bi)) {
      bv = v;
      bi = i;
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const long long oi = __shfl_xor_sync(0xffffffffu, static_cast<long long>(bi), o);
    if (better(ov, oi, bv, bi)) {
      bv = ov;
      bi = oi;
    }
  }
  return bi;
}

// Combination by the last block (warp 0 only): k-means++ draw with uniform u.
// Blocks are walked serially by lane 0 (G <= 1024 doubles); inside the chosen block, the warp
// scans 32 rows at a time with a shuffle prefix sum and a ballot.
__device__ int64_t final_draw(const Workspace& ws, int64_t G, int64_t R, int64_t N,
                              const float* mind, double u, int lane) {
  __shared__ long long s_block;
  __shared__ double s_rem;
  __shared__ int s_uniform;
  if (lane == 0) {
    double total = 0;
    long long cnt = 0;
    for (int64_t g = 0; g < G; ++g) {
      total += __ldcg(ws.sum + g);
      cnt += __ldcg(reinterpret_cast<const long long*>(ws.count) + g);
    }
    long long blk = -1;
    double rem = 0;
    int uniform = 0;
    if (cnt == 0) {
      blk = -2;
    } else if (total > 0 && total <= 1.79e308) {
      rem = u * total;
      long long last_pos = -1;
      for (int64_t g = 0; g < G; ++g) {
        const double sg = __ldcg(ws.sum + g);
        if (sg > 0) last_pos = g;
        if (sg > rem) {
          blk = g;
          break;
        }
        rem -= sg;
      }
      if (blk < 0) {  // rounding put u * total at the very end: the last positive block
        blk = last_pos;
        rem = 1.79e308;
      }
    } else {
      uniform = 1;
      long long target = static_cast<long long>(u * static_cast<double>(cnt));
      target = target < 0 ? 0 : (target >= cnt ? cnt - 1 : target);
      for (int64_t g = 0; g < G; ++g) {
        const long long cg = __ldcg(reinterpret_cast<const long long*>(ws.count) + g);
        if (target < cg) {
          blk = g;
          break;
        }
        target -= cg;
      }
      rem = static_cast<double>(target);
    }
    s_block = blk;
    s_rem = rem;
    s_uniform = uniform;
  }
  __syncwarp();
  const long long blk = s_block;
  if (blk < 0) return -1;
  const double rem = s_rem;
  const bool uniform = s_uniform != 0;
  const int64_t lo = blk * R, hi = min(N, lo + R);
  double run = 0;
  int64_t last = -1;
  for (int64_t base = lo; base < hi; base += 32) {
    const int64_t i = base + lane;
    // other blocks wrote these rows in this launch: read through L2, not a stale L1 line
    const float m = i < hi ? __ldcg(mind + i) : -1.f;
    const bool eligible = m >= 0.f;
    double w = uniform ? (eligible ? 1.0 : 0.0) : (eligible ? static_cast<double>(m) : 0.0);
    // inclusive prefix over the warp
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const double up = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= o) w += up;
    }
    const double incl = run + w;
    const bool positive = uniform ? eligible : (eligible && m > 0.f);
    // uniform: the (rem)-th eligible row is the first whose inclusive count exceeds rem
    const unsigned hit = __ballot_sync(0xffffffffu, positive && incl > rem);
    if (hit) return base + __ffs(hit) - 1;
    const unsigned pos = __ballot_sync(0xffffffffu, positive);
    if (pos) last = base + 31 - __clz(pos);
    run = __shfl_sync(0xffffffffu, incl, 31);
  }
  return last;  // rounding only: the block's last positive-weight row
}

template <typename Dist, bool kSample>
__global__ void __launch_bounds__(kThreads)
    pick_kernel(Dist dist, int64_t N, int64_t R, int64_t G, float* __restrict__ mind, int64_t t,
                int64_t* __restrict__ picks, const double* __restrict__ u, Workspace ws) {
  __shared__ float s_best[kWarps];
  __shared__ long long s_arg[kWarps];
  __shared__ double s_sum[kWarps];
  __shared__ long long s_count[kWarps];
  __shared__ bool s_last;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t c = t > 0 ? picks[t - 1] : -1;
  const int64_t lo = static_cast<int64_t>(blockIdx.x) * R, hi = min(N, lo + R);

  float bv = -1.f;
  int64_t bi = -1;
  double sum = 0;
  long long count = 0;
  for (int64_t i = lo + warp; i < hi; i += kWarps) {
    float m = mind[i];  // uniform across the warp
    if (m < 0.f) continue;
    if (c >= 0) {
      const float v = dist(i, c, lane);
      if (v < m) {
        m = v;
        if (lane == 0) mind[i] = v;
      }
    }
    if (kSample) {
      sum += static_cast<double>(m);
      ++count;
    } else if (m > bv) {  // rows rise within a warp: strict > keeps the lowest index
      bv = m;
      bi = i;
    }
  }
  __threadfence();  // this thread's mind writes visible before the block takes its ticket
  if (lane == 0) {
    s_best[warp] = bv;
    s_arg[warp] = bi;
    s_sum[warp] = sum;
    s_count[warp] = count;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float v = -1.f;
    int64_t a = -1;
    double s = 0;
    long long n = 0;
    for (int w = 0; w < kWarps; ++w) {
      if (better(s_best[w], s_arg[w], v, a)) {
        v = s_best[w];
        a = s_arg[w];
      }
      s += s_sum[w];
      n += s_count[w];
    }
    ws.best[blockIdx.x] = v;
    ws.arg[blockIdx.x] = a;
    ws.sum[blockIdx.x] = s;
    ws.count[blockIdx.x] = n;
    __threadfence();  // results visible to the block that takes the last ticket
    const unsigned ticket = atomicAdd(ws.ticket, 1u);
    s_last = ticket == static_cast<unsigned>(G - 1);
  }
  __syncthreads();
  if (!s_last || warp != 0) return;
  __threadfence();
  const int64_t w = kSample ? final_draw(ws, G, R, N, mind, u[t], lane) : final_argmax(ws, G, lane);
  if (lane == 0) {
    picks[t] = w;
    if (w >= 0) mind[w] = -1.f;
    *ws.ticket = 0u;  // ready for the next launch (stream order)
  }
}

__global__ void set_first_kernel(int64_t first, int64_t* picks, float* mind) {
  picks[0] = first;
  mind[first] = -1.f;
}

template <typename Dist, bool kSample>
void run_loop(const Dist& dist, int64_t N, float* mind, int64_t first, int64_t k, const double* u,
              int64_t* picks, void* workspace, cudaStream_t stream) {
  if (k <= 0 || N <= 0) return;
  const Partition g = partition_rows(N);
  const Workspace ws = carve(workspace, g.blocks);
  int64_t t0 = 0;
  if (first >= 0) {
    set_first_kernel<<<1, 1, 0, stream>>>(first, picks, mind);
    check(cudaGetLastError(), "set_first launch");
    t0 = 1;
  }
  for (int64_t t = t0; t < k; ++t) {
    pick_kernel<Dist, kSample><<<static_cast<unsigned>(g.blocks), kThreads, 0, stream>>>(
        dist, N, g.rows, g.blocks, mind, t, picks, u, ws);
  }
  check(cudaGetLastError(), "pick_kernel launch");
}

template <typename InT>
__global__ void __launch_bounds__(kThreads)
    badge_sqnorms_kernel(const float* __restrict__ q, int64_t C, const InT* __restrict__ h,
                         int64_t D, int64_t N, float* __restrict__ a) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarps;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5); i < N;
       i += warps) {
    // the same loop shapes as BadgeDist, so a duplicate of a centre gets exactly 0
    float qq = 0.f, hh = 0.f;
    for (int64_t j = lane; j < C; j += 32) qq = fmaf(q[i * C + j], q[i * C + j], qq);
    for (int64_t j = lane; j < D; j += 32) {
      const float v = to_float(h[i * D + j]);
      hh = fmaf(v, v, hh);
    }
    qq = warp_sum(qq);
    hh = warp_sum(hh);
    if (lane == 0) a[i] = __fmul_rn(qq, hh);
  }
}

template <template <typename> class Fn, typename... Args>
void dispatch_rows(RowType type, Args&&... args) {
  switch (type) {
    case RowType::kFloat32:
      Fn<float>::run(args...);
      break;
    case RowType::kFloat16:
      Fn<__half>::run(args...);
      break;
    case RowType::kBFloat16:
      Fn<__nv_bfloat16>::run(args...);
      break;
    default:
      throw std::runtime_error("mpts::cuda::select: unknown row type");
  }
}

template <typename InT>
struct KCenterRun {
  static void run(const void* x, int64_t N, int64_t d, float* mind, int64_t first, int64_t k,
                  int64_t* picks, void* ws, cudaStream_t s) {
    run_loop<FeatureDist<InT>, false>(FeatureDist<InT>{static_cast<const InT*>(x), d}, N, mind,
                                      first, k, nullptr, picks, ws, s);
  }
};

template <typename InT>
struct KMeansRun {
  static void run(const void* x, int64_t N, int64_t d, float* mind, int64_t first, int64_t k,
                  const double* u, int64_t* picks, void* ws, cudaStream_t s) {
    run_loop<FeatureDist<InT>, true>(FeatureDist<InT>{static_cast<const InT*>(x), d}, N, mind,
                                     first, k, u, picks, ws, s);
  }
};

template <typename InT>
struct BadgeNormsRun {
  static void run(const float* q, int64_t C, const void* h, int64_t D, int64_t N, float* a,
                  cudaStream_t s) {
    if (N <= 0) return;
    badge_sqnorms_kernel<InT><<<grid_for(N, kWarps, int64_t(1) << 16), kThreads, 0, s>>>(
        q, C, static_cast<const InT*>(h), D, N, a);
    check(cudaGetLastError(), "badge_sqnorms launch");
  }
};

template <typename InT>
struct BadgeRun {
  static void run(const float* q, int64_t C, const void* h, int64_t D, const float* a, int64_t N,
                  float* mind, int64_t first, int64_t k, const double* u, int64_t* picks,
                  void* ws, cudaStream_t s) {
    run_loop<BadgeDist<InT>, true>(BadgeDist<InT>{q, C, static_cast<const InT*>(h), D, a}, N,
                                   mind, first, k, u, picks, ws, s);
  }
};

}  // namespace

size_t select_workspace_bytes(int64_t N) {
  const int64_t G = partition_rows(std::max<int64_t>(N, 1)).blocks;
  return 16 + static_cast<size_t>(G) * (sizeof(double) + 2 * sizeof(int64_t) + sizeof(float));
}

void kcenter_greedy(const void* x, RowType type, int64_t N, int64_t d, float* mind, int64_t first,
                    int64_t k, int64_t* picks, void* workspace, cudaStream_t stream) {
  dispatch_rows<KCenterRun>(type, x, N, d, mind, first, k, picks, workspace, stream);
}

void kmeanspp(const void* x, RowType type, int64_t N, int64_t d, float* mind, int64_t first,
              int64_t k, const double* u, int64_t* picks, void* workspace, cudaStream_t stream) {
  dispatch_rows<KMeansRun>(type, x, N, d, mind, first, k, u, picks, workspace, stream);
}

void badge_sqnorms(const float* q, int64_t C, const void* h, RowType type, int64_t D, int64_t N,
                   float* a, cudaStream_t stream) {
  dispatch_rows<BadgeNormsRun>(type, q, C, h, D, N, a, stream);
}

void badge_kmeanspp(const float* q, int64_t C, const void* h, RowType type, int64_t D,
                    const float* a, int64_t N, float* mind, int64_t first, int64_t k,
                    const double* u, int64_t* picks, void* workspace, cudaStream_t stream) {
  dispatch_rows<BadgeRun>(type, q, C, h, D, a, N, mind, first, k, u, picks, workspace, stream);
}

}  // namespace cuda
}  // namespace mpts
