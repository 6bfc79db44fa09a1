// CUDA implementation of sensitivity_cuda.h. See sensitivity.h for the math.
//
// Per chunk of Pc rows: three GEMMs through the callback (hidden, output, A V) and small
// memory-bound kernels between them. Norms use a NaN-propagating max so a non-finite input
// shows up in phi instead of being silently dropped.
#include "sensitivity_cuda.h"

#include "cuda_common.cuh"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace mpts {
namespace cuda {
namespace {

constexpr int64_t kDefaultChunk = 1024;
// The default chunk also keeps the workspace under ~256 MiB: with many classes and inputs
// one row of A and S is K (J + I) floats, and 1024 of them would not fit.
constexpr int64_t kDefaultBudgetFloats = int64_t(1) << 26;

constexpr CudaCheck check{"sensitivity"};

// Byte offsets of the workspace buffers (see WorkspaceLayout), and the rows per chunk.
struct Layout {
  int64_t chunk = 0;
  size_t y = 0, g = 0, o = 0, a = 0, s = 0, total = 0;
};

Layout make_layout(int64_t P, int64_t I, int64_t J, int64_t K, int64_t chunk) {
  Layout L;
  int64_t pc = chunk;
  if (pc <= 0) {
    const int64_t per_row = 2 * J + K + K * J + K * I;
    pc = std::min<int64_t>(kDefaultChunk, std::max<int64_t>(1, kDefaultBudgetFloats /
                                                                  std::max<int64_t>(1, per_row)));
  }
  pc = std::min(pc, P);
  L.chunk = pc;
  WorkspaceLayout ws;
  auto take = [&ws](size_t floats) { return ws.take(floats * sizeof(float)); };
  const size_t Pc = size_t(pc);
  L.y = take(Pc * size_t(J));             // hidden pre-activation, then y
  L.g = take(Pc * size_t(J));             // y (1 - y)
  L.o = take(Pc * size_t(K));             // output pre-activation, then a, then a * norm
  L.a = take(Pc * size_t(K) * size_t(J));  // A[(p,k), j] = W[k,j] g[p,j]
  L.s = take(Pc * size_t(K) * size_t(I));  // A V
  L.total = ws.total();
  return L;
}

// max that returns NaN if either argument is NaN (fmaxf would return the other one).
__device__ __forceinline__ float nan_max(float a, float b) { return (a != a || a > b) ? a : b; }

__device__ __forceinline__ float sigmoid(float h) { return 1.f / (1.f + expf(-h)); }

// Y: (pc, J) holds x V^T on entry, y on exit; G gets y (1 - y).
__global__ void __launch_bounds__(kThreads)
    hidden_kernel(float* __restrict__ Y, float* __restrict__ G, const float* __restrict__ b_v,
                  int64_t total, int64_t J) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    const float h = Y[idx] + (b_v ? b_v[idx % J] : 0.f);
    const float y = sigmoid(h);
    Y[idx] = y;
    G[idx] = y * (1.f - y);
  }
}

// O: (pc, K) holds y W^T on entry, a on exit.
__global__ void __launch_bounds__(kThreads)
    output_kernel(float* __restrict__ O, const float* __restrict__ b_w, int64_t total, int64_t K) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    const float o = sigmoid(O[idx] + (b_w ? b_w[idx % K] : 0.f));
    O[idx] = o * (1.f - o);
  }
}

__global__ void __launch_bounds__(kThreads) fill_kernel(float* __restrict__ out, int64_t total,
                                                        float value) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    out[idx] = value;
  }
}

// A[(p*K + k)*J + j] = W[k*J + j] * G[p*J + j].
__global__ void __launch_bounds__(kThreads)
    build_a_kernel(float* __restrict__ A, const float* __restrict__ W, const float* __restrict__ G,
                   int64_t total, int64_t J, int64_t K) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    const int64_t j = idx % J;
    const int64_t row = idx / J;
    const int64_t k = row % K;
    const int64_t p = row / K;
    A[idx] = W[k * J + j] * G[p * J + j];
  }
}

// One warp per row (p, k) of S (length I): scale[row] <- scale[row] * |S[row, :]|.
template <int NORM>
__global__ void __launch_bounds__(kThreads)
    row_norm_kernel(const float* __restrict__ S, int64_t rows, int64_t I,
                    float* __restrict__ scale) {
  const int lane = threadIdx.x & 31;
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t nwarps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t row = warp; row < rows; row += nwarps) {
    const float* s = S + row * I;
    float acc = 0.f;
    for (int64_t i = lane; i < I; i += 32) {
      const float v = s[i];
      if constexpr (NORM == int(SensNorm::kL1)) {
        acc += fabsf(v);
      } else if constexpr (NORM == int(SensNorm::kL2)) {
        acc += v * v;
      } else {
        acc = nan_max(acc, fabsf(v));
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float other = __shfl_xor_sync(0xffffffffu, acc, o);
      if constexpr (NORM == int(SensNorm::kInf)) {
        acc = nan_max(acc, other);
      } else {
        acc += other;
      }
    }
    if (lane == 0) {
      const float nrm = NORM == int(SensNorm::kL2) ? sqrtf(acc) : acc;
      scale[row] = scale[row] * nrm;
    }
  }
}

// One warp per p: phi[p] = max_k vals[p*K + k].
__global__ void __launch_bounds__(kThreads)
    max_over_k_kernel(const float* __restrict__ vals, int64_t pc, int64_t K,
                      float* __restrict__ phi) {
  const int lane = threadIdx.x & 31;
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t nwarps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t p = warp; p < pc; p += nwarps) {
    float m = -INFINITY;
    for (int64_t k = lane; k < K; k += 32) m = nan_max(m, vals[p * K + k]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = nan_max(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (lane == 0) phi[p] = m;
  }
}

}  // namespace

size_t sensitivity_workspace_bytes(int64_t P, int64_t I, int64_t J, int64_t K, int64_t chunk) {
  if (P < 0 || I < 0 || J < 0 || K < 0) {
    throw std::invalid_argument("sensitivity_workspace_bytes: negative size");
  }
  return make_layout(P, I, J, K, chunk).total;
}

void sensitivity(const float* x, const float* V, const float* b_v, const float* W, const float* b_w,
                 int64_t P, int64_t I, int64_t J, int64_t K, SensNorm norm, bool sigmoid_output,
                 float* phi, void* workspace, const GemmFn<float>& gemm, cudaStream_t stream,
                 int64_t chunk) {
  if (P < 0 || I < 0 || J < 0 || K < 0) {
    throw std::invalid_argument("mpts::cuda::sensitivity: negative size");
  }
  if (norm != SensNorm::kL1 && norm != SensNorm::kL2 && norm != SensNorm::kInf) {
    throw std::invalid_argument("mpts::cuda::sensitivity: unknown norm");
  }
  if (P == 0) return;
  if (I == 0 || J == 0 || K == 0) {
    // S has no entries (or no rows): every norm, hence every max, is 0.
    check(cudaMemsetAsync(phi, 0, size_t(P) * sizeof(float), stream), "memset phi");
    return;
  }
  const Layout L = make_layout(P, I, J, K, chunk);
  const int64_t Pc = L.chunk;
  char* base = align_ptr(workspace);
  float* Y = reinterpret_cast<float*>(base + L.y);
  float* G = reinterpret_cast<float*>(base + L.g);
  float* O = reinterpret_cast<float*>(base + L.o);
  float* A = reinterpret_cast<float*>(base + L.a);
  float* S = reinterpret_cast<float*>(base + L.s);

  for (int64_t p0 = 0; p0 < P; p0 += Pc) {
    const int64_t pc = std::min(Pc, P - p0);

    gemm(false, true, pc, J, I, 1.f, x + p0 * I, I, V, I, 0.f, Y, J);
    hidden_kernel<<<grid_for(pc * J, kThreads), kThreads, 0, stream>>>(Y, G, b_v, pc * J, J);
    check(cudaGetLastError(), "hidden_kernel launch");

    if (sigmoid_output) {
      gemm(false, true, pc, K, J, 1.f, Y, J, W, J, 0.f, O, K);
      output_kernel<<<grid_for(pc * K, kThreads), kThreads, 0, stream>>>(O, b_w, pc * K, K);
      check(cudaGetLastError(), "output_kernel launch");
    } else {
      fill_kernel<<<grid_for(pc * K, kThreads), kThreads, 0, stream>>>(O, pc * K, 1.f);
      check(cudaGetLastError(), "fill_kernel launch");
    }

    const int64_t rows = pc * K;
    build_a_kernel<<<grid_for(rows * J, kThreads), kThreads, 0, stream>>>(A, W, G, rows * J, J, K);
    check(cudaGetLastError(), "build_a_kernel launch");

    gemm(false, false, rows, I, J, 1.f, A, J, V, I, 0.f, S, I);

    const unsigned ngrid = grid_for(rows, kWarps);
    switch (norm) {
      case SensNorm::kL1:
        row_norm_kernel<int(SensNorm::kL1)><<<ngrid, kThreads, 0, stream>>>(S, rows, I, O);
        break;
      case SensNorm::kL2:
        row_norm_kernel<int(SensNorm::kL2)><<<ngrid, kThreads, 0, stream>>>(S, rows, I, O);
        break;
      case SensNorm::kInf:
        row_norm_kernel<int(SensNorm::kInf)><<<ngrid, kThreads, 0, stream>>>(S, rows, I, O);
        break;
    }
    check(cudaGetLastError(), "row_norm_kernel launch");

    max_over_k_kernel<<<grid_for(pc, kWarps), kThreads, 0, stream>>>(O, pc, K, phi + p0);
    check(cudaGetLastError(), "max_over_k_kernel launch");
  }
}

}  // namespace cuda
}  // namespace mpts
