// CUDA implementation of rbf_mmd_cuda.h. See rbf_mmd.h for the math and the tiling.
//
// Determinism: every sum has a fixed order (one block per tile row, tiles in sequence on
// one stream, a single-block final reduction), so no atomics and repeatable results for a
// given GEMM.
#include "rbf_mmd_cuda.h"

#include "cuda_common.cuh"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace mpts {
namespace cuda {
namespace {

constexpr int64_t kDefaultTile = 4096;

constexpr CudaCheck check{"rbf_mmd2"};

// Byte offsets of the workspace buffers (see WorkspaceLayout).
struct Layout {
  int64_t tile = 0;
  size_t rn = 0, rs = 0, vrow = 0, g = 0, wz = 0, total = 0;
};

Layout make_layout(int64_t n, int64_t m, int64_t d, bool with_grad, int64_t tile) {
  Layout L;
  const int64_t N = n + m;
  L.tile = std::min<int64_t>(tile > 0 ? tile : kDefaultTile, N);
  WorkspaceLayout ws;
  L.rn = ws.take(size_t(N) * sizeof(float));
  L.rs = ws.take(size_t(N) * sizeof(float));
  L.vrow = ws.take(size_t(N) * sizeof(double));
  L.g = ws.take(size_t(L.tile) * size_t(L.tile) * sizeof(float));
  L.wz = with_grad ? ws.take(size_t(N) * size_t(d) * sizeof(float)) : 0;
  L.total = ws.total();
  return L;
}

struct DevScales {
  int num;
  int squarings[MmdScales::kMax];
  float inv[MmdScales::kMax];
};

// Squared row norms, one warp per row.
__global__ void __launch_bounds__(kThreads)
    row_sqnorm_kernel(const float* __restrict__ z, int64_t N, int64_t d, float* __restrict__ rn) {
  const int lane = threadIdx.x & 31;
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t nwarps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t a = warp; a < N; a += nwarps) {
    const float* row = z + a * d;
    float acc = 0.f;
    for (int64_t k = lane; k < d; k += 32) acc += row[k] * row[k];
    acc = warp_sum(acc);
    if (lane == 0) rn[a] = acc;
  }
}

// ||a||^2 + ||b||^2 - 2 a.b cancels for near-identical rows: its error is ~eps (||a||^2 +
// ||b||^2), so duplicates at different indices would get a few ulps of ||z||^2 instead of 0 (and
// the MMD^2 of a sample with itself would not be 0). Distances below sqrt(FLT_EPSILON) of that
// scale are recomputed directly, as rbf_mmd_cpu.cpp does; in generic data such pairs are rare.
constexpr float kNearRel = 3.45266983e-4f;  // sqrt(FLT_EPSILON)

__device__ __forceinline__ float direct_sqdist(const float* __restrict__ a, const float* __restrict__ b,
                                               int64_t d) {
  float s = 0.f;
  for (int64_t k = 0; k < d; ++k) {
    const float t = a[k] - b[k];
    s += t * t;
  }
  return s;
}

// Fused tile epilogue: G (bi x bj, row stride bj) holds z_I z_J^T on entry and, when kGrad,
// w = c k'(D) on exit. One block per tile row, so the row's accumulators have one owner.
template <bool kGrad>
__global__ void __launch_bounds__(kThreads)
    tile_epilogue_kernel(float* __restrict__ G, const float* __restrict__ rn,
                         const float* __restrict__ z, int64_t d, int64_t i0,
                         int64_t j0, int64_t bi, int64_t bj, int64_t n, DevScales sc, float wxx,
                         float wyy, float wxy, double dxx, double dyy, double dxy, bool incl_diag,
                         double mult, float* __restrict__ rs, double* __restrict__ vrow) {
  __shared__ double shd[32];
  __shared__ float shf[32];
  for (int64_t ii = blockIdx.x; ii < bi; ii += gridDim.x) {
    const int64_t i = i0 + ii;
    const float rni = rn[i];
    const bool ix = i < n;
    const float cx = ix ? wxx : wxy;  // weight against x columns
    const float cy = ix ? wxy : wyy;  // weight against y columns
    float* grow = G + ii * bj;
    // k is summed per column class and weighted once in double: the value is a difference
    // of nearly equal sums, so the weights should not round each term.
    float kx = 0.f, ky = 0.f;
    [[maybe_unused]] float wsum = 0.f;
    for (int64_t jj = threadIdx.x; jj < bj; jj += blockDim.x) {
      const int64_t j = j0 + jj;
      const bool diag = (i == j);
      const float rnj = rn[j];
      float D = rni + rnj - 2.f * grow[jj];
      D = D < 0.f ? 0.f : D;  // written so that NaN survives (fmaxf would drop it)
      if (!diag && D < kNearRel * (rni + rnj)) D = direct_sqdist(z + i * d, z + j * d, d);
      if (diag) D = 0.f;
      float k = 0.f, kp = 0.f, e = 0.f;
#pragma unroll
      for (int q = 0; q < MmdScales::kMax; ++q) {
        if (q < sc.num) {
          if (sc.squarings[q] >= 0) {
            for (int t = 0; t < sc.squarings[q]; ++t) e *= e;
          } else {
            e = expf(-D * sc.inv[q]);
          }
          k += e;
          kp -= e * sc.inv[q];
        }
      }
      const bool jx = j < n;
      float c = jx ? cx : cy;
      if (diag && !incl_diag) {
        c = 0.f;
        k = 0.f;
      }
      if (jx) {
        kx += k;
      } else {
        ky += k;
      }
      if constexpr (kGrad) {
        const float w = diag ? 0.f : c * kp;  // self-pairs add nothing to the gradient
        grow[jj] = w;
        wsum += w;
      }
    }
    const double sx = block_sum<double>(double(kx), shd);
    const double sy = block_sum<double>(double(ky), shd);
    [[maybe_unused]] float ws = 0.f;
    if constexpr (kGrad) ws = block_sum<float>(wsum, shf);
    if (threadIdx.x == 0) {
      vrow[i] += mult * ((ix ? dxx : dxy) * sx + (ix ? dxy : dyy) * sy);
      if constexpr (kGrad) rs[i] += ws;
    }
  }
}

// Column sums of w into rs[j0 + jj] for off-diagonal tiles (the (J, I) half of the pairs).
// 32 columns per block, 32 row lanes each; a fixed-order combine keeps it deterministic.
__global__ void __launch_bounds__(1024)
    tile_colsum_kernel(const float* __restrict__ G, int64_t bi, int64_t bj, int64_t j0,
                       float* __restrict__ rs) {
  __shared__ float sh[32][33];
  for (int64_t cb = blockIdx.x; cb * 32 < bj; cb += gridDim.x) {
    const int64_t jj = cb * 32 + threadIdx.x;
    float s = 0.f;
    if (jj < bj) {
      for (int64_t ii = threadIdx.y; ii < bi; ii += 32) s += G[ii * bj + jj];
    }
    sh[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && jj < bj) {
      float t = 0.f;
      for (int r = 0; r < 32; ++r) t += sh[r][threadIdx.x];
      rs[j0 + jj] += t;
    }
    __syncthreads();
  }
}

__global__ void __launch_bounds__(kThreads)
    grad_kernel(const float* __restrict__ z, const float* __restrict__ rs,
                const float* __restrict__ wz, int64_t total, int64_t d, float* __restrict__ grad) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    grad[idx] = 4.f * (z[idx] * rs[idx / d] - wz[idx]);
  }
}

constexpr int kReduceThreads = 1024;

__global__ void __launch_bounds__(kReduceThreads)
    reduce_value_kernel(const double* __restrict__ vrow, int64_t N, double* __restrict__ out) {
  __shared__ double sh[32];
  double s = 0.0;
  for (int64_t a = threadIdx.x; a < N; a += blockDim.x) s += vrow[a];
  s = block_sum<double>(s, sh);
  if (threadIdx.x == 0) *out = s;
}

}  // namespace

size_t rbf_mmd2_workspace_bytes(int64_t n, int64_t m, int64_t d, bool with_grad, int64_t tile) {
  if (n < 0 || m < 0 || d < 0) throw std::invalid_argument("rbf_mmd2_workspace_bytes: negative size");
  return make_layout(n, m, d, with_grad, tile).total;
}

void rbf_mmd2(const float* z, int64_t n, int64_t m, int64_t d, const MmdScales& scales,
              const MmdWeights& weights, double* value_out, float* grad_z, void* workspace,
              const GemmFn<float>& gemm, cudaStream_t stream, int64_t tile) {
  if (n < 0 || m < 0 || d < 0) throw std::invalid_argument("mpts::cuda::rbf_mmd2: negative size");
  if (scales.num < 0 || scales.num > MmdScales::kMax) {
    throw std::invalid_argument("mpts::cuda::rbf_mmd2: bad number of scales");
  }
  const int64_t N = n + m;
  if (N == 0) {
    check(cudaMemsetAsync(value_out, 0, sizeof(double), stream), "memset value");
    return;
  }
  const bool with_grad = grad_z != nullptr;
  const Layout L = make_layout(n, m, d, with_grad, tile);
  const int64_t T = L.tile;

  char* base = align_ptr(workspace);
  float* rn = reinterpret_cast<float*>(base + L.rn);
  float* rs = reinterpret_cast<float*>(base + L.rs);
  double* vrow = reinterpret_cast<double*>(base + L.vrow);
  float* G = reinterpret_cast<float*>(base + L.g);
  float* WZ = with_grad ? reinterpret_cast<float*>(base + L.wz) : nullptr;

  DevScales sc;
  sc.num = scales.num;
  for (int q = 0; q < MmdScales::kMax; ++q) {
    sc.squarings[q] = q < scales.num ? scales.squarings[q] : -1;
    sc.inv[q] = q < scales.num ? float(scales.inv[q]) : 0.f;
  }

  check(cudaMemsetAsync(vrow, 0, size_t(N) * sizeof(double), stream), "memset");
  if (with_grad) {
    check(cudaMemsetAsync(rs, 0, size_t(N) * sizeof(float), stream), "memset");
    if (d > 0) check(cudaMemsetAsync(WZ, 0, size_t(N) * size_t(d) * sizeof(float), stream), "memset");
  }

  row_sqnorm_kernel<<<grid_for(N, kWarps), kThreads, 0, stream>>>(z, N, d, rn);
  check(cudaGetLastError(), "row_sqnorm_kernel launch");

  const int64_t nb = (N + T - 1) / T;
  for (int64_t bI = 0; bI < nb; ++bI) {
    const int64_t i0 = bI * T;
    const int64_t bi = std::min(T, N - i0);
    for (int64_t bJ = bI; bJ < nb; ++bJ) {
      const int64_t j0 = bJ * T;
      const int64_t bj = std::min(T, N - j0);
      const bool diag_tile = bI == bJ;
      if (d > 0) {
        gemm(false, true, bi, bj, d, 1.f, z + i0 * d, d, z + j0 * d, d, 0.f, G, bj);
      } else {
        check(cudaMemsetAsync(G, 0, size_t(bi) * size_t(bj) * sizeof(float), stream), "memset");
      }
      const double mult = diag_tile ? 1.0 : 2.0;
      const unsigned grid = grid_for(bi, 1);  // one block per tile row
      if (with_grad) {
        tile_epilogue_kernel<true><<<grid, kThreads, 0, stream>>>(
            G, rn, z, d, i0, j0, bi, bj, n, sc, float(weights.xx), float(weights.yy),
            float(weights.xy), weights.xx, weights.yy, weights.xy, weights.include_diagonal,
            mult, rs, vrow);
      } else {
        tile_epilogue_kernel<false><<<grid, kThreads, 0, stream>>>(
            G, rn, z, d, i0, j0, bi, bj, n, sc, float(weights.xx), float(weights.yy),
            float(weights.xy), weights.xx, weights.yy, weights.xy, weights.include_diagonal,
            mult, rs, vrow);
      }
      check(cudaGetLastError(), "tile_epilogue_kernel launch");
      if (!with_grad) continue;
      if (!diag_tile) {
        tile_colsum_kernel<<<grid_for(bj, 32), dim3(32, 32), 0, stream>>>(G, bi, bj, j0, rs);
        check(cudaGetLastError(), "tile_colsum_kernel launch");
      }
      if (d > 0) {
        gemm(false, false, bi, d, bj, 1.f, G, bj, z + j0 * d, d, 1.f, WZ + i0 * d, d);
        if (!diag_tile) {
          gemm(true, false, bj, d, bi, 1.f, G, bj, z + i0 * d, d, 1.f, WZ + j0 * d, d);
        }
      }
    }
  }

  if (with_grad && d > 0) {
    const int64_t total = N * d;
    grad_kernel<<<grid_for(total, kThreads), kThreads, 0, stream>>>(z, rs, WZ, total, d, grad_z);
    check(cudaGetLastError(), "grad_kernel launch");
  }
  reduce_value_kernel<<<1, kReduceThreads, 0, stream>>>(vrow, N, value_out);
  check(cudaGetLastError(), "reduce_value_kernel launch");
}

}  // namespace cuda
}  // namespace mpts
