#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "rbf_mmd.h"
#include "simd_math.h"

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

// Rows [a0, a0 + as) of one tile: distances, kernel values and weights, in place over the Gram
// block G (row a of the tile at G + a * bj). Returns those rows' sum of c * k (without the
// off-diagonal multiplicity) and adds each row's sum of weights to rowsum_w. Each row is
// processed in L1-sized column chunks, one simple loop per step, so every loop vectorises.
// Serial: the caller hands strips of rows to threads.
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
double mmd_strip_epilogue(T* G, int64_t a0, int64_t as, int64_t i0, int64_t j0, int64_t bj,
                          int64_t n, const T* rn, const T* z, int64_t d, const MmdScales& sc,
                          const MmdWeights& wt, bool want_w, T* rowsum_w) {
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
  alignas(64) T Dv[kChunk], ev[kChunk], kv[kChunk], kpv[kChunk];
  for (int64_t a = a0; a < a0 + as; ++a) {
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
        const T e = exp_cephes(-D * inv[0]);
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
          for (int64_t b = 0; b < len; ++b) ev[b] = exp_cephes(-Dv[b] * inv[q]);
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
  return total;
}

struct MmdTile {
  int64_t i0, j0;
};

}  // namespace

// Threading: ONE OpenMP region per call; threads share each tile's work in strips of kStrip
// rows (phase 1: Gram strip, epilogue, the strip's own gradient rows) and kStrip columns
// (phase 2, off-diagonal tiles: the transposed contribution to the column block's gradient
// rows), handed out dynamically, with a single-threaded GEMM per strip (inside an active region
// ATen/MKL run sequentially). The previous form -- a multi-threaded GEMM, a statically split
// epilogue region and serial column sums per tile, ~4 fork/joins per tile -- made every step wait
// for the thread whose core another process had taken; measured with one of two cores held it
// slowed 2.99x where torch.mm slowed 2.26x. Now a thread that gets less CPU simply takes fewer
// strips, and the only waits are one barrier per tile (plus one where a row block's gradient
// rows are about to be written by both phases).
//
// Results do not depend on the thread count: strip boundaries are fixed, every strip is computed
// by one thread with the same sequential GEMM, each gradient row and rowsum entry is written by
// one strip at a time in tile order (the barriers order phases that touch the same rows), and
// the value's per-strip partial sums are added in a fixed order at the end.
template <typename T>
double rbf_mmd2_cpu(const T* z, int64_t n, int64_t m, int64_t d, const MmdScales& scales,
                    const MmdWeights& weights, T* grad_z, const GemmFn<T>& gemm, int64_t tile) {
  const int64_t N = n + m;
  if (N == 0) return 0.0;
  const bool want_grad = grad_z != nullptr;
  if (tile <= 0) tile = 1024;
  tile = std::min(tile, N);
  // 64 rows keep a strip's GEMMs at the BLAS rate (packing the 1024 x d partner block is ~1/64
  // of the strip's work) while giving 16 strips per full tile to share among threads.
  constexpr int64_t kStrip = 64;
  const int64_t strips_per_tile = (tile + kStrip - 1) / kStrip;

  std::vector<MmdTile> tiles;  // upper triangle of the block grid, row block by row block
  for (int64_t i0 = 0; i0 < N; i0 += tile)
    for (int64_t j0 = i0; j0 < N; j0 += tile) tiles.push_back({i0, j0});
  const int64_t ntiles = static_cast<int64_t>(tiles.size());

  std::vector<T> rn(N);
  // Two Gram buffers: phase 2 of tile t (reading its weights) runs on while phase 1 of tile t+1
  // fills the other one.
  std::vector<T> G0(static_cast<size_t>(tile) * tile);
  std::vector<T> G1(want_grad ? static_cast<size_t>(tile) * tile : 0);
  std::vector<T> rowsum_w(want_grad ? N : 0, T(0));
  std::vector<double> partial(static_cast<size_t>(ntiles * strips_per_tile), 0.0);

#pragma omp parallel
  {
#pragma omp for schedule(dynamic, 256)
    for (int64_t a = 0; a < N; ++a) {
      const T* r = z + a * d;
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t k = 0; k < d; ++k) s += r[k] * r[k];
      rn[a] = s;
      // grad_z accumulates sum_b w_ab z_b first
      if (want_grad) std::fill(grad_z + a * d, grad_z + (a + 1) * d, T(0));
    }  // implicit barrier: rn and the zeroed gradient are complete

    for (int64_t t = 0; t < ntiles; ++t) {
      const int64_t i0 = tiles[t].i0, j0 = tiles[t].j0;
      const int64_t bi = std::min(tile, N - i0), bj = std::min(tile, N - j0);
      const bool diag = (i0 == j0);
      T* Gt = (want_grad && (t & 1)) ? G1.data() : G0.data();
      const int64_t row_strips = (bi + kStrip - 1) / kStrip;
      // Phase 1. Its closing barrier also ends the previous tile's phase 2 (nowait below).
#pragma omp for schedule(dynamic, 1)
      for (int64_t s = 0; s < row_strips; ++s) {
        const int64_t a0 = s * kStrip, as = std::min(kStrip, bi - a0);
        T* Gs = Gt + a0 * bj;
        gemm(false, true, as, bj, d, T(1), z + (i0 + a0) * d, d, z + j0 * d, d, T(0), Gs, bj);
        partial[t * strips_per_tile + s] = mmd_strip_epilogue<T>(
            Gt, a0, as, i0, j0, bj, n, rn.data(), z, d, scales, weights, want_grad, rowsum_w.data());
        if (want_grad)
          gemm(false, false, as, d, bj, T(1), Gs, bj, z + j0 * d, d, T(1), grad_z + (i0 + a0) * d, d);
      }
      if (!want_grad || diag) continue;
      // Phase 2: column strips of the tile push G^T z_I into the column block's gradient rows
      // and its column sums into rowsum_w. Rows j0.. are disjoint from the rows i0.. that the
      // next tile's phase 1 writes unless that tile starts row block j0: then wait here.
      const int64_t col_strips = (bj + kStrip - 1) / kStrip;
#pragma omp for schedule(dynamic, 1) nowait
      for (int64_t s = 0; s < col_strips; ++s) {
        const int64_t c0 = s * kStrip, cs = std::min(kStrip, bj - c0);
        gemm(true, false, cs, d, bi, T(1), Gt + c0, bj, z + i0 * d, d, T(1), grad_z + (j0 + c0) * d, d);
        T colsum[kStrip] = {};
        for (int64_t a = 0; a < bi; ++a) {
          const T* g = Gt + a * bj + c0;
#pragma omp simd
          for (int64_t b = 0; b < cs; ++b) colsum[b] += g[b];
        }
        for (int64_t b = 0; b < cs; ++b) rowsum_w[j0 + c0 + b] += colsum[b];
      }
      if (t + 1 < ntiles && tiles[t + 1].i0 == j0) {
#pragma omp barrier
      }
    }
#pragma omp barrier
    if (want_grad) {
#pragma omp for schedule(dynamic, 64)
      for (int64_t a = 0; a < N; ++a) {
        T* g = grad_z + a * d;
        const T* r = z + a * d;
        const T s = rowsum_w[a];
#pragma omp simd
        for (int64_t k = 0; k < d; ++k) g[k] = T(4) * (r[k] * s - g[k]);
      }
    }
  }

  double total = 0.0;
  for (int64_t t = 0; t < ntiles; ++t) {
    double part = 0.0;
    for (int64_t s = 0; s < strips_per_tile; ++s) part += partial[t * strips_per_tile + s];
    total += (tiles[t].i0 == tiles[t].j0) ? part : 2.0 * part;
  }
  return total;
}

template double rbf_mmd2_cpu<float>(const float*, int64_t, int64_t, int64_t, const MmdScales&,
                                    const MmdWeights&, float*, const GemmFn<float>&, int64_t);
template double rbf_mmd2_cpu<double>(const double*, int64_t, int64_t, int64_t, const MmdScales&,
                                     const MmdWeights&, double*, const GemmFn<double>&, int64_t);

}  // namespace mpts
