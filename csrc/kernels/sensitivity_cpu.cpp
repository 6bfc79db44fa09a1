#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "sensitivity.h"

namespace mpts {

namespace {
template <typename T>
inline T sigmoid(T v) {
  return T(1) / (T(1) + fast_exp(-v));
}
}  // namespace

template <typename T>
void sensitivity_cpu(const T* x, const T* V, const T* b_v, const T* W, const T* b_w, int64_t P,
                     int64_t I, int64_t J, int64_t K, SensNorm norm, bool sigmoid_output, T* phi,
                     const GemmFn<T>& gemm, int64_t chunk) {
  if (P == 0) return;
  // 64 patterns x K rows keep the (64 K, I) GEMM output in L2 for the reduction while the
  // GEMM itself stays large enough to run at the BLAS rate.
  if (chunk <= 0) chunk = 64;
  chunk = std::min(chunk, P);
  const int64_t nchunks = (P + chunk - 1) / chunk;
  // One parallel region per call: each thread takes whole chunks (dynamic, so a thread whose
  // core is taken by another process simply takes fewer) and runs the chunk's three GEMMs and
  // epilogues on its own. Parallelising inside each chunk instead (a region and a multi-threaded
  // GEMM per step) meant six fork/joins per 64 patterns, each waiting for the slowest thread:
  // on a loaded machine that made the op slower than the plain einsum. Inside an active region
  // at::mm and MKL run single-threaded, so every chunk is computed the same way whatever the
  // thread count, and phi does not depend on it.
#pragma omp parallel
  {
    std::vector<T> Y(chunk * J), O(chunk * K), A(chunk * K * J), S(chunk * K * I), rnorm(chunk * K);
#pragma omp for schedule(dynamic, 1)
    for (int64_t ci = 0; ci < nchunks; ++ci) {
      const int64_t p0 = ci * chunk;
      const int64_t pc = std::min(chunk, P - p0);
      gemm(false, true, pc, J, I, T(1), x + p0 * I, I, V, I, T(0), Y.data(), J);
      for (int64_t p = 0; p < pc; ++p) {
        T* y = Y.data() + p * J;
#pragma omp simd
        for (int64_t j = 0; j < J; ++j) y[j] = sigmoid(y[j] + b_v[j]);
      }
      gemm(false, true, pc, K, J, T(1), Y.data(), J, W, J, T(0), O.data(), K);
      for (int64_t p = 0; p < pc; ++p) {
        const T* y = Y.data() + p * J;
        for (int64_t k = 0; k < K; ++k) {
          const T* w = W + k * J;
          T* arow = A.data() + (p * K + k) * J;
#pragma omp simd
          for (int64_t j = 0; j < J; ++j) arow[j] = w[j] * (y[j] * (T(1) - y[j]));
        }
      }
      gemm(false, false, pc * K, I, J, T(1), A.data(), J, V, I, T(0), S.data(), I);
      for (int64_t r = 0; r < pc * K; ++r) {
        const T* s = S.data() + r * I;
        T acc = 0;
        if (norm == SensNorm::kL1) {
#pragma omp simd reduction(+ : acc)
          for (int64_t i = 0; i < I; ++i) acc += std::abs(s[i]);
        } else if (norm == SensNorm::kL2) {
#pragma omp simd reduction(+ : acc)
          for (int64_t i = 0; i < I; ++i) acc += s[i] * s[i];
          acc = std::sqrt(acc);
        } else {
          // std::max and OpenMP's max reduction drop NaN (max(0, NaN) is 0); the l1/l2 sums and
          // the CUDA kernel's nan_max keep it, so a non-finite input shows up in phi in every norm.
          int nan = 0;
#pragma omp simd reduction(max : acc) reduction(| : nan)
          for (int64_t i = 0; i < I; ++i) {
            const T a = std::abs(s[i]);
            acc = std::max(acc, a);
            nan |= int(a != a);
          }
          if (nan) acc = std::numeric_limits<T>::quiet_NaN();
        }
        rnorm[r] = acc;
      }
      for (int64_t p = 0; p < pc; ++p) {
        T best = 0;
        for (int64_t k = 0; k < K; ++k) {
          T o = O[p * K + k] + b_w[k];
          T a = T(1);
          if (sigmoid_output) {
            o = sigmoid(o);
            a = o * (T(1) - o);
          }
          const T v = a * rnorm[p * K + k];
          best = (v > best || v != v) ? v : best;
        }
        phi[p0 + p] = best;
      }
    }
  }
}

template void sensitivity_cpu<float>(const float*, const float*, const float*, const float*,
                                     const float*, int64_t, int64_t, int64_t, int64_t, SensNorm,
                                     bool, float*, const GemmFn<float>&, int64_t);
template void sensitivity_cpu<double>(const double*, const double*, const double*, const double*,
                                      const double*, int64_t, int64_t, int64_t, int64_t, SensNorm,
                                      bool, double*, const GemmFn<double>&, int64_t);

}  // namespace mpts
