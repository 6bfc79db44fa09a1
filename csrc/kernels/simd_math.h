// exp and log for the CPU kernels' epilogues, each variant defined once (internal header: the
// *_cpu.cpp files include it, the public kernel headers do not).
//
// Why not libm: expf/logf are calls the compiler cannot vectorise without -ffast-math, and
// -ffast-math would also delete the NaN propagation the ops rely on to report non-finite inputs.
// So every variant here is straight-line float code: scalar functions that `#pragma omp simd`
// loops vectorise, and twins in GCC/Clang vector types where the auto-vectoriser would not
// (their selects are plain blends). A twin performs its scalar version's operations in the same
// order; the variants that differ are different algorithms with different bits, kept apart on
// purpose (changing which one a kernel calls changes that kernel's results).
//
// Errors are the maximum over every float of the stated range, against double-precision exp/log,
// in ulps of the exact result (`simd_math_check --exhaustive`; csrc/kernels/simd_math_check.cc
// re-measures every 509th float and fails above these bounds, `make simd-math-check`). Measured
// built with -O3 -march=native (GCC 12, AVX-512 x86-64, FMA contraction on, as the extension is
// built). Without FMA (MPTS_FAST_NATIVE_ARCH=0 on x86-64): exp_nonpositive 67.775 ulp (see there),
// exp_cephes 0.992, log_cephes 0.829; the rest unchanged or not built.
//
//   function                           algorithm                                    range                max error
//   exp_cephes, exp_cephes_x8          Cephes expf: Cody-Waite, Horner degree 5      [-87.3365, 88.3763)  1.023 ulp
//   exp_nonpositive, _lanes<N>         Cephes polynomial, one-FMA reduction, Estrin  [-87.3365, 0]        4.485 ulp
//                                                                                    (-14, 0]             1.216 ulp
//   exp_nonpositive_table16 (AVX-512)  2^(j/16) table, degree-3 polynomial           [-87.3365, 0]        1.061 ulp
//   log_cephes, log_cephes_lanes<N>    Cephes logf polynomial                        normal x > 0         0.827 ulp
//
// double overloads (for the kernels' templates) are std::exp / std::log.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace mpts {

// Bit views of a float, for selects that cannot trap (see exp_nonpositive).
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

// The smallest normal float (FLT_MIN) and double (DBL_MIN).
template <typename T>
struct Limits;
template <>
struct Limits<float> {
  static constexpr float tiny = 1.17549435e-38f;
};
template <>
struct Limits<double> {
  static constexpr double tiny = 2.2250738585072014e-308;
};

// ---------------------------------------------------------------- shared polynomial pieces
// Templates over float and the GCC vector types below (whose arithmetic with a float operand
// applies it to every lane), so a scalar function and its vector twin run the same operations.

// r = x - k ln 2 in two Cody-Waite steps (ln 2 = 0.693359375 - 2.12194440e-4, the first exact in
// 9 bits, so k * 0.693359375 is exact for |k| < 2^15).
template <typename F>
inline F cody_waite_ln2(F x, F k) {
  F r = x - k * 0.693359375f;
  return r - k * -2.12194440e-4f;
}

// Cephes expf's e^r for |r| <= ln 2 / 2: 1 + r + r^2 P(r), P of degree 5 by Horner.
template <typename F>
inline F cephes_exp_poly(F r) {
  F p = F{} + 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  return p * r * r + r + 1.0f;
}

// The same polynomial by Estrin's scheme: a shorter dependency chain, different rounding.
template <typename F>
inline F cephes_exp_poly_estrin(F r) {
  const F r2 = r * r;
  const F a = r * 1.9875691500E-4f + 1.3981999507E-3f;
  const F b = r * 8.3334519073E-3f + 4.1665795894E-2f;
  const F c = r * 1.6666665459E-1f + 5.0000001201E-1f;
  return ((a * r2 + b) * r2 + c) * r2 + r + 1.0f;
}

// Cephes logf's log(1 + m) + e ln 2 for m in [sqrt(1/2) - 1, sqrt(2) - 1): m - m^2 / 2 + m^3 P(m),
// P of degree 8, and e ln 2 in two parts as in cody_waite_ln2.
template <typename F>
inline F cephes_log_poly(F m, F e) {
  const F z = m * m;
  F y = F{} + 7.0376836292E-2f;
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

// ---------------------------------------------------------------- exp over the whole float range

// Cephes expf: clamp to [-87.3365, 88.7228], k = nearbyint(x / ln 2), r = x - k ln 2 in two
// Cody-Waite steps, degree-5 polynomial by Horner, times 2^k. Used where the argument has either
// sign (the MMD kernel's exp(-D / s), the sensitivity sigmoids).
// Error: 1.023 ulp at most on [-87.3365, 88.3763).
// Edges: x < -87.3365 gives +0 (results below FLT_MIN flush to 0; exp(-inf) = 0 exactly);
// x >= 88.3762665 gives +inf: there k = 128 and 2^k overflows, although exp(x) < FLT_MAX up to
// x = 88.7228 (harmless for its callers: a sigmoid of -88.4 is 0 either way); NaN gives NaN.
inline float exp_cephes(float x) {
  const bool under = x < -87.3365f;
  const bool over = x > 88.7228f;
  float xc = x < -87.3365f ? -87.3365f : (x > 88.7228f ? 88.7228f : x);
  const float fx = std::nearbyint(xc * 1.44269504088896341f);
  const float r = cody_waite_ln2(xc, fx);
  const float p = cephes_exp_poly(r);
  int32_t bits = (static_cast<int32_t>(fx) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  float out = p * scale;
  out = under ? 0.0f : out;
  out = over ? INFINITY : out;
  return x != x ? x : out;  // NaN in, NaN out
}
inline double exp_cephes(double x) { return std::exp(x); }

// ---------------------------------------------------------------- exp of x <= 0 (softmax)

// Below kExpLow the result would be below 2^-126 = FLT_MIN: it is flushed to 0.
constexpr float kExpLow = -87.3365f;
constexpr float kLn2 = 0.693147180559945309f;

// exp(x) for x <= 0 or NaN (x = logit - row max), with the argument actually used in the
// polynomial: `clamped` = max(x, kExpLow) (NaN stays NaN). The caller multiplies e by `clamped`
// instead of x, so a masked class (x = -inf, e = 0) adds 0 rather than 0 * -inf = NaN.
// Cephes' degree-5 polynomial, evaluated Estrin-style (a shorter dependency chain than Horner),
// with r = x - k ln 2 in one FMA-contracted step (with -march=native), not Cody-Waite's two: the
// float ln 2 is 1.9e-9 off, which moves exp(x) by |k| * 1.9e-9 relative.
// Error: 1.216 ulp at most on (-14, 0], 4.485 ulp on [-87.3365, 0] (near x = -86.6, where
// e <= 2^-124 cannot move a sum that holds a 1). Without FMA the reduction rounds k ln 2 first:
// 9.037 ulp on (-14, 0] and 67.775 ulp on [-87.3365, 0] (bitwise the same as before this code
// moved here; a Cody-Waite second step would fix it but change the results with FMA too). Meant for
// x <= 0: positive x is not clamped (x > 88.7 overflows the exponent field and gives garbage).
// Edges: x < kExpLow (-inf included) gives +0 exactly, with clamped = kExpLow; NaN gives NaN.
// Every select is done on the bits (and/or with an all-ones mask): GCC will not if-convert a
// select whose arms it could sink into branches under its default -ftrapping-math, so a
// `x < lo ? lo : x` would keep the caller's `omp simd` loop scalar (check with -fopt-info-vec).
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
  const float r = xc - k * kLn2;
  const float p = cephes_exp_poly_estrin(r);
  const float e = p * as_float((k_int + 127u) << 23);  // k >= -126: 2^k is normal
  return as_float(as_bits(e) & ~below);                // NaN x: r, p and e are NaN
}
inline double exp_nonpositive(double x, double& clamped) {
  clamped = x < -800.0 ? -800.0 : x;  // exp underflows to 0 well above -800
  return std::exp(x);
}

// ---------------------------------------------------------------- log

// log(x) for normal positive x: Cephes logf. x = m 2^e with m in [sqrt(1/2), sqrt(2)), then
// cephes_log_poly(m - 1, e).
// Error: 0.827 ulp at most over all normal positive floats.
// Edges: callers guard the rest; x <= 0, subnormal x, +inf and NaN give finite garbage, not
// -inf/NaN (xlogx_or_nan below is the guarded form).
// Selects on the bits, as in exp_nonpositive.
inline float log_cephes(float x) {
  const uint32_t bits = as_bits(x);
  const float e0 = static_cast<float>(static_cast<int32_t>((bits >> 23) & 0xff) - 126);
  const float m0 = as_float((bits & 0x007fffffu) | 0x3f000000u);  // mantissa in [0.5, 1)
  const uint32_t small = mask_if(m0 < 0.707106781186547524f);
  const float e = e0 - as_float(as_bits(1.0f) & small);  // m < sqrt(1/2): 2m - 1, exponent - 1
  const float m = m0 + as_float(as_bits(m0) & small) - 1.0f;
  return cephes_log_poly(m, e);
}
inline double log_cephes(double x) { return std::log(x); }

// x log x with 0 log 0 = 0 (and subnormal x treated as 0: |x log x| < 1e-36 there); NaN stays
// NaN (float: x * log_cephes(x), its error plus half an ulp).
inline float xlogx_or_nan(float x) {
  const uint32_t tiny = mask_if(x <= Limits<float>::tiny);  // false for NaN
  const float safe = as_float((as_bits(x) & ~tiny) | (as_bits(1.0f) & tiny));
  return as_float(as_bits(x * log_cephes(safe)) & ~tiny);
}
inline double xlogx_or_nan(double x) {
  if (x != x) return x;
  const double safe = x > Limits<double>::tiny ? x : 1.0;
  return x > Limits<double>::tiny ? x * std::log(safe) : 0.0;
}

// ---------------------------------------------------------------- vector twins

#if defined(__GNUC__) && defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector) && __has_builtin(__builtin_convertvector)
#define MPTS_SIMD_VECTOR_TYPES 1
#endif
#endif

#ifdef MPTS_SIMD_VECTOR_TYPES
#if defined(__GNUC__) && !defined(__clang__)
// Without -mavx, GCC warns that passing 32-byte vectors changes the ABI; these helpers are
// internal and inlined, so no ABI is involved. (No push/pop: GCC reports some of these at the end
// of the file, after a pop.)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

// GCC/Clang vectors of N floats and of N 32-bit integers (comparison results, bit patterns).
template <int N>
struct Lanes;
template <>
struct Lanes<8> {
  using f = float __attribute__((vector_size(32)));
  using u = uint32_t __attribute__((vector_size(32)));
  using i = int32_t __attribute__((vector_size(32)));
};
template <>
struct Lanes<16> {
  using f = float __attribute__((vector_size(64)));
  using u = uint32_t __attribute__((vector_size(64)));
  using i = int32_t __attribute__((vector_size(64)));
};
template <int N>
using VecF = typename Lanes<N>::f;
template <int N>
using VecU = typename Lanes<N>::u;
template <int N>
using VecI = typename Lanes<N>::i;

// exp_cephes on 8 lanes. GCC does not vectorise exp_cephes's selects in an `omp simd` loop (it
// keeps them as branches, "control flow in loop", since float compares may trap); here they are
// blends. Same operations as exp_cephes, except that k is rounded with the 1.5 * 2^23 shifter
// (to nearest even, like nearbyint; but FMA-contracted it rounds the exact x log2(e), not its
// float product, so where that product rounds across a half-integer k differs by one: 24 floats
// of the range, each within the same 1.023 ulp bound). Edges as exp_cephes, except that +inf
// starts at x = 88.3762741 (one of the 24).
inline VecF<8> exp_cephes_x8(VecF<8> x) {
  using f8 = VecF<8>;
  using i8 = VecI<8>;
  const f8 lo = f8{} + -87.3365f, hi = f8{} + 88.7228f;
  const i8 under = x < lo, over = x > hi;
  f8 xc = under ? lo : x;
  xc = over ? hi : xc;
  const f8 round = f8{} + 12582912.0f;
  const f8 fx = (xc * 1.44269504088896341f + round) - round;
  const f8 r = cody_waite_ln2(xc, fx);
  const f8 p = cephes_exp_poly(r);
  const i8 bits = (__builtin_convertvector(fx, i8) + 127) << 23;
  f8 out = p * (f8)bits;  // a vector cast reinterprets the bits
  out = under ? f8{} + 0.0f : out;
  out = over ? f8{} + INFINITY : out;
  return (x != x) ? x : out;  // NaN in, NaN out
}

// exp_nonpositive on N lanes, bitwise its results (same operations in the same order).
template <int N>
inline VecF<N> exp_nonpositive_lanes(VecF<N> x, VecF<N>& clamped) {
  using fv = VecF<N>;
  using uv = VecU<N>;
  using iv = VecI<N>;
  const iv below = x < fv{} + kExpLow;
  const fv xc = below ? fv{} + kExpLow : x;  // NaN stays NaN
  clamped = xc;
  const float shifter = 12582912.0f;
  const fv t = xc * 1.44269504088896341f + shifter;
  const fv k = t - shifter;
  const uv k_int = (uv)t - (uv{} + as_bits(shifter));
  const fv r = xc - k * kLn2;
  const fv p = cephes_exp_poly_estrin(r);
  const fv e = p * (fv)((k_int + 127u) << 23);
  return below ? fv{} + 0.0f : e;
}

// log_cephes on N lanes, bitwise its results.
template <int N>
inline VecF<N> log_cephes_lanes(VecF<N> x) {
  using fv = VecF<N>;
  using uv = VecU<N>;
  using iv = VecI<N>;
  const uv bits = (uv)x;
  const fv e0 = __builtin_convertvector((iv)((bits >> 23) & 0xffu) - 126, fv);
  const fv m0 = (fv)((bits & 0x007fffffu) | 0x3f000000u);
  const uv small = (uv)(m0 < fv{} + 0.707106781186547524f);
  const fv e = e0 - (fv)((uv)(fv{} + 1.0f) & small);
  const fv m = m0 + (fv)((uv)m0 & small) - 1.0f;
  return cephes_log_poly(m, e);
}

#if defined(__AVX512F__)
// 2^(j / 16), j = 0..15, correctly rounded to float.
alignas(64) constexpr float kExp2Sixteenths[16] = {
    0x1.000000p+0f, 0x1.0b5586p+0f, 0x1.172b84p+0f, 0x1.2387a6p+0f, 0x1.306fe0p+0f, 0x1.3dea64p+0f,
    0x1.4bfdaep+0f, 0x1.5ab07ep+0f, 0x1.6a09e6p+0f, 0x1.7a1148p+0f, 0x1.8ace54p+0f, 0x1.9c4918p+0f,
    0x1.ae89fap+0f, 0x1.c199bep+0f, 0x1.d5818ep+0f, 0x1.ea4afap+0f};

// exp_nonpositive's contract on 16 lanes by a different algorithm (different bits): exp(x) =
// 2^(k / 16) e^r, k = round(16 x / ln 2), |r| <= ln 2 / 32: 2^(j / 16) (j = k mod 16) from a
// 16-entry table in one register (vpermps), e^r - 1 = q by a degree-3 polynomial (truncation 1e-8
// relative), the result T + T q in one FMA and 2^floor(k / 16) with vscalefps, which also zeroes
// the flushed lanes. r in two Cody-Waite steps (hi has 12 significant bits, so k hi is exact for
// |k| <= 2016). Fewer instructions than exp_nonpositive_lanes<16>: in-cache snapshot fold at
// C = 10, one thread, best of 3,000 calls in five alternating runs, 0.629-0.631 -> 0.562-0.564 ns
// per logit.
// Error: 1.061 ulp at most on [-87.3365, 0].
// Edges: as exp_nonpositive (x < kExpLow and -inf give +0 with clamped = kExpLow; NaN gives
// NaN, clamped NaN).
inline VecF<16> exp_nonpositive_table16(VecF<16> x, VecF<16>& clamped) {
  const __m512 xv = (__m512)x, lo = _mm512_set1_ps(kExpLow);
  const __mmask16 keep = _mm512_cmp_ps_mask(xv, lo, _CMP_NLT_UQ);  // x >= low or NaN
  const __m512 xc = _mm512_max_ps(lo, xv);                          // NaN x stays NaN
  clamped = (VecF<16>)xc;
  const __m512 shifter = _mm512_set1_ps(12582912.0f);
  const __m512 t = _mm512_fmadd_ps(xc, _mm512_set1_ps(23.0831206542233f), shifter);  // 16 / ln 2
  const __m512 k = _mm512_sub_ps(t, shifter);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.0433197021484375f), xc);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.9966364561696537e-06f), r);
  const __m512 a = _mm512_fmadd_ps(r, _mm512_set1_ps(1.0f / 6.0f), _mm512_set1_ps(0.5f));
  const __m512 q = _mm512_fmadd_ps(_mm512_mul_ps(r, r), a, r);
  const __m512 T = _mm512_permutexvar_ps(_mm512_castps_si512(t), _mm512_load_ps(kExp2Sixteenths));
  return (VecF<16>)_mm512_maskz_scalef_ps(keep, _mm512_fmadd_ps(T, q, T),
                                          _mm512_mul_ps(k, _mm512_set1_ps(0.0625f)));
}
#endif  // __AVX512F__
#endif  // MPTS_SIMD_VECTOR_TYPES

}  // namespace mpts
