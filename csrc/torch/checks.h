// Argument checks shared by the CPU and CUDA registrations. The Python layer gives the
// friendly messages; these keep direct callers of torch.ops.mpts_fast.* safe too.
#pragma once

#include <ATen/ATen.h>

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

}  // namespace mpts_torch
