#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "rbf_mmd.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mpts {

bool make_mmd_scales(const double* scales, int num, MmdScales* out) {
  if (num < 1 || num > MmdScales::kMax) return false;
  std::vector<double> s(scales, scales + num);
  for (double v : s)
    if (!(v > 0.0) || !std::isfinite(v)) return false;
  std::sort(s.begin(), s.end(), std::greater<double>());
  out->num = num;
  for (int q = 0; q < num; ++q) {
    out->inv[q] = 1.0 / s[q];
    out->squarings[q] = -1;
    if (q == 0) continue;
    // An exact power-of-two ratio lets exp(-D/s_q) be exp(-D/s_{q-1}) squared t times,
    // which is exact up to rounding (the default 2x ladder needs one exp for all terms).
    const double ratio = s[q - 1] / s[q];
    int t = 0;
    const double mant = std::frexp(ratio, &t);  // ratio = mant * 2^t, mant in [0.5, 1)
    if (mant == 0.5 && t - 1 >= 0 && t - 1 <= 3) out->squarings[q] = t - 1;
  }
  return true;
}

MmdWeights make_mmd_weights(int64_t n, int64_t m, bool unbiased) {
  const double dn = static_cast<double>(n), dm = static_cast<double>(m);
  if (unbiased) return {1.0 / (dn * (dn - 1.0)), 1.0 / (dm * (dm - 1.0)), -1.0 / (dn * dm), false};
  return {1.0 / (dn * dn), 1.0 / (dm * dm), -1.0 / (dn * dm), true};
}

template <typename T>
void gemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      T acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        const T a = trans_a ? A[k * lda + i] : A[i * lda + k];
        const T b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        acc += a * b;
      }
      C[i * ldc + j] = alpha * acc + (beta == T(0) ? T(0) : beta * C[i * ldc + j]);
    }
  }
}
template void gemm_naive<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                                const float*, int64_t, float, float*, int64_t);
template void gemm_naive<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*,
                                 int64_t, const double*, int64_t, double, double*, int64_t);

namespace {

// Distances, kernel values and weights for one tile, in place over the Gram block G.
// Returns the tile's sum of c * k (without the off-diagonal multiplicity). Each row is
// processed in L1-sized column chunks, one simple loop per step, so every loop vectorises.
template <typename T>
T direct_sqdist(const T* a, const T* b, int64_t d) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < d; ++k) {
    const T t = a[k] - b[k];
    s += t * t;
  }
  return s;
}

template <typename T>
double mmd_tile_epilogue(T* G, int64_t i0, int64_t bi, int64_t j0, int64_t bj, int64_t n,
                         const T* rn, const T* z, int64_t d, const MmdScales& sc,
                         const MmdWeights& wt, bool want_w, T* rowsum_w, T* colsum_w_partial,
                         int nthreads) {
  constexpr int64_t kChunk = 256;
  // ||a||^2 + ||b||^2 - 2 a.b cancels for near-identical rows: its error is ~eps (||a||^2 +
  // ||b||^2), so identical rows at different indices get a few ulps of ||z||^2 instead of 0.
  // Distances below sqrt(eps) of that scale are recomputed directly (exact for duplicates);
  // in generic data such pairs are rare, so the vectorised GEMM form still does the work.
  const T near_rel = std::sqrt(std::numeric_limits<T>::epsilon());
  const int Q = sc.num;
  T inv[MmdScales::kMax];
  for (int q = 0; q < Q; ++q) inv[q] = static_cast<T>(sc.inv[q]);
  const T cxx = static_cast<T>(wt.xx), cyy = static_cast<T>(wt.yy), cxy = static_cast<T>(wt.xy);
  const bool drop_diag = !wt.include_diagonal;
  double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total) num_threads(nthreads)
  for (int64_t a = 0; a < bi; ++a) {
    alignas(64) T Dv[kChunk], ev[kChunk], kv[kChunk], kpv[kChunk];
    const int64_t i = i0 + a;
    const T c_same = (i < n) ? cxx : cxy;   // partner in x
    const T c_other = (i < n) ? cxy : cyy;  // partner in y
    const T rni = rn[i];
    T* g = G + a * bj;
    T row_kx = 0, row_ky = 0, row_w = 0;
    for (int64_t b0 = 0; b0 < bj; b0 += kChunk) {
      const int64_t len = std::min(kChunk, bj - b0);
      const int64_t jb = j0 + b0;
      const T* gb = g + b0;
      const T* rnj = rn + jb;
#pragma omp simd
      for (int64_t b = 0; b < len; ++b) {
        T D = rni + rnj[b] - T(2) * gb[b];
        D = D > T(0) ? D : T(0);
        D = (i == jb + b) ? T(0) : D;  // exact zero self-distance, whatever the GEMM rounding
        Dv[b] = D;
      }
      for (int64_t b = 0; b < len; ++b)
        if (Dv[b] < near_rel * (rni + rnj[b]) && i != jb + b)
          Dv[b] = direct_sqdist(z + i * d, z + (jb + b) * d, d);
#pragma omp simd
      for (int64_t b = 0; b < len; ++b) {
        const T D = Dv[b];
        const T e = fast_exp(-D * inv[0]);
        ev[b] = e;
        kv[b] = e;
        kpv[b] = -e * inv[0];
      }
      for (int q = 1; q < Q; ++q) {
        const int t = sc.squarings[q];
        if (t >= 0) {
          for (int r = 0; r < t; ++r) {
#pragma omp simd
            for (int64_t b = 0; b < len; ++b) ev[b] = ev[b] * ev[b];
          }
        } else {
#pragma omp simd
          for (int64_t b = 0; b < len; ++b) ev[b] = fast_exp(-Dv[b] * inv[q]);
        }
        const T iq = inv[q];
#pragma omp simd
        for (int64_t b = 0; b < len; ++b) {
          kv[b] += ev[b];
          kpv[b] -= ev[b] * iq;
        }
      }
      T* gw = g + b0;
#pragma omp simd reduction(+ : row_kx, row_ky, row_w)
      for (int64_t b = 0; b < len; ++b) {
        const int64_t j = jb + b;
        const bool dropped = drop_diag && i == j;
        T c = (j < n) ? c_same : c_other;
        c = dropped ? T(0) : c;
        const T k = dropped ? T(0) : kv[b];
        row_kx += (j < n) ? k : T(0);
        row_ky += (j < n) ? T(0) : k;
        // A self-pair adds w_aa (z_a - z_a) = 0 to the gradient; dropping it keeps the
        // z_a * rowsum - (W Z)_a form from cancelling a huge w_aa at small bandwidths.
        const T w = (i == j) ? T(0) : c * kpv[b];
        row_w += w;
        gw[b] = w;  // the Gram entry is dead once D is known
      }
    }
    // Kernel sums are weighted per row in double: rounding 1/n^2 etc. to T per pair would
    // leave ~Q ulps of bias where the exact MMD is 0 (e.g. identical samples).
    total += (i < n ? wt.xx : wt.xy) * static_cast<double>(row_kx) +
             (i < n ? wt.xy : wt.yy) * static_cast<double>(row_ky);
    if (want_w) rowsum_w[i] += row_w;
  }
  if (want_w && colsum_w_partial != nullptr) {
    // Column sums for the transposed contribution of an off-diagonal tile.
    for (int64_t b = 0; b < bj; ++b) colsum_w_partial[b] = 0;
    for (int64_t a = 0; a < bi; ++a) {
      const T* g = G + a * bj;
#pragma omp simd
      for (int64_t b = 0; b < bj; ++b) colsum_w_partial[b] += g[b];
    }
  }
  return total;
}

}  // namespace

template <typename T>
double rbf_mmd2_cpu(const T* z, int64_t n, int64_t m, int64_t d, const MmdScales& scales,
                    const MmdWeights& weights, T* grad_z, const GemmFn<T>& gemm, int64_t tile) {
  const int64_t N = n + m;
  if (N == 0) return 0.0;
  const bool want_grad = grad_z != nullptr;
  if (tile <= 0) tile = 1024;
  tile = std::min(tile, N);

  std::vector<T> rn(N);
#pragma omp parallel for schedule(static)
  for (int64_t a = 0; a < N; ++a) {
    const T* r = z + a * d;
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < d; ++k) s += r[k] * r[k];
    rn[a] = s;
  }

  std::vector<T> G(static_cast<size_t>(tile) * tile);
  std::vector<T> rowsum_w(want_grad ? N : 0, T(0));
  std::vector<T> colsum(want_grad ? tile : 0);
  if (want_grad) std::fill(grad_z, grad_z + N * d, T(0));  // accumulates sum_b w_ab z_b first

  int nthreads = 1;
#ifdef _OPENMP
  nthreads = omp_get_max_threads();
#endif
  double total = 0.0;
  for (int64_t i0 = 0; i0 < N; i0 += tile) {
    const int64_t bi = std::min(tile, N - i0);
    for (int64_t j0 = i0; j0 < N; j0 += tile) {
      const int64_t bj = std::min(tile, N - j0);
      const bool diag = (i0 == j0);
      gemm(false, true, bi, bj, d, T(1), z + i0 * d, d, z + j0 * d, d, T(0), G.data(), bj);
      const double part = mmd_tile_epilogue<T>(G.data(), i0, bi, j0, bj, n, rn.data(), z, d,
                                               scales, weights, want_grad, rowsum_w.data(),
                                               (want_grad && !diag) ? colsum.data() : nullptr,
                                               nthreads);
      total += diag ? part : 2.0 * part;
      if (!want_grad) continue;
      gemm(false, false, bi, d, bj, T(1), G.data(), bj, z + j0 * d, d, T(1), grad_z + i0 * d, d);
      if (!diag) {
        gemm(true, false, bj, d, bi, T(1), G.data(), bj, z + i0 * d, d, T(1), grad_z + j0 * d, d);
        for (int64_t b = 0; b < bj; ++b) rowsum_w[j0 + b] += colsum[b];
      }
    }
  }

  if (want_grad) {
#pragma omp parallel for schedule(static)
    for (int64_t a = 0; a < N; ++a) {
      T* g = grad_z + a * d;
      const T* r = z + a * d;
      const T s = rowsum_w[a];
#pragma omp simd
      for (int64_t k = 0; k < d; ++k) g[k] = T(4) * (r[k] * s - g[k]);
    }
  }
  return total;
}

template double rbf_mmd2_cpu<float>(const float*, int64_t, int64_t, int64_t, const MmdScales&,
                                    const MmdWeights&, float*, const GemmFn<float>&, int64_t);
template double rbf_mmd2_cpu<double>(const double*, int64_t, int64_t, int64_t, const MmdScales&,
                                     const MmdWeights&, double*, const GemmFn<double>&, int64_t);

}  // namespace mpts
