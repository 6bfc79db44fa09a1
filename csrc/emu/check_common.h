// What every emulated-kernel check shares: device buffers with poisoned contents and guard
// zones, storage-type conversions, the GEMM that stands in for cuBLAS, and the case tally.
#pragma once

#include "cuda_emu.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cinttypes>
#include <memory>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common.h"

namespace check {

// ------------------------------------------------------------------------- the tally
// One case = one kernel call compared with its references. The last line a check prints is
// parsed by scripts/cuda_emu.sh: "cuda-emu <name> <schedule>: cases=N passed=M faults=F".
class Suite {
 public:
  explicit Suite(const char* name) : name_(name) {
    const char* s = std::getenv("CUDA_EMU_SEED");
    seed_ = s ? std::strtoull(s, nullptr, 10) : std::random_device{}();
    rng.seed(seed_);
  }

  // Records one case; prints why it failed (the first 40 failures).
  bool expect(bool ok, const char* fmt, ...) {
    ++cases_;
    if (ok) return true;
    if (++failed_ <= 40) {
      std::va_list ap;
      va_start(ap, fmt);
      std::printf("FAIL %s: ", name_);
      std::vprintf(fmt, ap);
      std::printf("\n");
      va_end(ap);
    }
    return false;
  }

  int finish() const {
    const long faults = cuda_emu::faults.load();
    if (failed_ || faults)
      std::printf("cuda-emu %s: reproduce with CUDA_EMU_SEED=%llu CUDA_EMU_SCHEDULE=%s\n", name_,
                  static_cast<unsigned long long>(seed_), schedule());
    std::printf("cuda-emu %s %s: cases=%ld passed=%ld faults=%ld launches=%ld warp-calls=%ld\n", name_,
                schedule(), cases_, cases_ - failed_, faults, cuda_emu::launches.load(),
                cuda_emu::warp_calls.load());
    return (failed_ || faults) ? 1 : 0;
  }

  static const char* schedule() { return cuda_emu::descending() ? "descending" : "ascending"; }

  std::mt19937_64 rng;

 private:
  const char* name_;
  unsigned long long seed_ = 0;
  long cases_ = 0, failed_ = 0;
};

// ------------------------------------------------------------------------- device buffers
// Device memory is host memory under HIP-CPU. Each buffer has guard zones on both sides that
// must come back untouched, and its contents start poisoned (0x7E bytes: ~8e37 as float,
// ~1e300 as double, a huge index as int64), so an output a kernel forgets to write, or a
// workspace it forgets to clear, fails the comparison instead of passing by luck.
constexpr size_t kGuard = 256;
constexpr unsigned char kGuardByte = 0xA5;
constexpr unsigned char kPoisonByte = 0x7E;

template <typename T>
class Buffer {
 public:
  explicit Buffer(size_t n, size_t misalign = 0) : n_(n), misalign_(misalign) {
    bytes_ = n * sizeof(T);
    if (hipMalloc(reinterpret_cast<void**>(&raw_), bytes_ + 2 * kGuard + misalign) != hipSuccess) std::abort();
    std::memset(raw_, kGuardByte, bytes_ + 2 * kGuard + misalign);
    poison();
  }
  Buffer(const std::vector<T>& host, size_t misalign = 0) : Buffer(host.size(), misalign) { upload(host); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { hipFree(raw_); }

  T* get() const { return reinterpret_cast<T*>(raw_ + kGuard + misalign_); }
  size_t size() const { return n_; }
  void poison() { std::memset(get(), kPoisonByte, bytes_); }
  void zero() { std::memset(get(), 0, bytes_); }
  void upload(const std::vector<T>& host) {
    if (!host.empty()) std::memcpy(get(), host.data(), host.size() * sizeof(T));
  }
  // Copies back after the stream has drained.
  std::vector<T> download() const {
    hipStreamSynchronize(cuda_emu::stream());
    return std::vector<T>(get(), get() + n_);
  }
  bool guards_intact() const {
    hipStreamSynchronize(cuda_emu::stream());
    const unsigned char* tail = raw_ + kGuard + misalign_ + bytes_;
    for (size_t i = 0; i < kGuard + misalign_; ++i)
      if (raw_[i] != kGuardByte) return false;
    for (size_t i = 0; i < kGuard; ++i)
      if (tail[i] != kGuardByte) return false;
    return true;
  }

 private:
  unsigned char* raw_ = nullptr;
  size_t n_, bytes_ = 0, misalign_;
};

inline void sync() { hipStreamSynchronize(cuda_emu::stream()); }

// ------------------------------------------------------------------------- storage types
enum class Storage { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };
inline const char* name(Storage s) { return s == Storage::kFloat32 ? "f32" : s == Storage::kFloat16 ? "f16" : "bf16"; }

// The value a float becomes once stored in `s` (the references run on these values).
inline float stored(float v, Storage s) {
  if (s == Storage::kFloat16) return __half2float(__float2half(v));
  if (s == Storage::kBFloat16) return __bfloat162float(__float2bfloat16(v));
  return v;
}

// A device copy of `host` in storage type `s` (host values already representable).
class StoredRows {
 public:
  StoredRows(const std::vector<float>& host, Storage s) : s_(s) {
    if (s == Storage::kFloat32) {
      f32_ = std::make_unique<Buffer<float>>(host);
    } else {
      std::vector<std::uint16_t> bits(host.size());
      for (size_t i = 0; i < host.size(); ++i) {
        if (s == Storage::kFloat16) {
          const __half h = __float2half(host[i]);
          std::memcpy(&bits[i], &h, 2);
        } else {
          bits[i] = __float2bfloat16(host[i]).bits;
        }
      }
      u16_ = std::make_unique<Buffer<std::uint16_t>>(bits);
    }
  }
  const void* get() const { return f32_ ? static_cast<const void*>(f32_->get()) : static_cast<const void*>(u16_->get()); }
  size_t elem_bytes() const { return s_ == Storage::kFloat32 ? 4 : 2; }

 private:
  Storage s_;
  std::unique_ptr<Buffer<float>> f32_;
  std::unique_ptr<Buffer<std::uint16_t>> u16_;
};

// ------------------------------------------------------------------------- the GEMM callback
// cuBLAS stands in as gemm_naive run after the stream has drained: the kernels enqueued before
// it have finished, and what is enqueued after it sees its result (stream order).
inline long gemm_calls = 0;
inline mpts::GemmFn<float> stream_gemm() {
  return [](bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
            const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    sync();
    ++gemm_calls;
    mpts::gemm_naive<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  };
}

// ------------------------------------------------------------------------- comparisons
// |a - ref| <= atol + rtol |ref|, with NaN equal only to NaN.
inline bool close(double a, double ref, double atol, double rtol) {
  if (std::isnan(a) || std::isnan(ref)) return std::isnan(a) && std::isnan(ref);
  if (std::isinf(ref)) return a == ref;
  return std::fabs(a - ref) <= atol + rtol * std::fabs(ref);
}

// Largest error of `a` against `ref` in units of (atol + rtol |ref|); > 1 fails. NaN mismatch: 1e9.
template <typename A, typename R>
double worst_ratio(const std::vector<A>& a, const std::vector<R>& ref, double atol, double rtol, size_t* at = nullptr) {
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double x = double(a[i]), r = double(ref[i]);
    double q;
    if (std::isnan(x) || std::isnan(r)) {
      q = (std::isnan(x) && std::isnan(r)) ? 0.0 : 1e9;
    } else {
      q = std::fabs(x - r) / (atol + rtol * std::fabs(r));
    }
    if (!(q <= worst)) {
      worst = q;
      if (at) *at = i;
    }
  }
  return worst;
}

}  // namespace check
