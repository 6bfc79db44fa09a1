// Checks every exp/log variant of simd_math.h: its maximum error in ulps over the range it is
// used on (against double-precision exp/log) stays within the bound its comment states, its twins
// give bitwise its results, and NaN, infinities and the flush range behave as documented.
//
//   simd_math_check                 every 509th float of each range (under a second)
//   simd_math_check --exhaustive    every float (a few minutes; how the documented bounds were measured)
//
// Built and run by `make simd-math-check` (part of `make test`) and by CMake's ctest.
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

#include "simd_math.h"

namespace {

using mpts::as_bits;
using mpts::as_float;

int failures = 0;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    std::printf("FAIL %s\n", what.c_str());
    ++failures;
  }
}

bool same_bits(float a, float b) { return as_bits(a) == as_bits(b); }

// |got - exact| in units of the last place of the float nearest to exact.
double ulp_error(float got, double exact) {
  const double a = std::fabs(exact);
  const double ulp = a < FLT_MIN ? std::ldexp(1.0, -149) : std::ldexp(1.0, std::ilogb(a) - 23);
  return std::fabs(double(got) - exact) / ulp;
}

// Calls f(x) for every `stride`-th float x in [lo, hi] (walking the bit patterns), in batches of
// up to 16 consecutive values, so vector variants see full registers.
void sweep(float lo, float hi, uint32_t stride, const std::function<void(const float*, int)>& f) {
  // Order-preserving map of floats to integers: negative floats below positive ones.
  auto key = [](float v) -> int64_t {
    const uint32_t b = as_bits(v);
    return (b & 0x80000000u) ? -int64_t(b & 0x7fffffffu) : int64_t(b);
  };
  auto from_key = [](int64_t k) { return k < 0 ? as_float(uint32_t(-k) | 0x80000000u) : as_float(uint32_t(k)); };
  float batch[16];
  int n = 0;
  for (int64_t k = key(lo), end = key(hi); k <= end; k += stride) {
    batch[n++] = from_key(k);
    if (n == 16) {
      f(batch, n);
      n = 0;
    }
  }
  if (n) {
    for (int j = n; j < 16; ++j) batch[j] = batch[n - 1];  // pad with the last value
    f(batch, 16);
  }
}

struct MaxError {
  double ulps = 0;
  float at = 0;
  void add(float x, float got, double exact) {
    const double e = ulp_error(got, exact);
    if (e > ulps || e != e) {
      ulps = e;
      at = x;
    }
  }
};

void report(const char* name, const char* range, const MaxError& m, double bound) {
  std::printf("%-32s %-22s max %.3f ulp at x = %.9g (bound %.3f)\n", name, range, m.ulps, m.at, bound);
  expect(m.ulps <= bound, std::string(name) + ": error above its documented bound");
}

// The bounds simd_math.h states: the exhaustive maxima, rounded up in the third decimal.
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA) || defined(__FP_FAST_FMAF)
constexpr double kExpNonposUlp = 4.486, kExpNonposNear0Ulp = 1.217, kLogCephesUlp = 0.828;
#else  // without FMA (exp_nonpositive's reduction is not fused)
constexpr double kExpNonposUlp = 67.776, kExpNonposNear0Ulp = 9.038, kLogCephesUlp = 0.830;
#endif
constexpr double kExpCephesUlp = 1.024, kExpTableUlp = 1.062;

constexpr float kLow = mpts::kExpLow;
// exp_cephes overflows from here on (k = 128), see its comment.
constexpr float kCephesInf = 88.3762665f;
constexpr float kHigh = 88.3762589f;  // the float below kCephesInf

void check_exp_cephes(uint32_t stride) {
  MaxError m;
  sweep(kLow, kHigh, stride, [&](const float* x, int n) {
    for (int j = 0; j < n; ++j) m.add(x[j], mpts::exp_cephes(x[j]), std::exp(double(x[j])));
  });
  report("exp_cephes", "[-87.3365, 88.3763)", m, kExpCephesUlp);
  expect(std::isnan(mpts::exp_cephes(NAN)), "exp_cephes(NaN) is NaN");
  expect(same_bits(mpts::exp_cephes(-INFINITY), 0.0f), "exp_cephes(-inf) is +0");
  expect(same_bits(mpts::exp_cephes(-87.34f), 0.0f), "exp_cephes flushes below -87.3365 to +0");
  expect(mpts::exp_cephes(INFINITY) == INFINITY, "exp_cephes(+inf) is +inf");
  expect(mpts::exp_cephes(kCephesInf) == INFINITY && mpts::exp_cephes(kHigh) < INFINITY,
         "exp_cephes is +inf from 88.3762665 on");
  expect(mpts::exp_cephes(0.0f) == 1.0f, "exp_cephes(0) is 1");
}

#ifdef MPTS_SIMD_VECTOR_TYPES
using f8 = mpts::VecF<8>;
using f16 = mpts::VecF<16>;

template <typename V, int N>
V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

void check_exp_cephes_x8(uint32_t stride) {
  MaxError m;
  long differ = 0;
  sweep(kLow, kHigh, stride, [&](const float* x, int n) {
    for (int h = 0; h < n; h += 8) {
      const f8 e = mpts::exp_cephes_x8(load<f8, 8>(x + h));
      for (int j = 0; j < 8; ++j) {
        m.add(x[h + j], e[j], std::exp(double(x[h + j])));
        differ += !same_bits(e[j], mpts::exp_cephes(x[h + j]));
      }
    }
  });
  report("exp_cephes_x8", "[-87.3365, 88.3763)", m, kExpCephesUlp);
  std::printf("%-32s %ld swept values differ from exp_cephes\n", "", differ);
  const f8 e = mpts::exp_cephes_x8(f8{NAN, -INFINITY, -87.34f, INFINITY, 88.5f, 0.0f, kHigh, -1.0f});
  expect(std::isnan(e[0]) && same_bits(e[1], 0.0f) && same_bits(e[2], 0.0f) && e[3] == INFINITY &&
             e[4] == INFINITY && e[5] == 1.0f && e[6] < INFINITY,
         "exp_cephes_x8 edges (NaN, -inf, flush, +inf, overflow, 0)");
}
#endif

void check_exp_nonpositive(uint32_t stride) {
  MaxError all, near0;
  sweep(kLow, 0.0f, stride, [&](const float* x, int n) {
    for (int j = 0; j < n; ++j) {
      float c;
      const float e = mpts::exp_nonpositive(x[j], c);
      all.add(x[j], e, std::exp(double(x[j])));
      if (x[j] > -14.0f) near0.add(x[j], e, std::exp(double(x[j])));
      if (!same_bits(c, x[j])) expect(false, "exp_nonpositive: clamped == x inside the range");
    }
  });
  report("exp_nonpositive", "[-87.3365, 0]", all, kExpNonposUlp);
  report("exp_nonpositive", "(-14, 0]", near0, kExpNonposNear0Ulp);
  float c;
  expect(std::isnan(mpts::exp_nonpositive(NAN, c)) && std::isnan(c), "exp_nonpositive(NaN) is NaN, clamped NaN");
  expect(same_bits(mpts::exp_nonpositive(-INFINITY, c), 0.0f) && c == kLow,
         "exp_nonpositive(-inf) is +0, clamped kExpLow");
  expect(same_bits(mpts::exp_nonpositive(-100.0f, c), 0.0f) && c == kLow, "exp_nonpositive flushes below kExpLow");
  expect(mpts::exp_nonpositive(0.0f, c) == 1.0f, "exp_nonpositive(0) is 1");
}

#ifdef MPTS_SIMD_VECTOR_TYPES
template <int N>
void check_exp_nonpositive_lanes(uint32_t stride, const char* name) {
  using V = mpts::VecF<N>;
  long differ = 0;
  sweep(kLow, 0.0f, stride, [&](const float* x, int n) {
    for (int h = 0; h < n; h += N) {
      V c;
      const V e = mpts::exp_nonpositive_lanes<N>(load<V, N>(x + h), c);
      for (int j = 0; j < N; ++j) {
        float cs;
        const float es = mpts::exp_nonpositive(x[h + j], cs);
        differ += !same_bits(e[j], es) || !same_bits(c[j], cs);
      }
    }
  });
  std::printf("%-32s %-22s %ld swept values differ from exp_nonpositive\n", name, "[-87.3365, 0]", differ);
  expect(differ == 0, std::string(name) + ": bitwise exp_nonpositive");
  V in{};
  in[0] = NAN;
  in[1] = -INFINITY;
  in[2] = -100.0f;
  V c;
  const V e = mpts::exp_nonpositive_lanes<N>(in, c);
  expect(std::isnan(e[0]) && std::isnan(c[0]) && same_bits(e[1], 0.0f) && c[1] == kLow && same_bits(e[2], 0.0f) &&
             e[3] == 1.0f,
         std::string(name) + " edges (NaN, -inf, flush, 0)");
}
#endif

#if defined(MPTS_SIMD_VECTOR_TYPES) && defined(__AVX512F__)
void check_exp_nonpositive_table16(uint32_t stride) {
  MaxError m;
  sweep(kLow, 0.0f, stride, [&](const float* x, int n) {
    f16 c;
    const f16 e = mpts::exp_nonpositive_table16(load<f16, 16>(x), c);
    for (int j = 0; j < n; ++j) m.add(x[j], e[j], std::exp(double(x[j])));
  });
  report("exp_nonpositive_table16", "[-87.3365, 0]", m, kExpTableUlp);
  f16 in{};
  in[0] = NAN;
  in[1] = -INFINITY;
  in[2] = -100.0f;
  f16 c;
  const f16 e = mpts::exp_nonpositive_table16(in, c);
  expect(std::isnan(e[0]) && std::isnan(c[0]) && same_bits(e[1], 0.0f) && c[1] == kLow && same_bits(e[2], 0.0f) &&
             e[3] == 1.0f,
         "exp_nonpositive_table16 edges (NaN, -inf, flush, 0)");
}
#endif

void check_log_cephes(uint32_t stride) {
  MaxError m;
  sweep(FLT_MIN, FLT_MAX, stride, [&](const float* x, int n) {
    for (int j = 0; j < n; ++j) m.add(x[j], mpts::log_cephes(x[j]), std::log(double(x[j])));
  });
  report("log_cephes", "normal x > 0", m, kLogCephesUlp);
  expect(mpts::log_cephes(1.0f) == 0.0f, "log_cephes(1) is 0");
  // Guarded forms: 0 log 0 = 0, subnormals count as 0, NaN stays NaN.
  expect(same_bits(mpts::xlogx_or_nan(0.0f), 0.0f) && same_bits(mpts::xlogx_or_nan(1e-40f), 0.0f),
         "xlogx_or_nan(0) and (subnormal) are +0");
  expect(std::isnan(mpts::xlogx_or_nan(NAN)) && std::isnan(mpts::xlogx_or_nan(double(NAN))),
         "xlogx_or_nan(NaN) is NaN");
  expect(mpts::xlogx_or_nan(0.0) == 0.0 && mpts::xlogx_or_nan(1.0f) == 0.0f, "xlogx_or_nan(0 double, 1) is 0");
}

#ifdef MPTS_SIMD_VECTOR_TYPES
template <int N>
void check_log_cephes_lanes(uint32_t stride, const char* name) {
  using V = mpts::VecF<N>;
  long differ = 0;
  sweep(FLT_MIN, FLT_MAX, stride, [&](const float* x, int n) {
    for (int h = 0; h < n; h += N) {
      const V l = mpts::log_cephes_lanes<N>(load<V, N>(x + h));
      for (int j = 0; j < N; ++j) differ += !same_bits(l[j], mpts::log_cephes(x[h + j]));
    }
  });
  std::printf("%-32s %-22s %ld swept values differ from log_cephes\n", name, "normal x > 0", differ);
  expect(differ == 0, std::string(name) + ": bitwise log_cephes");
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const bool exhaustive = argc > 1 && std::strcmp(argv[1], "--exhaustive") == 0;
  const uint32_t stride = exhaustive ? 1 : 509;
  check_exp_cephes(stride);
  check_exp_nonpositive(stride);
  check_log_cephes(stride);
#ifdef MPTS_SIMD_VECTOR_TYPES
  check_exp_cephes_x8(stride);
  check_exp_nonpositive_lanes<8>(stride, "exp_nonpositive_lanes<8>");
  check_exp_nonpositive_lanes<16>(stride, "exp_nonpositive_lanes<16>");
  check_log_cephes_lanes<8>(stride, "log_cephes_lanes<8>");
  check_log_cephes_lanes<16>(stride, "log_cephes_lanes<16>");
#if defined(__AVX512F__)
  check_exp_nonpositive_table16(stride);
#else
  std::printf("exp_nonpositive_table16: not built (no AVX-512)\n");
#endif
#else
  std::printf("vector twins: not built (no GCC/Clang vector types)\n");
#endif
  std::printf("simd_math_check (%s): %s\n", exhaustive ? "every float" : "every 509th float",
              failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
