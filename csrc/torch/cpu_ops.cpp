// CPU registrations: validate, make contiguous, call the framework-free kernels.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <vector>

#include "aten_gemm.h"
#include "checks.h"
#include "rbf_mmd.h"
#include "select.h"
#include "sensitivity.h"
#include "snapshot_uncertainty.h"

namespace mpts_torch {
namespace {

std::tuple<at::Tensor, at::Tensor> rbf_mmd2_cpu(const at::Tensor& x, const at::Tensor& y,
                                                at::ArrayRef<double> scales, bool unbiased,
                                                bool with_grad) {
  check_mmd_args(x, y, unbiased, false);
  const int64_t n = x.size(0), m = y.size(0), d = x.size(1);
  mpts::MmdScales sc;
  TORCH_CHECK_VALUE(mpts::make_mmd_scales(scales.data(), static_cast<int>(scales.size()), &sc),
                    "scales must be 1..", mpts::MmdScales::kMax, " positive finite numbers");
  const auto w = mpts::make_mmd_weights(n, m, unbiased);
  at::Tensor z = at::cat({x, y}, 0).contiguous();
  at::Tensor grad = with_grad ? at::empty_like(z) : at::Tensor();
  double v = 0;
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "rbf_mmd2_cpu", [&] {
    v = mpts::rbf_mmd2_cpu<scalar_t>(z.data_ptr<scalar_t>(), n, m, d, sc, w,
                                     with_grad ? grad.data_ptr<scalar_t>() : nullptr,
                                     aten_gemm<scalar_t>(z.options()));
  });
  at::Tensor value = at::scalar_tensor(v, x.options());
  if (!with_grad) return {value, at::empty({0, d}, x.options())};
  return {value, grad};
}

at::Tensor snapshot_scores_cpu(const at::Tensor& logits) {
  check_float(logits, "logits", false);
  check_dim(logits, "logits", 3);
  const int64_t S = logits.size(0), N = logits.size(1), C = logits.size(2);
  TORCH_CHECK_VALUE(S >= 1 && C >= 1, "logits must have S >= 1 and C >= 1, got ", logits.sizes());
  at::Tensor l = logits.contiguous();
  at::Tensor scores = at::empty({mpts::kNumScores, N}, l.options());
  AT_DISPATCH_FLOATING_TYPES(l.scalar_type(), "snapshot_scores_cpu", [&] {
    std::vector<const scalar_t*> ptrs(S);
    for (int64_t s = 0; s < S; ++s) ptrs[s] = l.data_ptr<scalar_t>() + s * N * C;
    mpts::snapshot_scores_cpu<scalar_t>(ptrs.data(), S, N, C, scores.data_ptr<scalar_t>());
  });
  return scores;
}

void check_state(const at::Tensor& mean, const at::Tensor& m2, const at::Tensor& ent_sum) {
  check_snapshot_state(mean, m2, ent_sum);
  check_float(mean, "mean", false);
  check_same(mean, m2, "mean", "m2");
  check_same(mean, ent_sum, "mean", "ent_sum");
}

void snapshot_accumulate_cpu(at::Tensor mean, at::Tensor m2, at::Tensor ent_sum,
                             const at::Tensor& logits, int64_t count) {
  check_state(mean, m2, ent_sum);
  check_same(mean, logits, "state", "logits");
  TORCH_CHECK_VALUE(logits.sizes() == mean.sizes(), "logits must have shape ", mean.sizes(),
                    ", got ", logits.sizes());
  at::Tensor l = logits.contiguous();
  AT_DISPATCH_FLOATING_TYPES(l.scalar_type(), "snapshot_accumulate_cpu", [&] {
    mpts::snapshot_accumulate_cpu<scalar_t>(l.data_ptr<scalar_t>(), l.size(0), l.size(1), count,
                                            mean.data_ptr<scalar_t>(), m2.data_ptr<scalar_t>(),
                                            ent_sum.data_ptr<scalar_t>());
  });
}

at::Tensor snapshot_finalize_cpu(const at::Tensor& mean, const at::Tensor& m2,
                                 const at::Tensor& ent_sum, int64_t count) {
  check_state(mean, m2, ent_sum);
  TORCH_CHECK_VALUE(count >= 1, "no snapshot has been accumulated");
  at::Tensor scores = at::empty({mpts::kNumScores, mean.size(0)}, mean.options());
  AT_DISPATCH_FLOATING_TYPES(mean.scalar_type(), "snapshot_finalize_cpu", [&] {
    mpts::snapshot_finalize_cpu<scalar_t>(mean.data_ptr<scalar_t>(), m2.data_ptr<scalar_t>(),
                                          ent_sum.data_ptr<scalar_t>(), mean.size(0),
                                          mean.size(1), count, scores.data_ptr<scalar_t>());
  });
  return scores;
}

at::Tensor sensitivity_cpu(const at::Tensor& x, const at::Tensor& V, const at::Tensor& b_v,
                           const at::Tensor& W, const at::Tensor& b_w, int64_t norm,
                           bool sigmoid_output) {
  check_sensitivity_args(x, V, b_v, W, b_w, norm, false);
  const int64_t P = x.size(0), I = x.size(1), J = V.size(0), K = W.size(0);
  at::Tensor phi = at::empty({P}, x.options());
  at::Tensor xc = x.contiguous(), Vc = V.contiguous(), bvc = b_v.contiguous(),
             Wc = W.contiguous(), bwc = b_w.contiguous();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sensitivity_cpu", [&] {
    mpts::sensitivity_cpu<scalar_t>(xc.data_ptr<scalar_t>(), Vc.data_ptr<scalar_t>(),
                                    bvc.data_ptr<scalar_t>(), Wc.data_ptr<scalar_t>(),
                                    bwc.data_ptr<scalar_t>(), P, I, J, K,
                                    static_cast<mpts::SensNorm>(norm), sigmoid_output,
                                    phi.data_ptr<scalar_t>(), aten_gemm<scalar_t>(x.options()));
  });
  return phi;
}

// ------------------------------------------------------------------ selection loops

void check_select_cpu(const at::Tensor& rows, const at::Tensor& mind, int64_t first, int64_t k,
                      const char* rows_name) {
  check_select_state(rows, mind, first, k, rows_name);
  TORCH_CHECK_TYPE(mind.scalar_type() == rows.scalar_type(), "mind must have the dtype of ",
                   rows_name);
  check_select_pickable(mind, first, k);
}

at::Tensor select_kcenter_cpu(const at::Tensor& x, at::Tensor mind, int64_t first, int64_t k) {
  check_float(x, "x", false);
  check_dim(x, "x", 2);
  check_select_cpu(x, mind, first, k, "x");
  at::Tensor xc = x.contiguous();
  at::Tensor picks = at::empty({k}, x.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "select_kcenter_cpu", [&] {
    mpts::kcenter_greedy_cpu<scalar_t>(xc.data_ptr<scalar_t>(), xc.size(0), xc.size(1),
                                       mind.data_ptr<scalar_t>(), first, k,
                                       picks.data_ptr<int64_t>());
  });
  return picks;
}

at::Tensor select_kmeanspp_cpu(const at::Tensor& x, at::Tensor mind, int64_t first, int64_t k,
                               const at::Tensor& u) {
  check_float(x, "x", false);
  check_dim(x, "x", 2);
  check_select_cpu(x, mind, first, k, "x");
  check_uniforms(u, x, k);
  at::Tensor xc = x.contiguous();
  at::Tensor picks = at::empty({k}, x.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "select_kmeanspp_cpu", [&] {
    mpts::kmeanspp_cpu<scalar_t>(xc.data_ptr<scalar_t>(), xc.size(0), xc.size(1),
                                 mind.data_ptr<scalar_t>(), first, k, u.data_ptr<double>(),
                                 picks.data_ptr<int64_t>());
  });
  return picks;
}

void select_lower_mind_cpu(const at::Tensor& x, const at::Tensor& centres, at::Tensor mind) {
  check_float(x, "x", false);
  check_dim(x, "x", 2);
  check_select_state(x, mind, -1, 0, "x");
  TORCH_CHECK_TYPE(mind.scalar_type() == x.scalar_type(), "mind must have the dtype of x");
  TORCH_CHECK_TYPE(centres.scalar_type() == at::kLong, "centres must be int64, got ",
                   centres.scalar_type());
  TORCH_CHECK_VALUE(centres.device() == x.device() && centres.dim() == 1,
                    "centres must be a 1-D tensor on the device of x");
  const at::Tensor cc = centres.contiguous();
  const int64_t N = x.size(0), L = cc.size(0);
  if (L > 0) {
    const auto range = at::aminmax(cc);
    const int64_t lo = std::get<0>(range).item<int64_t>(), hi = std::get<1>(range).item<int64_t>();
    TORCH_CHECK_INDEX(lo >= 0 && hi < N, "centres must be row indices in [0, ", N, "), got [",
                      lo, ", ", hi, "]");
  }
  at::Tensor xc = x.contiguous();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "select_lower_mind_cpu", [&] {
    mpts::lower_mind_cpu<scalar_t>(xc.data_ptr<scalar_t>(), N, xc.size(1), cc.data_ptr<int64_t>(),
                                   L, mind.data_ptr<scalar_t>());
  });
}

at::Tensor select_farthest_from_mean_cpu(const at::Tensor& x) {
  check_float(x, "x", false);
  check_dim(x, "x", 2);
  TORCH_CHECK_VALUE(x.size(0) >= 1, "x must have at least one row, got shape ", x.sizes());
  const at::Tensor xc = x.contiguous();
  int64_t row = 0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "select_farthest_from_mean_cpu", [&] {
    row = mpts::farthest_from_mean_cpu<scalar_t>(xc.data_ptr<scalar_t>(), xc.size(0), xc.size(1));
  });
  return at::scalar_tensor(row, x.options().dtype(at::kLong));
}

at::Tensor select_badge_sqnorms_cpu(const at::Tensor& q, const at::Tensor& h) {
  check_badge_factors(q, h, false);
  at::Tensor a = at::empty({q.size(0)}, q.options());
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "select_badge_sqnorms_cpu", [&] {
    mpts::badge_sqnorms_cpu<scalar_t>(q.data_ptr<scalar_t>(), q.size(1), h.data_ptr<scalar_t>(),
                                      h.size(1), q.size(0), a.data_ptr<scalar_t>());
  });
  return a;
}

at::Tensor select_badge_kmeanspp_cpu(const at::Tensor& q, const at::Tensor& h,
                                     const at::Tensor& a, at::Tensor mind, int64_t first,
                                     int64_t k, const at::Tensor& u) {
  check_badge_factors(q, h, false);
  check_same(q, a, "q", "a");
  TORCH_CHECK_VALUE(a.dim() == 1 && a.size(0) == q.size(0) && a.is_contiguous(),
                    "a must be a contiguous (N,) tensor");
  check_select_cpu(q, mind, first, k, "q");
  check_uniforms(u, q, k);
  at::Tensor picks = at::empty({k}, q.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "select_badge_kmeanspp_cpu", [&] {
    mpts::badge_kmeanspp_cpu<scalar_t>(q.data_ptr<scalar_t>(), q.size(1), h.data_ptr<scalar_t>(),
                                       h.size(1), a.data_ptr<scalar_t>(), q.size(0),
                                       mind.data_ptr<scalar_t>(), first, k, u.data_ptr<double>(),
                                       picks.data_ptr<int64_t>());
  });
  return picks;
}

}  // namespace

TORCH_LIBRARY_IMPL(mpts_fast, CPU, m) {
  m.impl("rbf_mmd2", &rbf_mmd2_cpu);
  m.impl("snapshot_scores", &snapshot_scores_cpu);
  m.impl("snapshot_accumulate", &snapshot_accumulate_cpu);
  m.impl("snapshot_finalize", &snapshot_finalize_cpu);
  m.impl("sensitivity", &sensitivity_cpu);
  m.impl("select_kcenter", &select_kcenter_cpu);
  m.impl("select_kmeanspp", &select_kmeanspp_cpu);
  m.impl("select_lower_mind", &select_lower_mind_cpu);
  m.impl("select_farthest_from_mean", &select_farthest_from_mean_cpu);
  m.impl("select_badge_sqnorms", &select_badge_sqnorms_cpu);
  m.impl("select_badge_kmeanspp", &select_badge_kmeanspp_cpu);
}

}  // namespace mpts_torch
