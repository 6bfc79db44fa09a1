#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "row_norm_gemm_avx512.h"
#include "sensitivity.h"
#include "simd_math.h"

namespace mpts {

namespace {
// s = sigmoid(v) and its slope s (1 - s). The slope is taken as e s^2 (e = exp(-v)) for v >= 0:
// there 1 - s cancels (s rounds towards 1, and a saturated unit's slope of ~e would come out
// with a relative error of eps / e, or as 0), while e s^2 is accurate to a few ulps. For v < 0,
// s (1 - s) is accurate and e may overflow.
// float only: in double, s (1 - s) is kept, which is what autograd's sigmoid backward (the float64
// oracle) computes, down to its underflow to 0 for v > ~37.
inline float sigmoid_and_slope(float v, float& slope) {
  const float e = exp_cephes(-v);
  const float s = 1.0f / (1.0f + e);
  slope = v >= 0.0f ? e * s * s : s * (1.0f - s);
  return s;
}

inline double sigmoid_and_slope(double v, double& slope) {
  const double s = 1.0 / (1.0 + exp_cephes(-v));
  slope = s * (1.0 - s);
  return s;
}

// y[j] = sigmoid(z), g[j] = its slope, z = y[j] + b[j], j < J.
template <typename T>
void sigmoid_bias_row(T* y, T* g, const T* b, int64_t J) {
  for (int64_t j = 0; j < J; ++j) y[j] = sigmoid_and_slope(y[j] + b[j], g[j]);
}

#ifdef MPTS_SIMD_VECTOR_TYPES
// float: 8 lanes at a time with exp_cephes_x8 (GCC keeps exp_cephes's selects as branches in a
// `simd` loop, and a scalar exp per hidden unit was most of a small call's time).
using f8 = VecF<8>;

template <>
void sigmoid_bias_row<float>(float* y, float* g, const float* b, int64_t J) {
  int64_t j = 0;
  for (; j + 8 <= J; j += 8) {
    f8 v, bb;
    std::memcpy(&v, y + j, sizeof(v));
    std::memcpy(&bb, b + j, sizeof(bb));
    v = v + bb;
    const f8 e = exp_cephes_x8(-v);
    const f8 s = 1.0f / (1.0f + e);
    const f8 slope = (v >= 0.0f) ? e * s * s : s * (1.0f - s);
    std::memcpy(y + j, &s, sizeof(s));
    std::memcpy(g + j, &slope, sizeof(slope));
  }
  for (; j < J; ++j) y[j] = sigmoid_and_slope(y[j] + b[j], g[j]);
}
#endif

// The norm of one row s (I) of S, NaN kept in every norm.
template <typename T>
inline T row_norm(const T* s, int64_t I, SensNorm norm) {
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
  return acc;
}

// Per-thread work buffers of one chunk of patterns.
template <typename T>
struct SensBuffers {
  std::vector<T> Y, Gd, O, A, S, rnorm;
  SensBuffers(int64_t chunk, int64_t I, int64_t J, int64_t K)
      : Y(chunk * J), Gd(chunk * J), O(chunk * K), A(chunk * K * J), S(chunk * K * I), rnorm(chunk * K) {}
};

// phi[p] = max_k a_pk rnorm[p K + k] for p < pc, a_pk the output slope at o = O[p K + k] + b_w[k]
// (1 for a linear output); NaN wins.
template <typename T>
void phi_from_row_norms(const T* O, const T* b_w, const T* rnorm, int64_t pc, int64_t K,
                        bool sigmoid_output, T* phi) {
  for (int64_t p = 0; p < pc; ++p) {
    T best = 0;
    for (int64_t k = 0; k < K; ++k) {
      T o = O[p * K + k] + b_w[k];
      T a = T(1);
      if (sigmoid_output) sigmoid_and_slope(o, a);
      const T v = a * rnorm[p * K + k];
      best = (v > best || v != v) ? v : best;
    }
    phi[p] = best;
  }
}

// phi for patterns [p0, p0 + pc): three GEMMs and their epilogues, on the calling thread.
template <typename T>
void sensitivity_chunk(const T* x, const T* V, const T* b_v, const T* W, const T* b_w, int64_t p0,
                       int64_t pc, int64_t I, int64_t J, int64_t K, SensNorm norm,
                       bool sigmoid_output, T* phi, const GemmFn<T>& gemm, SensBuffers<T>& buf) {
  T* Y = buf.Y.data();
  T* O = buf.O.data();
  T* A = buf.A.data();
  T* S = buf.S.data();
  T* rnorm = buf.rnorm.data();
  gemm(false, true, pc, J, I, T(1), x + p0 * I, I, V, I, T(0), Y, J);
  T* Gd = buf.Gd.data();
  for (int64_t p = 0; p < pc; ++p) sigmoid_bias_row(Y + p * J, Gd + p * J, b_v, J);
  gemm(false, true, pc, K, J, T(1), Y, J, W, J, T(0), O, K);
  for (int64_t p = 0; p < pc; ++p) {
    const T* gd = Gd + p * J;
    for (int64_t k = 0; k < K; ++k) {
      const T* w = W + k * J;
      T* arow = A + (p * K + k) * J;
#pragma omp simd
      for (int64_t j = 0; j < J; ++j) arow[j] = w[j] * gd[j];
    }
  }
  gemm(false, false, pc * K, I, J, T(1), A, J, V, I, T(0), S, I);
  for (int64_t r = 0; r < pc * K; ++r) rnorm[r] = row_norm(S + r * I, I, norm);
  phi_from_row_norms(O, b_w, rnorm, pc, K, sigmoid_output, phi + p0);
}

#if defined(__AVX512F__)
namespace rng = row_norm_gemm;

// Per-thread work buffers of one chunk for the packed path.
struct PackedSensBuffers {
  std::vector<float> Y, Gd, O, Ap, rnorm;
  PackedSensBuffers(int64_t chunk, int64_t J, int64_t K)
      : Y(chunk * J), Gd(chunk * J), O(chunk * K),
        Ap(rng::panels(chunk * K, rng::kMR) * rng::kMR * J),
        rnorm(rng::panels(chunk * K, rng::kMR) * rng::kMR) {}
};

// sensitivity_chunk with the (pc K, J) x (J, I) product reduced in registers
// (row_norm_gemm_avx512.h): A is written straight into the micro-kernel's panel layout and S
// never exists. Vp: V packed by rng::pack_b, once per call.
void sensitivity_chunk_packed(const float* x, const float* V, const float* Vp, const float* b_v,
                              const float* W, const float* b_w, int64_t p0, int64_t pc, int64_t I,
                              int64_t J, int64_t K, SensNorm norm, bool sigmoid_output, float* phi,
                              const GemmFn<float>& gemm, PackedSensBuffers& buf) {
  float* Y = buf.Y.data();
  float* Gd = buf.Gd.data();
  float* O = buf.O.data();
  gemm(false, true, pc, J, I, 1.0f, x + p0 * I, I, V, I, 0.0f, Y, J);
  for (int64_t p = 0; p < pc; ++p) sigmoid_bias_row(Y + p * J, Gd + p * J, b_v, J);
  gemm(false, true, pc, K, J, 1.0f, Y, J, W, J, 0.0f, O, K);
  // Row r = p K + k of A is W[k, :] * g[p, :]; a panel holds rows m kMR .. m kMR + kMR - 1,
  // stored j-major. Rows past pc K are zero.
  const int64_t rows = pc * K, row_panels = rng::panels(rows, rng::kMR);
  for (int64_t m = 0; m < row_panels; ++m) {
    const float* w[rng::kMR];
    const float* g[rng::kMR];
    for (int64_t l = 0; l < rng::kMR; ++l) {
      const int64_t r = m * rng::kMR + l;
      w[l] = r < rows ? W + (r % K) * J : nullptr;
      g[l] = r < rows ? Gd + (r / K) * J : nullptr;
    }
    float* dst = buf.Ap.data() + m * rng::kMR * J;
    for (int64_t j = 0; j < J; ++j)
      for (int64_t l = 0; l < rng::kMR; ++l)
        dst[j * rng::kMR + l] = w[l] ? w[l][j] * g[l][j] : 0.0f;
  }
  rng::row_norms(buf.Ap.data(), row_panels, Vp, rng::panels(I, rng::kNR), J, norm,
                 buf.rnorm.data());
  phi_from_row_norms(O, b_w, buf.rnorm.data(), pc, K, sigmoid_output, phi + p0);
}
#endif  // __AVX512F__

// Small calls (the selective-learning study: P ~ 100, I = 4..13, J = 256, K = 3) on the calling
// thread, without GEMM calls: at these shapes the BLAS runs far below its rate (N = I = 4
// columns; on this AMD machine MKL's small-GEMM paths reached ~2.5 GMAC/s) and each call costs
// microseconds of dispatch. Instead
//   M[(k,i), j] = W[k,j] V[j,i]   (K I x J, once per call)
//   S[p,k,i]   = a_pk sum_j g_pj M[(k,i), j]
// are dot products over j, taken for 8 patterns at once so that 8 independent accumulators hide
// the FMA latency and each load of M serves 8 FMAs. Same multiply-adds as the GEMM form, no (P K, J) operand.
template <typename T>
void sensitivity_small(const T* x, const T* V, const T* b_v, const T* W, const T* b_w, int64_t P,
                       int64_t I, int64_t J, int64_t K, SensNorm norm, bool sigmoid_output,
                       T* phi) {
  constexpr int64_t kB = 8;
  std::vector<T> Vt(I * J), M(K * I * J), yrow(J), g(kB * J), s(kB * K * I), o(kB * K), rn(kB * K);
  std::vector<double> zrow(J), Vtd(I * J), Wd(K * J);
  for (int64_t j = 0; j < J; ++j)
    for (int64_t i = 0; i < I; ++i) Vt[i * J + j] = V[j * I + i];
  for (int64_t e = 0; e < I * J; ++e) Vtd[e] = Vt[e];
  for (int64_t e = 0; e < K * J; ++e) Wd[e] = W[e];
  for (int64_t k = 0; k < K; ++k)
    for (int64_t i = 0; i < I; ++i) {
      T* mrow = M.data() + (k * I + i) * J;
      const T* w = W + k * J;
      const T* vt = Vt.data() + i * J;
#pragma omp simd
      for (int64_t j = 0; j < J; ++j) mrow[j] = w[j] * vt[j];
    }
  for (int64_t p0 = 0; p0 < P; p0 += kB) {
    const int64_t pb = std::min(kB, P - p0);
    // y = sigmoid(x V^T + b_v), o = y W^T + b_w, g = the slopes y (1 - y); rows of g past pb stay 0.
    for (int64_t q = 0; q < kB; ++q) {
      T* y = yrow.data();
      T* gq = g.data() + q * J;
      if (q >= pb) {
        std::fill(gq, gq + J, T(0));
        continue;
      }
      // The two short dot products (length I and J) accumulate in double: with large weights
      // their terms cancel (|x_i V_ji| ~ 30 for a pre-activation ~ 0.2), a float32 sum keeps
      // only ~6 digits of the result, and the output slope o (1 - o) and the hidden slopes
      // amplify that error. The long sensitivity sums below stay in T. Cheap at these sizes.
      const T* xp = x + (p0 + q) * I;
      double* z = zrow.data();
      std::fill(z, z + J, 0.0);
      for (int64_t i = 0; i < I; ++i) {
        const double xi = xp[i];
        const double* vt = Vtd.data() + i * J;
#pragma omp simd
        for (int64_t j = 0; j < J; ++j) z[j] += xi * vt[j];
      }
#pragma omp simd
      for (int64_t j = 0; j < J; ++j) y[j] = static_cast<T>(z[j]);
      sigmoid_bias_row(y, gq, b_v, J);
#pragma omp simd
      for (int64_t j = 0; j < J; ++j) z[j] = y[j];
      for (int64_t k = 0; k < K; ++k) {
        const double* w = Wd.data() + k * J;
        double acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t j = 0; j < J; ++j) acc += z[j] * w[j];
        o[q * K + k] = static_cast<T>(acc);
      }
    }
    const T* g0 = g.data();
    const T *g1 = g0 + J, *g2 = g0 + 2 * J, *g3 = g0 + 3 * J, *g4 = g0 + 4 * J, *g5 = g0 + 5 * J,
            *g6 = g0 + 6 * J, *g7 = g0 + 7 * J;
    for (int64_t r = 0; r < K * I; ++r) {
      const T* mrow = M.data() + r * J;
      T a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3, a4, a5, a6, a7)
      for (int64_t j = 0; j < J; ++j) {
        const T mv = mrow[j];
        a0 += g0[j] * mv;
        a1 += g1[j] * mv;
        a2 += g2[j] * mv;
        a3 += g3[j] * mv;
        a4 += g4[j] * mv;
        a5 += g5[j] * mv;
        a6 += g6[j] * mv;
        a7 += g7[j] * mv;
      }
      const T acc[kB] = {a0, a1, a2, a3, a4, a5, a6, a7};
      for (int64_t q = 0; q < kB; ++q) s[q * K * I + r] = acc[q];
    }
    for (int64_t r = 0; r < pb * K; ++r) rn[r] = row_norm(s.data() + r * I, I, norm);
    phi_from_row_norms(o.data(), b_w, rn.data(), pb, K, sigmoid_output, phi + p0);
  }
}

// Whether every one of v[0..n) is finite.
template <typename T>
bool all_finite(const T* v, int64_t n) {
  int bad = 0;
#pragma omp simd reduction(| : bad)
  for (int64_t i = 0; i < n; ++i) {
    const T d = v[i] - v[i];  // 0 for a finite value, NaN for NaN and +-inf
    bad |= int(d != d);
  }
  return bad == 0;
}

// phi[p] = NaN for every pattern whose row of x, or whose network (V, b_v, W, b_w), holds a NaN
// or an infinity. The arithmetic alone propagates NaN but can lose an infinity (sigmoid(+inf) = 1
// has g = 0), so this makes "phi finite" prove "inputs finite": ops.sensitivity checks one sum
// of phi instead of reading every input to the host before the call.
template <typename T>
void mark_nonfinite(const T* x, const T* V, const T* b_v, const T* W, const T* b_w, int64_t P,
                    int64_t I, int64_t J, int64_t K, T* phi) {
  const bool net_ok = all_finite(V, J * I) && all_finite(b_v, J) && all_finite(W, K * J) &&
                      all_finite(b_w, K);
  for (int64_t p = 0; p < P; ++p)
    if (!net_ok || !all_finite(x + p * I, I)) phi[p] = std::numeric_limits<T>::quiet_NaN();
}

// Large calls: chunks of patterns spread over threads.
template <typename T>
void sensitivity_parallel(const T* x, const T* V, const T* b_v, const T* W, const T* b_w,
                          int64_t P, int64_t I, int64_t J, int64_t K, SensNorm norm,
                          bool sigmoid_output, T* phi, const GemmFn<T>& gemm, int64_t chunk) {
  // 32 patterns x K rows keep the (32 K, I) GEMM output in L2 for the reduction (1 MB at K = 10,
  // I = 785) while the GEMM itself stays large enough to run at the BLAS rate. Measured at
  // P = 8,000, J = 512 on 2 cores, medians: 32 patterns 467 ms quiet / 1153 ms with both cores
  // held, 64 patterns 523 / 1293 ms; 128 and 256 ran at two thirds of 64's rate; 16 and 48 like 32.
  if (chunk <= 0) chunk = 32;
  chunk = std::min(chunk, P);
  const int64_t nchunks = (P + chunk - 1) / chunk;
  // One parallel region per call: each thread takes whole chunks (dynamic, so a thread whose
  // core is taken by another process simply takes fewer) and runs the chunk's three GEMMs and
  // epilogues on its own. Parallelising inside each chunk instead (a region and a multi-threaded
  // GEMM per step) meant six fork/joins per chunk, each waiting for the slowest thread:
  // on a loaded machine that made the op slower than the plain einsum. Inside an active region
  // at::mm and MKL run single-threaded, so every chunk is computed the same way whatever the
  // thread count, and phi does not depend on it.
#if defined(__AVX512F__)
  // float with AVX-512: the sensitivity product through the register-blocked row-norm GEMM.
  // Not below 32 inputs, where a 32-column panel would be mostly padding.
  if constexpr (std::is_same_v<T, float>) {
    if (I >= rng::kNR) {
      std::vector<float> Vp(rng::panels(I, rng::kNR) * rng::kNR * J);
      rng::pack_b(V, J, I, Vp.data());
#pragma omp parallel
      {
        PackedSensBuffers buf(chunk, J, K);
#pragma omp for schedule(dynamic, 1)
        for (int64_t ci = 0; ci < nchunks; ++ci)
          sensitivity_chunk_packed(x, V, Vp.data(), b_v, W, b_w, ci * chunk,
                                   std::min(chunk, P - ci * chunk), I, J, K, norm,
                                   sigmoid_output, phi, gemm, buf);
      }
      return;
    }
  }
#endif
#pragma omp parallel
  {
    SensBuffers<T> buf(chunk, I, J, K);
#pragma omp for schedule(dynamic, 1)
    for (int64_t ci = 0; ci < nchunks; ++ci)
      sensitivity_chunk(x, V, b_v, W, b_w, ci * chunk, std::min(chunk, P - ci * chunk), I, J, K,
                        norm, sigmoid_output, phi, gemm, buf);
  }
}

}  // namespace

template <typename T>
void sensitivity_cpu(const T* x, const T* V, const T* b_v, const T* W, const T* b_w, int64_t P,
                     int64_t I, int64_t J, int64_t K, SensNorm norm, bool sigmoid_output, T* phi,
                     const GemmFn<T>& gemm, int64_t chunk) {
  if (P == 0) return;
  // Multiply-adds of the whole call: x V^T, y W^T and the (P K, J) x (J, I) sensitivity GEMM.
  const int64_t work = P * J * (I + K + K * I);
  // Below ~3M multiply-adds (the selective-learning study's Iris and Wine calls are 0.6M and
  // 2M) the call runs on the calling thread (sensitivity_small): starting a parallel region
  // costs more than it saves there, and under load a region waits for a thread whose core
  // another process holds. The choice depends on the sizes only, never on the thread
  // count, so phi stays independent of it.
  // float only: float64 keeps the GEMM path and its rounding (its tests compare with a float64
  // autograd oracle down to slopes that underflow to exactly 0, which any change of summation
  // order flips), and the study runs in float32.
  constexpr int64_t kSerialWork = 3'000'000;
  if (std::is_same_v<T, float> && work < kSerialWork) {
    sensitivity_small(x, V, b_v, W, b_w, P, I, J, K, norm, sigmoid_output, phi);
  } else {
    sensitivity_parallel(x, V, b_v, W, b_w, P, I, J, K, norm, sigmoid_output, phi, gemm, chunk);
  }
  mark_nonfinite(x, V, b_v, W, b_w, P, I, J, K, phi);
}

template void sensitivity_cpu<float>(const float*, const float*, const float*, const float*,
                                     const float*, int64_t, int64_t, int64_t, int64_t, SensNorm,
                                     bool, float*, const GemmFn<float>&, int64_t);
template void sensitivity_cpu<double>(const double*, const double*, const double*, const double*,
                                      const double*, int64_t, int64_t, int64_t, int64_t, SensNorm,
                                      bool, double*, const GemmFn<double>&, int64_t);

}  // namespace mpts
