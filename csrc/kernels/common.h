// Shared pieces of the framework-free kernel library: the GEMM callback type and
// vectorisable exp/log for the CPU epilogues.
//
// The kernels never own a BLAS. Pairwise and sensitivity kernels are "GEMM + fused
// epilogue": the caller hands in a GEMM (at::mm in the PyTorch binding, cuBLAS on CUDA,
// gemm_naive for plain C++ users) and the kernel runs the epilogue on each tile, so no
// n x m or P x K x I intermediate ever exists.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>

namespace mpts {

// Row-major C (M x N) = alpha * op(A) * op(B) + beta * C, op(A) is M x K, op(B) is K x N.
// lda/ldb/ldc are row strides of the stored (untransposed) matrices. Pointers live on the
// device the kernel runs on; a CUDA GEMM must run on the stream the kernel was given.
template <typename T>
using GemmFn = std::function<void(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                                  T alpha, const T* A, int64_t lda, const T* B, int64_t ldb,
                                  T beta, T* C, int64_t ldc)>;

// A portable, OpenMP-parallel GEMM for C++ users without a BLAS. Correct, not fast.
template <typename T>
void gemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// exp/log written as straight-line float code so `#pragma omp simd` loops vectorise them
// (libm's expf is a call the compiler cannot vectorise without -ffast-math, and -ffast-math
// would also delete the NaN propagation the ops rely on to report non-finite inputs).
// Cephes polynomials: ~1 ulp on the normal range; results below FLT_MIN flush to 0, and
// fast_exp(-inf) is exactly 0 (the snapshot kernels rely on it for masked classes).
inline float fast_exp(float x) {
  const bool under = x < -87.3365f;
  const bool over = x > 88.7228f;
  float xc = x < -87.3365f ? -87.3365f : (x > 88.7228f ? 88.7228f : x);
  const float fx = std::nearbyint(xc * 1.44269504088896341f);
  float r = xc - fx * 0.693359375f;
  r = r - fx * -2.12194440e-4f;
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(fx) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  float out = p * scale;
  out = under ? 0.0f : out;
  out = over ? INFINITY : out;
  return x != x ? x : out;  // NaN in, NaN out
}

inline float fast_log(float x) {
  // Valid for normal positive x; callers guard x <= FLT_MIN themselves.
  int32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  float e = static_cast<float>(((bits >> 23) & 0xff) - 126);
  bits = (bits & 0x007fffff) | 0x3f000000;  // mantissa in [0.5, 1)
  float m;
  std::memcpy(&m, &bits, sizeof(m));
  const bool small = m < 0.707106781186547524f;
  e = small ? e - 1.0f : e;
  m = small ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float y = 7.0376836292E-2f;
  y = y * m - 1.1514610310E-1f;
  y = y * m + 1.1676998740E-1f;
  y = y * m - 1.2420140846E-1f;
  y = y * m + 1.4249322787E-1f;
  y = y * m - 1.6668057665E-1f;
  y = y * m + 2.0000714765E-1f;
  y = y * m - 2.4999993993E-1f;
  y = y * m + 3.3333331174E-1f;
  y = y * m * z;
  y += e * -2.12194440e-4f;
  y += -0.5f * z;
  return m + y + e * 0.693359375f;
}

inline double fast_exp(double x) { return std::exp(x); }
inline double fast_log(double x) { return std::log(x); }

template <typename T>
struct Limits;
template <>
struct Limits<float> {
  static constexpr float tiny = 1.17549435e-38f;
};
template <>
struct Limits<double> {
  static constexpr double tiny = 2.2250738585072014e-308;
};

// x * log(x) with 0 log 0 = 0 (and subnormal x treated as 0: |x log x| < 1e-36 there).
template <typename T>
inline T xlogx(T x) {
  const T safe = x > Limits<T>::tiny ? x : T(1);
  return x > Limits<T>::tiny ? x * fast_log(safe) : T(0);
}

}  // namespace mpts
