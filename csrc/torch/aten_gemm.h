// Adapts ATen's matmul (MKL/oneDNN on CPU, cuBLAS on CUDA) to the kernels' GemmFn, so the
// framework-free kernels get the vendor GEMM rate for their tiles.
#pragma once

#include <ATen/ATen.h>

#include "common.h"

namespace mpts_torch {

template <typename T>
mpts::GemmFn<T> aten_gemm(const at::TensorOptions& opts) {
  return [opts](bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
    auto* a_ptr = const_cast<T*>(A);
    auto* b_ptr = const_cast<T*>(B);
    at::Tensor a = ta ? at::from_blob(a_ptr, {K, M}, {lda, 1}, opts).t()
                      : at::from_blob(a_ptr, {M, K}, {lda, 1}, opts);
    at::Tensor b = tb ? at::from_blob(b_ptr, {N, K}, {ldb, 1}, opts).t()
                      : at::from_blob(b_ptr, {K, N}, {ldb, 1}, opts);
    at::Tensor c = at::from_blob(C, {M, N}, {ldc, 1}, opts);
    if (beta == T(0)) {
      at::mm_out(c, a, b);
      if (alpha != T(1)) c.mul_(alpha);
    } else {
      c.addmm_(a, b, beta, alpha);
    }
  };
}

}  // namespace mpts_torch
