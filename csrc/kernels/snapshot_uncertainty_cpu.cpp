// Snapshot scores on the CPU: one pass over (S, N, C) logits, meant to run at memory speed.
//
// Items are processed in blocks of B. Per block and snapshot, one pass reads the block's rows
// ((B, C), contiguous in the snapshot) and writes them class-major ([C][B]) into an L1 tile while
// taking each item's max; every later step is a loop across items, one item per SIMD lane, so
// the per-item sums stay in registers and exp/log run 8 items at a time (AVX2).
//
// The exp/log here vectorise under GCC's default -ftrapping-math: GCC will not if-convert a
// select whose arms it could sink into branches (`x < lo ? lo : x` followed by arithmetic, or
// `c ? a * b : 0`), since it may not speculate an FP operation that might trap, so the loop would
// stay scalar. Every such select below is done on the bits (and/or with an all-ones mask), which
// cannot trap. Check with -fopt-info-vec after editing.
//
// Sums over classes (softmax denominator, sum e (l - max), entropy, variance) run in double: in
// float32 their error grows linearly with C (7-10x torch's pairwise sums at C = 1000), while the
// per-class work that dominates the time (exp, Welford) stays in T.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "common.h"
#include "snapshot_uncertainty.h"

namespace mpts {
namespace {

inline float as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}
inline uint32_t as_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}
// All ones where `cond`, else 0: the mask for a bitwise select.
inline uint32_t mask_if(bool cond) { return 0u - static_cast<uint32_t>(cond); }

// exp(x) for x <= 0 or NaN (x = logit - row max), with the argument actually used in the
// polynomial: `clamped` = max(x, kExpLow) (NaN stays NaN). The caller multiplies e by `clamped`
// instead of x, so a masked class (x = -inf, e = 0) adds 0 rather than 0 * -inf = NaN.
// Cephes' polynomial (~1 ulp); results below FLT_MIN flush to 0, exp(-inf) = 0 exactly.
constexpr float kExpLow = -87.3365f;  // 2^-126 = FLT_MIN: below it the result is flushed to 0

inline float exp_nonpositive(float x, float& clamped) {
  const uint32_t below = mask_if(x < kExpLow);
  const float xc = as_float((as_bits(x) & ~below) | (as_bits(kExpLow) & below));
  clamped = xc;
  // Round xc * log2(e) to the nearest integer k with the 1.5 * 2^23 shifter: after the add,
  // k sits in the low mantissa bits, and subtracting the shifter gives k as a float.
  constexpr float kShifter = 12582912.0f;
  const float t = xc * 1.44269504088896341f + kShifter;
  const float k = t - kShifter;
  const uint32_t k_int = as_bits(t) - as_bits(kShifter);
  float r = xc - k * 0.693359375f;  // Cody-Waite: ln 2 in two parts, the first exact in k * hi
  r = r - k * -2.12194440e-4f;
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  p = p * r * r + r + 1.0f;
  const float e = p * as_float((k_int + 127u) << 23);  // k >= -126: 2^k is normal
  return as_float(as_bits(e) & ~below);                // NaN x: r, p and e are NaN
}

inline double exp_nonpositive(double x, double& clamped) {
  clamped = x < -800.0 ? -800.0 : x;  // exp underflows to 0 well above -800
  return std::exp(x);
}

// log(x) for normal positive x (callers guard the rest). Cephes' logf polynomial.
inline float log_normal(float x) {
  const uint32_t bits = as_bits(x);
  const float e0 = static_cast<float>(static_cast<int32_t>((bits >> 23) & 0xff) - 126);
  const float m0 = as_float((bits & 0x007fffffu) | 0x3f000000u);  // mantissa in [0.5, 1)
  const uint32_t small = mask_if(m0 < 0.707106781186547524f);
  const float e = e0 - as_float(as_bits(1.0f) & small);  // m < sqrt(1/2): 2m - 1, exponent - 1
  const float m = m0 + as_float(as_bits(m0) & small) - 1.0f;
  const float z = m * m;
  float y = 7.0376836292E-2f;
  y = y * m - 1.1514610310E-1f;
  y = y * m + 1.1676998740E-1f;
  y = y * m - 1.2420140846E-1f;
  y = y * m + 1.4249322787E-1f;
  y = y * m - 1.6668057665E-1f;
  y = y * m + 2.0000714765E-1f;
  y = y * m - 2.4999993993E-1f;
  y = y * m + 3.3333331174E-1f;
  y = y * m * z;
  y += e * -2.12194440e-4f;
  y += -0.5f * z;
  return m + y + e * 0.693359375f;
}
inline double log_normal(double x) { return std::log(x); }

// x log x with 0 log 0 = 0 (and subnormal x treated as 0: |x log x| < 1e-36 there); NaN stays NaN.
inline float xlogx_or_nan(float x) {
  const uint32_t tiny = mask_if(x <= Limits<float>::tiny);  // false for NaN
  const float safe = as_float((as_bits(x) & ~tiny) | (as_bits(1.0f) & tiny));
  return as_float(as_bits(x * log_normal(safe)) & ~tiny);
}
inline double xlogx_or_nan(double x) { return (x != x) ? x : xlogx(x); }

// 64-byte aligned scratch of n elements, owned.
template <typename T>
struct Scratch {
  T* p;
  explicit Scratch(int64_t n)
      : p(static_cast<T*>(::operator new[](sizeof(T) * std::max<int64_t>(n, 1), std::align_val_t(64)))) {}
  ~Scratch() { ::operator delete[](p, std::align_val_t(64)); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

// Per-thread state of one block of B items: Welford mean and m2 of the softmax ([C][B]), the
// summed snapshot entropies ([B]), and scratch.
template <typename T, int B>
struct BlockState {
  using Acc = double;
  const int C;
  Scratch<T> tile, mean_, m2_, rows;  // tile, mean, m2: [C][B]; rows: a zero-padded (B, C) copy
  alignas(64) T ent[B];
  alignas(64) T mx[B];
  alignas(64) T inv[B];
  alignas(64) Acc sum[B];
  alignas(64) Acc dot[B];

  explicit BlockState(int64_t C_)
      : C(static_cast<int>(C_)), tile(B * C_), mean_(B * C_), m2_(B * C_), rows(B * C_) {}

  void zero() {
    std::fill(mean_.p, mean_.p + B * C, T(0));
    std::fill(m2_.p, m2_.p + B * C, T(0));
    std::fill(ent, ent + B, T(0));
  }

  // The block's bn rows of an (N, C) array at row n0, B rows long: a partial last block is
  // copied into zero-padded scratch, so every loop below runs over all B lanes.
  const T* block_rows(const T* src, int64_t n0, int64_t bn) {
    if (bn == B) return src + n0 * C;
    std::copy(src + n0 * C, src + (n0 + bn) * C, rows.p);
    std::fill(rows.p + bn * C, rows.p + B * C, T(0));
    return rows.p;
  }

  // state rows n0..n0+bn from (N, C) arrays and back (the accumulator API)
  void load(const T* gmean, const T* gm2, const T* gent, int64_t n0, int64_t bn) {
    const T* mu = block_rows(gmean, n0, bn);
    for (int b = 0; b < B; ++b)
      for (int c = 0; c < C; ++c) mean_.p[c * B + b] = mu[b * C + c];
    const T* q = block_rows(gm2, n0, bn);
    for (int b = 0; b < B; ++b)
      for (int c = 0; c < C; ++c) m2_.p[c * B + b] = q[b * C + c];
    std::fill(ent, ent + B, T(0));
    std::copy(gent + n0, gent + n0 + bn, ent);
  }
  void store(T* gmean, T* gm2, T* gent, int64_t n0, int64_t bn) const {
    for (int64_t b = 0; b < bn; ++b)
      for (int c = 0; c < C; ++c) {
        gmean[(n0 + b) * C + c] = mean_.p[c * B + b];
        gm2[(n0 + b) * C + c] = m2_.p[c * B + b];
      }
    std::copy(ent, ent + bn, gent + n0);
  }

  // Folds one snapshot's block rows ((B, C) row-major) into the state; `count` snapshots were
  // folded before.
  void fold(const T* src, int64_t count) {
    const int C_ = C;
    T* lt = tile.p;
    // Class-major copy and row max. NaN never wins a comparison, but it is still copied and
    // poisons its item below; +inf gives max +inf and inf - inf = NaN; an all -inf row gives
    // max -inf and -inf - -inf = NaN.
#pragma omp simd
    for (int b = 0; b < B; ++b) {
      const T v = src[b * C_];
      lt[b] = v;
      mx[b] = v;
    }
    for (int c = 1; c < C_; ++c) {
      T* l = lt + c * B;
#pragma omp simd
      for (int b = 0; b < B; ++b) {
        const T v = src[b * C_ + c];
        l[b] = v;
        mx[b] = v > mx[b] ? v : mx[b];
      }
    }
    // e = exp(l - max) in place; H(p) = log sum e - sum e (l - max) / sum e.
    std::fill(sum, sum + B, Acc(0));
    std::fill(dot, dot + B, Acc(0));
    for (int c = 0; c < C_; ++c) {
      T* l = lt + c * B;
#pragma omp simd
      for (int b = 0; b < B; ++b) {
        T shifted;
        const T e = exp_nonpositive(l[b] - mx[b], shifted);
        l[b] = e;
        sum[b] += static_cast<Acc>(e);
        dot[b] += static_cast<Acc>(e * shifted);
      }
    }
#pragma omp simd
    for (int b = 0; b < B; ++b) {
      const T s = static_cast<T>(sum[b]);  // >= 1 (the max contributes 1) unless NaN
      ent[b] += log_normal(s) - static_cast<T>(dot[b] / sum[b]);  // NaN sum: dot / sum is NaN
      inv[b] = T(1) / s;
    }
    // Welford on p = e / sum: no sum-of-squares cancellation.
    const T inv_count = T(1) / static_cast<T>(count + 1);
    for (int c = 0; c < C_; ++c) {
      const T* e = lt + c * B;
      T* mu = mean_.p + c * B;
      T* q = m2_.p + c * B;
#pragma omp simd
      for (int b = 0; b < B; ++b) {
        const T p = e[b] * inv[b];
        const T delta = p - mu[b];
        mu[b] += delta * inv_count;
        q[b] += delta * (p - mu[b]);
      }
    }
  }

  void finalize(int64_t n0, int64_t bn, int64_t N, int64_t count, T* scores) {
    alignas(64) T top1[B], top2[B];
    Acc* H = sum;
    Acc* var = dot;
    std::fill(H, H + B, Acc(0));
    std::fill(var, var + B, Acc(0));
    std::fill(top1, top1 + B, T(0));
    std::fill(top2, top2 + B, T(0));
    for (int c = 0; c < C; ++c) {
      const T* mu = mean_.p + c * B;
      const T* q = m2_.p + c * B;
#pragma omp simd
      for (int b = 0; b < B; ++b) {
        const T p = mu[b];
        H[b] -= static_cast<Acc>(xlogx_or_nan(p));
        var[b] += static_cast<Acc>(q[b]);
        const T lo = p < top1[b] ? p : top1[b];
        top2[b] = lo > top2[b] ? lo : top2[b];
        top1[b] = p > top1[b] ? p : top1[b];
      }
    }
    const T inv_count = T(1) / static_cast<T>(count);
    const T var_scale = count > 1 ? T(1) / static_cast<T>(count - 1) : T(0);
    T* out_h = scores + kEntropy * N + n0;
    T* out_bald = scores + kBald * N + n0;
    T* out_var = scores + kVariance * N + n0;
    T* out_margin = scores + kMargin * N + n0;
    T* out_lc = scores + kLeastConfidence * N + n0;
    for (int64_t b = 0; b < bn; ++b) {
      const T h = static_cast<T>(H[b]);
      const T mi = h - ent[b] * inv_count;
      out_h[b] = h;
      out_bald[b] = mi > T(0) ? mi : (mi != mi ? mi : T(0));
      const T v = static_cast<T>(var[b]) * var_scale;
      out_var[b] = v < T(0) ? T(0) : v;  // m2 may round below 0 (FMA-contracted Welford steps)
      out_margin[b] = top1[b] - top2[b];
      out_lc[b] = T(1) - top1[b];
    }
  }
};

// Runs body(state, n0, bn) over item blocks in parallel, with one BlockState per thread.
// Dynamic: a thread whose core another process takes does fewer blocks instead of holding up
// the region's end (a static split waits for its share); each block writes only its own items.
template <typename T, int B, typename Body>
void for_each_block_of(int64_t N, int64_t C, Body body) {
  const int64_t nblocks = (N + B - 1) / B;
#pragma omp parallel
  {
    BlockState<T, B> st(C);
#pragma omp for schedule(dynamic, 8)
    for (int64_t blk = 0; blk < nblocks; ++blk) {
      const int64_t n0 = blk * B;
      body(st, n0, std::min<int64_t>(B, N - n0));
    }
  }
}

// Blocks of 64 items keep the three [C][B] tiles in L1 up to C = 64; 16 above.
template <typename T, typename Body>
void for_each_block(int64_t N, int64_t C, Body body) {
  if (C <= 64)
    for_each_block_of<T, 64>(N, C, body);
  else
    for_each_block_of<T, 16>(N, C, body);
}

}  // namespace

template <typename T>
void snapshot_scores_cpu(const T* const* logits, int64_t S, int64_t N, int64_t C, T* scores) {
  for_each_block<T>(N, C, [&](auto& st, int64_t n0, int64_t bn) {
    st.zero();
    for (int64_t s = 0; s < S; ++s) st.fold(st.block_rows(logits[s], n0, bn), s);
    st.finalize(n0, bn, N, S, scores);
  });
}

template <typename T>
void snapshot_accumulate_cpu(const T* logits, int64_t N, int64_t C, int64_t count, T* mean, T* m2,
                             T* ent_sum) {
  for_each_block<T>(N, C, [&](auto& st, int64_t n0, int64_t bn) {
    st.load(mean, m2, ent_sum, n0, bn);
    st.fold(st.block_rows(logits, n0, bn), count);
    st.store(mean, m2, ent_sum, n0, bn);
  });
}

template <typename T>
void snapshot_finalize_cpu(const T* mean, const T* m2, const T* ent_sum, int64_t N, int64_t C,
                           int64_t count, T* scores) {
  for_each_block<T>(N, C, [&](auto& st, int64_t n0, int64_t bn) {
    st.load(mean, m2, ent_sum, n0, bn);
    st.finalize(n0, bn, N, count, scores);
  });
}

#define MPTS_INSTANTIATE(T)                                                                       \
  template void snapshot_scores_cpu<T>(const T* const*, int64_t, int64_t, int64_t, T*);          \
  template void snapshot_accumulate_cpu<T>(const T*, int64_t, int64_t, int64_t, T*, T*, T*);     \
  template void snapshot_finalize_cpu<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t, \
                                         T*);
MPTS_INSTANTIATE(float)
MPTS_INSTANTIATE(double)
#undef MPTS_INSTANTIATE

}  // namespace mpts
