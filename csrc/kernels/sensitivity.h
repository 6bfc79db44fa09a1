// Engelbrecht output sensitivity of a one-hidden-layer sigmoid network, reduced in-kernel.
//
//   y = sigmoid(x V^T + b_v)       x: (P, I), V: (J, I), b_v: (J)
//   o = act(y W^T + b_w)           W: (K, J), b_w: (K), act = sigmoid or identity
//   S[p,k,i] = a_pk sum_j W[k,j] g_pj V[j,i],  g = y (1 - y),  a = o (1 - o) (1 if linear)
//   phi[p] = max_k |S[p,k,:]|_norm,  norm in {l1, l2, inf}
//
// Rows (p, k) are formed chunk by chunk as A[(p,k), j] = W[k,j] g_pj, pushed through one
// GEMM with V and reduced to a norm while the chunk is hot; a_pk >= 0 scales the norm
// afterwards. Memory: O(chunk (K J + K I)), never P x K x I.
// The CPU kernel spreads chunks over OpenMP threads and calls `gemm` from each of them at
// once (inside the parallel region): it must be thread-safe and should run single-threaded there.
// Memory is then O(threads chunk (K J + K I)). In float on AVX-512 builds with I >= 32, the
// (chunk K, J) x (J, I) product does not go through `gemm`: a register-blocked kernel reduces it
// to row norms tile by tile (row_norm_gemm_avx512.h), and V is packed once per call (J I floats).
#pragma once

#include <cstdint>

#include "common.h"

namespace mpts {

enum class SensNorm : int { kL1 = 1, kL2 = 2, kInf = 0 };

template <typename T>
void sensitivity_cpu(const T* x, const T* V, const T* b_v, const T* W, const T* b_w, int64_t P,
                     int64_t I, int64_t J, int64_t K, SensNorm norm, bool sigmoid_output, T* phi,
                     const GemmFn<T>& gemm, int64_t chunk = 0);

}  // namespace mpts
