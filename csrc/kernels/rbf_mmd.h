// Blockwise RBF-kernel MMD^2 with its gradient, never holding an n x m matrix.
//
// z = [x; y] is (n + m, d). With c_ab a per-pair weight and k a sum of Gaussians,
//   MMD^2 = sum_{a,b} c_ab k(D_ab),  D_ab = |z_a - z_b|^2,  k(D) = sum_q exp(-D / s_q),
// where s_q = 2 sigma_q^2 and
//   biased:   c = 1/n^2 (x,x), 1/m^2 (y,y), -1/(nm) (x,y and y,x); diagonal included
//   unbiased: c = 1/(n(n-1)), 1/(m(m-1)), -1/(nm); diagonal excluded.
// The gradient is grad_a = 4 (z_a * sum_b w_ab - sum_b w_ab z_b) with w_ab = c_ab k'(D_ab).
//
// Tiling: only tiles on or above the diagonal of the (n+m) x (n+m) block grid are visited.
// Each tile is one GEMM (z_I z_J^T), a fused epilogue (distances, exps, weights, row and
// column sums) and, when a gradient is wanted, two GEMMs that push w into the gradient:
// the gradient comes out of the same pass as the value, so no distance is computed twice.
// When the scales form a ladder s_{q+1} = s_q / 2^t, one exp and repeated squaring give all
// terms (exp(-D/s)^(2^t) = exp(-D/(s/2^t))).
#pragma once

#include <cstdint>

#include "common.h"

namespace mpts {

struct MmdScales {
  // Scales s_q = 2 sigma_q^2 sorted in decreasing order; inv[q] = 1 / s_q.
  // squarings[q] >= 0: term q is term q-1 squared that many times; -1: its own exp.
  static constexpr int kMax = 16;
  int num = 0;
  double inv[kMax];
  int squarings[kMax];
};

// Sorts and validates scales (all > 0 and finite, 1 <= num <= kMax) and detects ladders.
// Returns false if the scales are invalid.
bool make_mmd_scales(const double* scales, int num, MmdScales* out);

// Per-pair weights of the estimator for rows in x (index < n) or y.
struct MmdWeights {
  double xx, yy, xy;
  bool include_diagonal;
};
MmdWeights make_mmd_weights(int64_t n, int64_t m, bool unbiased);

// CPU. z: (n + m, d) contiguous. grad_z: (n + m, d) or nullptr for value only.
// Returns MMD^2. tile <= 0 picks a default. Threads: OpenMP in the epilogue, the GEMM's own.
template <typename T>
double rbf_mmd2_cpu(const T* z, int64_t n, int64_t m, int64_t d, const MmdScales& scales,
                    const MmdWeights& weights, T* grad_z, const GemmFn<T>& gemm, int64_t tile = 0);

}  // namespace mpts
