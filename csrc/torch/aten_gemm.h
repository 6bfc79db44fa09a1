// Adapts ATen's matmul (MKL/oneDNN on CPU, cuBLAS on CUDA) to the kernels' GemmFn, so the
// framework-free kernels get the vendor GEMM rate for their tiles.
//
// The GEMMs always run in full FP32, whatever torch.backends.cuda.matmul.allow_tf32 or
// torch.set_float32_matmul_precision say: the kernels form ||a||^2 + ||b||^2 - 2 a.b (rbf_mmd2)
// and sums of products (sensitivity) from them, and TF32's 10-bit mantissa loses about three
// digits of a distance there. The user's settings are left as they were.
#pragma once

#include <ATen/ATen.h>
#include <ATen/BlasBackend.h>
#include <ATen/Context.h>

#include <mutex>
#include <optional>

#include "common.h"

namespace mpts_torch {

// ATen's cuBLASLt path picks its compute type from the global precision setting and ignores
// at::NoTF32Guard (the cuBLAS path honours it). While any of our CUDA GEMMs runs, a user who
// prefers cuBLASLt (torch.backends.cuda.preferred_blas_library, TORCH_BLAS_PREFER_CUBLASLT) is
// routed to cuBLAS; the first scope in saves the preference and the last one out restores it,
// so concurrent calls from several threads nest correctly. Only the backend choice changes,
// never a numeric setting: other threads' matmuls meanwhile run on cuBLAS at the precision they
// asked for (FP32 or TF32), possibly with another GEMM algorithm.
class CublasNotLtScope {
 public:
  CublasNotLtScope() {
    const std::lock_guard<std::mutex> lock(mutex());
    if (state().depth++ == 0) {
      auto& ctx = at::globalContext();
      state().saved = ctx.blasPreferredBackend();
      if (state().saved == at::BlasBackend::Cublaslt) ctx.setBlasPreferredBackend(at::BlasBackend::Cublas);
    }
  }
  ~CublasNotLtScope() {
    const std::lock_guard<std::mutex> lock(mutex());
    if (--state().depth == 0 && state().saved == at::BlasBackend::Cublaslt) {
      at::globalContext().setBlasPreferredBackend(at::BlasBackend::Cublaslt);
    }
  }
  CublasNotLtScope(const CublasNotLtScope&) = delete;
  CublasNotLtScope& operator=(const CublasNotLtScope&) = delete;

 private:
  struct State {
    int depth = 0;
    at::BlasBackend saved = at::BlasBackend::Cublas;
  };
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static State& state() {
    static State s;
    return s;
  }
};

template <typename T>
mpts::GemmFn<T> aten_gemm(const at::TensorOptions& opts) {
  return [opts](bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
    // Thread-local: this thread's cuBLAS handle gets CUBLAS_DEFAULT_MATH (no TF32) for these
    // calls only; other threads and the global flags are untouched.
    const at::NoTF32Guard no_tf32;
    std::optional<CublasNotLtScope> not_lt;
    if (opts.device().is_cuda()) not_lt.emplace();
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
