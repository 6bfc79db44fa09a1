// Diversity selection loops: greedy k-center (Coreset) and k-means++ seeding (BADGE), one pass
// over the pool per pick, memory O(N) beyond the inputs.
//
// State shared by every loop: mind (N), the squared distance of each row to its nearest
// centre. mind[i] < 0 marks a row that can never be picked (labeled, or already picked); +inf
// marks a row with no centre yet. Each pick t >= 1 runs one fused pass over the rows:
//   mind[i] = min(mind[i], dist2(i, newest centre)), skipped for mind[i] < 0,
// and in the same pass either
//   - k-center: the arg-max of mind (lowest index wins ties), or
//   - k-means++: per-block sums of mind in double, then an inverse-CDF search for u[t] * total
//     (the first row whose running sum exceeds it, so a zero-weight row is never drawn). If
//     every eligible row has weight 0 the pick is the floor(u[t] * count)-th eligible row
//     (uniform over unpicked rows).
// The winner gets mind = -1, so no row is picked twice.
//
// Rows are cut into fixed blocks of kSelectBlock, whatever the thread count: the block sums,
// the block arg-maxes and their in-order combination are therefore identical from run to run
// and from 1 to many threads (reproducible picks with a given u).
//
// Distances:
//   features: dist2(i, c) = sum_j (x_ij - x_cj)^2, the direct form: the same bytes as the GEMV
//     form, and exactly 0 for duplicate rows (no ||a||^2 + ||b||^2 - 2ab cancellation).
//   badge:    g_i = q_i (x) h_i is never formed; with a_i = |q_i|^2 |h_i|^2 (badge_sqnorms),
//     dist2(i, c) = max(0, a_i + a_c - 2 (q_i . q_c)(h_i . h_c)), reading C + D numbers per row.
//     a_i uses the same dot routine as the per-pick pass, so an exact duplicate of a centre
//     gets exactly 0.
#pragma once

#include <cstdint>

namespace mpts {

constexpr int64_t kSelectBlock = 512;

// first >= 0: picks[0] = first (no pass); first < 0: pick 0 comes from mind as it is
// (k-center: its arg-max; k-means++: a draw with u[0]). picks: (k) out. u: (k) in [0, 1).
template <typename T>
void kcenter_greedy_cpu(const T* x, int64_t N, int64_t d, T* mind, int64_t first, int64_t k,
                        int64_t* picks);

template <typename T>
void kmeanspp_cpu(const T* x, int64_t N, int64_t d, T* mind, int64_t first, int64_t k,
                  const double* u, int64_t* picks);

// mind[i] = min(mind[i], min_l dist2(i, centres[l])) for every row with mind[i] >= 0, rows with
// mind[i] < 0 left as they are: the initial state against a small labeled set, in the direct
// form the loops use (a duplicate of a centre gets exactly 0). Each row's minimum is taken over
// the centres in the given order by one thread, so the result does not depend on the thread
// count. centres: (L) row indices into x.
template <typename T>
void lower_mind_cpu(const T* x, int64_t N, int64_t d, const int64_t* centres, int64_t L, T* mind);

// Index of the row of x (N >= 1, d) farthest from the mean of all rows: the mean and the squared
// distances in double, ties to the lowest index. Partial column sums over a fixed row layout (set
// by N only), added in layout order, so the result does not depend on the thread count.
template <typename T>
int64_t farthest_from_mean_cpu(const T* x, int64_t N, int64_t d);

// q: (N, C) = p - e_argmax(p), h: (N, D). a_out: (N) |q_i|^2 |h_i|^2.
template <typename T>
void badge_sqnorms_cpu(const T* q, int64_t C, const T* h, int64_t D, int64_t N, T* a_out);

// a: (N) from badge_sqnorms_cpu. Otherwise as kmeanspp_cpu.
template <typename T>
void badge_kmeanspp_cpu(const T* q, int64_t C, const T* h, int64_t D, const T* a, int64_t N,
                        T* mind, int64_t first, int64_t k, const double* u, int64_t* picks);

}  // namespace mpts
