// Shared pieces of the framework-free kernel library: the GEMM callback type. (The CPU
// epilogues' exp and log are in simd_math.h.)
//
// The kernels never own a BLAS. Pairwise and sensitivity kernels are "GEMM + fused
// epilogue": the caller hands in a GEMM (at::mm in the PyTorch binding, cuBLAS on CUDA,
// gemm_naive for plain C++ users) and the kernel runs the epilogue on each tile, so no
// n x m or P x K x I intermediate ever exists.
#pragma once

#include <cstdint>
#include <functional>

namespace mpts {

// Row-major C (M x N) = alpha * op(A) * op(B) + beta * C, op(A) is M x K, op(B) is K x N.
// lda/ldb/ldc are row strides of the stored (untransposed) matrices. Pointers live on the
// device the kernel runs on; a CUDA GEMM must run on the stream the kernel was given.
template <typename T>
using GemmFn = std::function<void(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                                  T alpha, const T* A, int64_t lda, const T* B, int64_t ldb,
                                  T beta, T* C, int64_t ldc)>;

// A portable, OpenMP-parallel GEMM for C++ users without a BLAS. Correct, not fast.
template <typename T>
void gemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

}  // namespace mpts
