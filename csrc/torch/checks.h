// Argument checks shared by the CPU and CUDA registrations. The Python layer gives the
// friendly messages; these keep direct callers of torch.ops.mpts_fast.* safe too.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace mpts_torch {

inline void check_float(const at::Tensor& t, const char* name, bool allow_half) {
  const auto st = t.scalar_type();
  const bool ok = st == at::kFloat || st == at::kDouble ||
                  (allow_half && (st == at::kHalf || st == at::kBFloat16));
  TORCH_CHECK_TYPE(ok, name, " must be a floating tensor (float32/float64), got ", st);
}

inline void check_dim(const at::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK_VALUE(t.dim() == dim, name, " must be ", dim, "-D, got shape ", t.sizes());
}

inline void check_same(const at::Tensor& a, const at::Tensor& b, const char* an, const char* bn) {
  TORCH_CHECK_VALUE(a.device() == b.device(), an, " and ", bn, " must be on one device, got ",
                    a.device(), " and ", b.device());
  TORCH_CHECK_TYPE(a.scalar_type() == b.scalar_type(), an, " and ", bn,
                   " must have one dtype, got ", a.scalar_type(), " and ", b.scalar_type());
}

// x (n, d), y (m, d) for rbf_mmd2; the estimator needs 1 (biased) or 2 (unbiased) rows each.
inline void check_mmd_args(const at::Tensor& x, const at::Tensor& y, bool unbiased,
                           bool allow_half) {
  check_float(x, "x", allow_half);
  check_same(x, y, "x", "y");
  check_dim(x, "x", 2);
  check_dim(y, "y", 2);
  TORCH_CHECK_VALUE(x.size(1) == y.size(1), "x and y must have the same feature dim, got ",
                    x.size(1), " and ", y.size(1));
  const int64_t need = unbiased ? 2 : 1;
  TORCH_CHECK_VALUE(x.size(0) >= need && y.size(0) >= need, "x and y need at least ", need,
                    " rows, got ", x.size(0), " and ", y.size(0));
}

// The one-hidden-layer network of sensitivity: x (P, I), V (J, I), b_v (J), W (K, J), b_w (K).
inline void check_sensitivity_args(const at::Tensor& x, const at::Tensor& V, const at::Tensor& b_v,
                                   const at::Tensor& W, const at::Tensor& b_w, int64_t norm,
                                   bool allow_half) {
  check_float(x, "x", allow_half);
  check_same(x, V, "x", "V");
  check_same(x, b_v, "x", "b_v");
  check_same(x, W, "x", "W");
  check_same(x, b_w, "x", "b_w");
  check_dim(x, "x", 2);
  check_dim(V, "V", 2);
  check_dim(b_v, "b_v", 1);
  check_dim(W, "W", 2);
  check_dim(b_w, "b_w", 1);
  const int64_t I = x.size(1), J = V.size(0), K = W.size(0);
  TORCH_CHECK_VALUE(V.size(1) == I && b_v.size(0) == J && W.size(1) == J && b_w.size(0) == K,
                    "sensitivity shapes disagree: x ", x.sizes(), ", V ", V.sizes(), ", b_v ",
                    b_v.sizes(), ", W ", W.sizes(), ", b_w ", b_w.sizes());
  TORCH_CHECK_VALUE(norm == 0 || norm == 1 || norm == 2, "norm code must be 0, 1 or 2");
}

// Snapshot accumulator state: mean (N, C), m2 (N, C), ent_sum (N), contiguous, on one device
// (a tensor on another device would reach the kernel as a foreign pointer). Dtypes are the
// registration's to check: the CPU takes float32/float64, the CUDA kernels float32.
inline void check_snapshot_state(const at::Tensor& mean, const at::Tensor& m2,
                                 const at::Tensor& ent_sum) {
  check_dim(mean, "mean", 2);
  TORCH_CHECK_VALUE(m2.device() == mean.device(), "m2 must be on the device of mean (",
                    mean.device(), "), got ", m2.device());
  TORCH_CHECK_VALUE(ent_sum.device() == mean.device(), "ent_sum must be on the device of mean (",
                    mean.device(), "), got ", ent_sum.device());
  TORCH_CHECK_VALUE(m2.sizes() == mean.sizes(), "accumulator state shapes disagree: m2 must have ",
                    "the shape of mean ", mean.sizes(), ", got ", m2.sizes());
  TORCH_CHECK_VALUE(ent_sum.dim() == 1 && ent_sum.size(0) == mean.size(0),
                    "accumulator state shapes disagree: ent_sum must have shape (", mean.size(0),
                    ",), got ", ent_sum.sizes());
  TORCH_CHECK_VALUE(mean.is_contiguous() && m2.is_contiguous() && ent_sum.is_contiguous(),
                    "accumulator state (mean, m2, ent_sum) must be contiguous");
}

}  // namespace mpts_torch

namespace mpts_torch {

// Selection loops (select.h): x (N, d) or the BADGE factors, the (N) min-distance state,
// first in [-1, N), 0 <= k <= N, u (>= k) float64 uniforms.
inline void check_select_state(const at::Tensor& rows, const at::Tensor& mind, int64_t first,
                               int64_t k, const char* rows_name) {
  const int64_t N = rows.size(0);
  TORCH_CHECK_VALUE(mind.device() == rows.device(), "mind and ", rows_name,
                    " must be on one device");
  TORCH_CHECK_VALUE(mind.dim() == 1 && mind.size(0) == N && mind.is_contiguous(),
                    "mind must be a contiguous (", N, ",) tensor, got ", mind.sizes());
  TORCH_CHECK_VALUE(first >= -1 && first < N, "first must be -1 or a row index below ", N,
                    ", got ", first);
  TORCH_CHECK_VALUE(k >= 0 && k <= N, "k must be in [0, ", N, "], got ", k);
}

// mind must be NaN-free (the loops' arg-max and sampling give NaN rows no defined meaning; < 0
// marks a row never to pick). The loops stop early (picks of -1) once they run out of rows with
// mind >= 0, and with `first` at a row of mind < 0 they would return that labeled or excluded
// row as pick 0: both are refused up front. The three facts are read back in one transfer (one
// host sync per call on CUDA).
inline void check_select_pickable(const at::Tensor& mind, int64_t first, int64_t k) {
  std::vector<at::Tensor> parts = {mind.isnan().sum().reshape({1}), mind.ge(0).sum().reshape({1})};
  if (first >= 0) parts.push_back(mind.narrow(0, first, 1).ge(0).to(at::kLong));
  const at::Tensor facts = at::cat(parts).cpu();
  const int64_t* f = facts.data_ptr<int64_t>();
  TORCH_CHECK_VALUE(f[0] == 0, "mind must not contain NaN (found ", f[0],
                    "); mark rows never to pick with a negative value");
  TORCH_CHECK_VALUE(k <= f[1], "k = ", k, " exceeds the ", f[1],
                    " rows that can be picked (rows with mind >= 0)");
  TORCH_CHECK_VALUE(first < 0 || f[2] == 1,
                    "first must be a pickable row (mind[first] >= 0), got first = ", first);
}

inline void check_uniforms(const at::Tensor& u, const at::Tensor& rows, int64_t k) {
  TORCH_CHECK_VALUE(u.device() == rows.device(), "u must be on the device of the inputs");
  TORCH_CHECK_TYPE(u.scalar_type() == at::kDouble, "u must be float64, got ", u.scalar_type());
  TORCH_CHECK_VALUE(u.dim() == 1 && u.size(0) >= k && u.is_contiguous(),
                    "u must be a contiguous 1-D tensor of at least k = ", k, " uniforms");
}

inline void check_badge_factors(const at::Tensor& q, const at::Tensor& h, bool allow_half) {
  check_float(q, "q", allow_half);
  check_same(q, h, "q", "h");
  check_dim(q, "q", 2);
  check_dim(h, "h", 2);
  TORCH_CHECK_VALUE(q.size(0) == h.size(0), "q and h must have the same rows, got ", q.size(0),
                    " and ", h.size(0));
  TORCH_CHECK_VALUE(q.is_contiguous() && h.is_contiguous(), "q and h must be contiguous");
}

}  // namespace mpts_torch
