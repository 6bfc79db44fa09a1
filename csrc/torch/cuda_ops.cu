// CUDA registrations: validate, make contiguous, launch the framework-free kernels on the
// current stream with workspaces from PyTorch's caching allocator (no cudaMalloc per call).
// Kept on light headers (no torch/extension.h) so nvcc can compile it against a CPU
// torch's headers in CI (see scripts/cuda_check.sh).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <vector>

#include "aten_gemm.h"
#include "checks.h"
#include "rbf_mmd_cuda.h"
#include "select_cuda.h"
#include "sensitivity_cuda.h"
#include "snapshot_uncertainty_cuda.h"

namespace mpts_torch {
namespace {

at::Tensor workspace(size_t bytes, const at::Tensor& like) {
  return at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte));
}

std::tuple<at::Tensor, at::Tensor> rbf_mmd2_cuda(const at::Tensor& x, const at::Tensor& y,
                                                 at::ArrayRef<double> scales, bool unbiased,
                                                 bool with_grad) {
  check_mmd_args(x, y, unbiased, true);
  const int64_t n = x.size(0), m = y.size(0), d = x.size(1);
  mpts::MmdScales sc;
  TORCH_CHECK_VALUE(mpts::make_mmd_scales(scales.data(), static_cast<int>(scales.size()), &sc),
                    "scales must be 1..", mpts::MmdScales::kMax, " positive finite numbers");
  const auto w = mpts::make_mmd_weights(n, m, unbiased);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor z = at::cat({x, y}, 0).to(at::kFloat).contiguous();
  at::Tensor grad = with_grad ? at::empty_like(z) : at::Tensor();
  at::Tensor value = at::empty({}, z.options().dtype(at::kDouble));
  at::Tensor ws = workspace(mpts::cuda::rbf_mmd2_workspace_bytes(n, m, d, with_grad), z);
  mpts::cuda::rbf_mmd2(z.data_ptr<float>(), n, m, d, sc, w, value.data_ptr<double>(),
                       with_grad ? grad.data_ptr<float>() : nullptr, ws.data_ptr(),
                       aten_gemm<float>(z.options()), c10::cuda::getCurrentCUDAStream());
  value = value.to(x.scalar_type());
  if (!with_grad) return {value, at::empty({0, d}, x.options())};
  return {value, grad.to(x.scalar_type())};
}

mpts::cuda::LogitType logit_type(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return mpts::cuda::LogitType::kFloat32;
    case at::kHalf:
      return mpts::cuda::LogitType::kFloat16;
    case at::kBFloat16:
      return mpts::cuda::LogitType::kBFloat16;
    default:
      TORCH_CHECK_TYPE(false, "logits must be float32, float16 or bfloat16 on CUDA, got ",
                       t.scalar_type());
  }
}

at::Tensor snapshot_scores_cuda(const at::Tensor& logits) {
  check_dim(logits, "logits", 3);
  const auto type = logit_type(logits);
  const int64_t S = logits.size(0), N = logits.size(1), C = logits.size(2);
  TORCH_CHECK_VALUE(S >= 1 && C >= 1, "logits must have S >= 1 and C >= 1, got ", logits.sizes());
  TORCH_CHECK_VALUE(C <= mpts::cuda::kMaxClassesCuda, "logits has ", C,
                    " classes; the CUDA kernel supports at most ", mpts::cuda::kMaxClassesCuda);
  const c10::cuda::CUDAGuard guard(logits.device());
  // Snapshots may be strided (e.g. a slice of a bigger buffer); rows must be contiguous.
  at::Tensor l = (logits.stride(2) == 1 && logits.stride(1) == C) ? logits : logits.contiguous();
  at::Tensor scores = at::empty({mpts::kNumScores, N}, l.options().dtype(at::kFloat));
  mpts::cuda::snapshot_scores(l.data_ptr(), type, S, l.stride(0), N, C, scores.data_ptr<float>(),
                              c10::cuda::getCurrentCUDAStream());
  return scores;
}

void check_state_cuda(const at::Tensor& mean, const at::Tensor& m2, const at::Tensor& ent_sum) {
  check_snapshot_state(mean, m2, ent_sum);
  TORCH_CHECK_VALUE(mean.is_cuda(), "mean must be a CUDA tensor, got ", mean.device());
  TORCH_CHECK_TYPE(mean.scalar_type() == at::kFloat && m2.scalar_type() == at::kFloat &&
                       ent_sum.scalar_type() == at::kFloat,
                   "the CUDA accumulator state (mean, m2, ent_sum) must be float32, got ",
                   mean.scalar_type(), ", ", m2.scalar_type(), ", ", ent_sum.scalar_type());
  TORCH_CHECK_VALUE(mean.size(1) <= mpts::cuda::kMaxClassesCuda, "at most ",
                    mpts::cuda::kMaxClassesCuda, " classes on CUDA");
}

void snapshot_accumulate_cuda(at::Tensor mean, at::Tensor m2, at::Tensor ent_sum,
                              const at::Tensor& logits, int64_t count) {
  check_state_cuda(mean, m2, ent_sum);
  TORCH_CHECK_VALUE(logits.device() == mean.device(), "logits must be on the device of mean (",
                    mean.device(), "), got ", logits.device());
  TORCH_CHECK_VALUE(logits.sizes() == mean.sizes(), "logits must have shape ", mean.sizes(),
                    ", got ", logits.sizes());
  const auto type = logit_type(logits);
  const c10::cuda::CUDAGuard guard(mean.device());
  at::Tensor l = logits.contiguous();
  mpts::cuda::snapshot_accumulate(l.data_ptr(), type, l.size(0), l.size(1), count,
                                  mean.data_ptr<float>(), m2.data_ptr<float>(),
                                  ent_sum.data_ptr<float>(), c10::cuda::getCurrentCUDAStream());
}

at::Tensor snapshot_finalize_cuda(const at::Tensor& mean, const at::Tensor& m2,
                                  const at::Tensor& ent_sum, int64_t count) {
  check_state_cuda(mean, m2, ent_sum);
  TORCH_CHECK_VALUE(count >= 1, "no snapshot has been accumulated");
  const c10::cuda::CUDAGuard guard(mean.device());
  at::Tensor scores = at::empty({mpts::kNumScores, mean.size(0)}, mean.options());
  mpts::cuda::snapshot_finalize(mean.data_ptr<float>(), m2.data_ptr<float>(),
                                ent_sum.data_ptr<float>(), mean.size(0), mean.size(1), count,
                                scores.data_ptr<float>(), c10::cuda::getCurrentCUDAStream());
  return scores;
}

at::Tensor sensitivity_cuda(const at::Tensor& x, const at::Tensor& V, const at::Tensor& b_v,
                            const at::Tensor& W, const at::Tensor& b_w, int64_t norm,
                            bool sigmoid_output) {
  check_sensitivity_args(x, V, b_v, W, b_w, norm, true);
  const int64_t P = x.size(0), I = x.size(1), J = V.size(0), K = W.size(0);
  const c10::cuda::CUDAGuard guard(x.device());
  auto f32 = [](const at::Tensor& t) { return t.to(at::kFloat).contiguous(); };
  at::Tensor xc = f32(x), Vc = f32(V), bvc = f32(b_v), Wc = f32(W), bwc = f32(b_w);
  at::Tensor phi = at::empty({P}, xc.options());
  at::Tensor ws = workspace(mpts::cuda::sensitivity_workspace_bytes(P, I, J, K), xc);
  mpts::cuda::sensitivity(xc.data_ptr<float>(), Vc.data_ptr<float>(), bvc.data_ptr<float>(),
                          Wc.data_ptr<float>(), bwc.data_ptr<float>(), P, I, J, K,
                          static_cast<mpts::SensNorm>(norm), sigmoid_output, phi.data_ptr<float>(),
                          ws.data_ptr(), aten_gemm<float>(xc.options()),
                          c10::cuda::getCurrentCUDAStream());
  return phi.to(x.scalar_type());
}

// ------------------------------------------------------------------ selection loops
// Rows stay in their storage dtype (float32/float16/bfloat16); the state is float32. One host
// sync per call (check_select_pickable reads back the pickable-row count and mind[first]);
// then k launches are enqueued and the picks stay on the device.

mpts::cuda::RowType row_type(const at::Tensor& t, const char* name) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return mpts::cuda::RowType::kFloat32;
    case at::kHalf:
      return mpts::cuda::RowType::kFloat16;
    case at::kBFloat16:
      return mpts::cuda::RowType::kBFloat16;
    default:
      TORCH_CHECK_TYPE(false, name, " must be float32, float16 or bfloat16 on CUDA, got ",
                       t.scalar_type());
  }
}

void check_select_cuda(const at::Tensor& rows, const at::Tensor& mind, int64_t first, int64_t k,
                       const char* rows_name) {
  check_select_state(rows, mind, first, k, rows_name);
  TORCH_CHECK_TYPE(mind.scalar_type() == at::kFloat, "mind must be float32 on CUDA");
  TORCH_CHECK_VALUE(rows.is_contiguous(), rows_name, " must be contiguous");
  check_select_pickable(mind, first, k);
}

at::Tensor select_workspace(int64_t N, const at::Tensor& like) {
  return at::zeros({static_cast<int64_t>(mpts::cuda::select_workspace_bytes(N))},
                   like.options().dtype(at::kByte));
}

at::Tensor select_kcenter_cuda(const at::Tensor& x, at::Tensor mind, int64_t first, int64_t k) {
  check_dim(x, "x", 2);
  const auto type = row_type(x, "x");
  check_select_cuda(x, mind, first, k, "x");
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor picks = at::empty({k}, x.options().dtype(at::kLong));
  at::Tensor ws = select_workspace(x.size(0), x);
  mpts::cuda::kcenter_greedy(x.data_ptr(), type, x.size(0), x.size(1), mind.data_ptr<float>(),
                             first, k, picks.data_ptr<int64_t>(), ws.data_ptr(),
                             c10::cuda::getCurrentCUDAStream());
  return picks;
}

at::Tensor select_kmeanspp_cuda(const at::Tensor& x, at::Tensor mind, int64_t first, int64_t k,
                                const at::Tensor& u) {
  check_dim(x, "x", 2);
  const auto type = row_type(x, "x");
  check_select_cuda(x, mind, first, k, "x");
  check_uniforms(u, x, k);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor picks = at::empty({k}, x.options().dtype(at::kLong));
  at::Tensor ws = select_workspace(x.size(0), x);
  mpts::cuda::kmeanspp(x.data_ptr(), type, x.size(0), x.size(1), mind.data_ptr<float>(), first, k,
                       u.data_ptr<double>(), picks.data_ptr<int64_t>(), ws.data_ptr(),
                       c10::cuda::getCurrentCUDAStream());
  return picks;
}

void check_badge_cuda(const at::Tensor& q, const at::Tensor& h) {
  check_dim(q, "q", 2);
  check_dim(h, "h", 2);
  TORCH_CHECK_TYPE(q.scalar_type() == at::kFloat, "q must be float32 on CUDA");
  TORCH_CHECK_VALUE(q.device() == h.device(), "q and h must be on one device");
  TORCH_CHECK_VALUE(q.size(0) == h.size(0), "q and h must have the same rows");
  TORCH_CHECK_VALUE(q.is_contiguous() && h.is_contiguous(), "q and h must be contiguous");
}

at::Tensor select_badge_sqnorms_cuda(const at::Tensor& q, const at::Tensor& h) {
  check_badge_cuda(q, h);
  const auto type = row_type(h, "h");
  const c10::cuda::CUDAGuard guard(q.device());
  at::Tensor a = at::empty({q.size(0)}, q.options());
  mpts::cuda::badge_sqnorms(q.data_ptr<float>(), q.size(1), h.data_ptr(), type, h.size(1),
                            q.size(0), a.data_ptr<float>(), c10::cuda::getCurrentCUDAStream());
  return a;
}

at::Tensor select_badge_kmeanspp_cuda(const at::Tensor& q, const at::Tensor& h,
                                      const at::Tensor& a, at::Tensor mind, int64_t first,
                                      int64_t k, const at::Tensor& u) {
  check_badge_cuda(q, h);
  const auto type = row_type(h, "h");
  TORCH_CHECK_VALUE(a.device() == q.device() && a.scalar_type() == at::kFloat && a.dim() == 1 &&
                        a.size(0) == q.size(0) && a.is_contiguous(),
                    "a must be a contiguous float32 (N,) tensor on the device of q");
  check_select_cuda(q, mind, first, k, "q");
  check_uniforms(u, q, k);
  const c10::cuda::CUDAGuard guard(q.device());
  at::Tensor picks = at::empty({k}, q.options().dtype(at::kLong));
  at::Tensor ws = select_workspace(q.size(0), q);
  mpts::cuda::badge_kmeanspp(q.data_ptr<float>(), q.size(1), h.data_ptr(), type, h.size(1),
                             a.data_ptr<float>(), q.size(0), mind.data_ptr<float>(), first, k,
                             u.data_ptr<double>(), picks.data_ptr<int64_t>(), ws.data_ptr(),
                             c10::cuda::getCurrentCUDAStream());
  return picks;
}

}  // namespace

TORCH_LIBRARY_IMPL(mpts_fast, CUDA, m) {
  m.impl("rbf_mmd2", &rbf_mmd2_cuda);
  m.impl("snapshot_scores", &snapshot_scores_cuda);
  m.impl("snapshot_accumulate", &snapshot_accumulate_cuda);
  m.impl("snapshot_finalize", &snapshot_finalize_cuda);
  m.impl("sensitivity", &sensitivity_cuda);
  m.impl("select_kcenter", &select_kcenter_cuda);
  m.impl("select_kmeanspp", &select_kmeanspp_cuda);
  m.impl("select_badge_sqnorms", &select_badge_sqnorms_cuda);
  m.impl("select_badge_kmeanspp", &select_badge_kmeanspp_cuda);
}

}  // namespace mpts_torch
