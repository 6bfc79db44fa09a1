// Row norms of a float GEMM product, |(A B)[r, :]|_norm, without storing the product: an AVX-512
// register-blocked GEMM whose epilogue reduces each 12 x 32 tile to 12 partial norms.
//
// Why not at::mm and then a norm pass: at sensitivity's shape (a chunk's 320 rows x J = 512 by
// I = 785 columns, one thread per chunk) MKL's single-threaded sgemm ran at 54-71 GFLOP/s on this
// AMD Zen 4 machine (its AVX-512 paths are Intel-only), while this 12 x 32 micro-kernel, 24
// accumulators fed by two 64-byte loads and twelve broadcasts per step, ran at 114-117 GFLOP/s
// on one core (a plain 12-chain FMA loop measured 106-110: the peak of one core).
// B's panel (J x 32) is read from L2 for each row panel and the A panel (J x 12) from L1/L2: at
// 24 FMAs per 176 bytes loaded, L2 bandwidth is not a limit.
//
// Layouts (both zero-padded, so padded rows and columns add exact zeros to every norm):
//   A packed: row panels of kMR rows, each J x kMR (for j: the panel's kMR values of column j)
//   B packed: column panels of kNR columns, each J x kNR
// Sums run over j in order 0..J-1 per element and over column panels in order, so the result
// depends on the sizes only.
#pragma once

#if defined(__AVX512F__)

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "sensitivity.h"

namespace mpts::row_norm_gemm {

constexpr int64_t kMR = 12;
constexpr int64_t kNR = 32;

inline int64_t panels(int64_t n, int64_t width) { return (n + width - 1) / width; }

// B (J x I, row stride I) into panels(I, kNR) column panels of J x kNR.
inline void pack_b(const float* B, int64_t J, int64_t I, float* out) {
  const int64_t np = panels(I, kNR);
  for (int64_t q = 0; q < np; ++q) {
    const int64_t c0 = q * kNR, nc = std::min(kNR, I - c0);
    float* dst = out + q * J * kNR;
    for (int64_t j = 0; j < J; ++j) {
      const float* src = B + j * I + c0;
      float* d = dst + j * kNR;
      for (int64_t c = 0; c < nc; ++c) d[c] = src[c];
      for (int64_t c = nc; c < kNR; ++c) d[c] = 0.0f;
    }
  }
}

// acc[r] (r < kMR) folds in the norm terms of one tile: (a panel) x (b panel) over j < J.
//   l1: acc += sum |c|    l2: acc += sum c^2    inf: acc = max(acc, max |c|), NaN kept
template <SensNorm kNorm>
inline void tile(const float* __restrict a, const float* __restrict b, int64_t J,
                 float* __restrict acc) {
  __m512 c0[kMR], c1[kMR];
  for (int r = 0; r < kMR; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  for (int64_t j = 0; j < J; ++j) {
    const __m512 b0 = _mm512_loadu_ps(b + j * kNR), b1 = _mm512_loadu_ps(b + j * kNR + 16);
    const float* aj = a + j * kMR;
#pragma GCC unroll 12
    for (int r = 0; r < kMR; ++r) {
      const __m512 av = _mm512_set1_ps(aj[r]);
      c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < kMR; ++r) {
    if constexpr (kNorm == SensNorm::kL1) {
      acc[r] += _mm512_reduce_add_ps(_mm512_add_ps(_mm512_abs_ps(c0[r]), _mm512_abs_ps(c1[r])));
    } else if constexpr (kNorm == SensNorm::kL2) {
      acc[r] += _mm512_reduce_add_ps(_mm512_fmadd_ps(c0[r], c0[r], _mm512_mul_ps(c1[r], c1[r])));
    } else {
      // vmaxps drops a NaN operand, so NaN is tracked separately (the other norms keep it by
      // arithmetic, and phi must show a non-finite input in every norm).
      const __mmask16 nan = _mm512_cmp_ps_mask(c0[r], c1[r], _CMP_UNORD_Q);
      const float m =
          _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(c0[r]), _mm512_abs_ps(c1[r])));
      if (nan || acc[r] != acc[r]) {
        acc[r] = std::numeric_limits<float>::quiet_NaN();
      } else {
        acc[r] = std::max(acc[r], m);
      }
    }
  }
}

template <SensNorm kNorm>
void row_norms_impl(const float* a_packed, int64_t row_panels, const float* b_packed,
                    int64_t col_panels, int64_t J, float* out) {
  std::fill(out, out + row_panels * kMR, 0.0f);
  // Column panel outside: its J x kNR floats stay in L1/L2 while every row panel passes by.
  for (int64_t q = 0; q < col_panels; ++q)
    for (int64_t m = 0; m < row_panels; ++m)
      tile<kNorm>(a_packed + m * J * kMR, b_packed + q * J * kNR, J, out + m * kMR);
  if (kNorm == SensNorm::kL2)
    for (int64_t r = 0; r < row_panels * kMR; ++r) out[r] = std::sqrt(out[r]);
}

// out[r] = |(A B)[r, :]|_norm for r < row_panels * kMR (padded rows included).
inline void row_norms(const float* a_packed, int64_t row_panels, const float* b_packed,
                      int64_t col_panels, int64_t J, SensNorm norm, float* out) {
  switch (norm) {
    case SensNorm::kL1:
      return row_norms_impl<SensNorm::kL1>(a_packed, row_panels, b_packed, col_panels, J, out);
    case SensNorm::kL2:
      return row_norms_impl<SensNorm::kL2>(a_packed, row_panels, b_packed, col_panels, J, out);
    default:
      return row_norms_impl<SensNorm::kInf>(a_packed, row_panels, b_packed, col_panels, J, out);
  }
}

}  // namespace mpts::row_norm_gemm

#endif  // __AVX512F__
