// CUDA on the CPU: what the kernel files under csrc/kernels need from CUDA, provided on top of
// HIP-CPU (a header-only HIP runtime that runs each block's threads as fibers on one CPU thread).
//
// Included through the stand-ins in shim/ for <cuda_runtime.h>, <cuda_fp16.h>, <cuda_bf16.h>,
// so the .cu files compile unchanged once rewrite_launches.py has turned their <<<...>>>
// launches into CUDA_EMU_LAUNCH(...).
//
// HIP-CPU's own warp model does not fit CUDA code (64-wide warps, every shuffle a block-wide
// barrier, width bugs in shuffle_up/down, no *_sync variants, no __ballot_sync/__syncwarp), so
// this header brings a 32-lane warp of its own: the lanes of a warp hand control round a ring at
// every warp-synchronous call, and each lane checks that its ring neighbour is at the same call
// (a shuffle under divergent control flow, a lane skipping a __syncthreads) and that the mask
// names lanes that exist. Faults are counted; a driver fails when there is any.
//
// Two schedules (CUDA_EMU_SCHEDULE=ascending|descending): the order in which the threads of a
// block, and the lanes of a warp, run between two synchronisation points. A result that depends
// on that order (a missing barrier between writes and reads of shared memory) can come out right
// in one schedule and wrong in the other.
//
// What this cannot show: real concurrency (the threads of a block never run at the same time,
// so most missing barriers and every fence or memory-ordering bug stay hidden), GPU numerics
// (nvcc's FMA contraction, libdevice's expf/logf ulps) and the hardware's launch limits beyond
// the static ones checked in launch().
#pragma once

#include <hip/hip_runtime.h>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>

// HIP-CPU marks kernels and device functions with GCC attributes (simd clones, flatten) that
// cost minutes of compile time and change nothing here.
#undef __device__
#define __device__
#undef __global__
#define __global__
#undef __forceinline__
#define __forceinline__ inline

// ------------------------------------------------------------------------- runtime API names
using cudaError_t = hipError_t;
using cudaStream_t = hipStream_t;
#define cudaSuccess hipSuccess
inline cudaError_t cudaGetLastError() { return hipGetLastError(); }
inline const char* cudaGetErrorString(cudaError_t e) { return hipGetErrorString(e); }
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t s = nullptr) {
  return hipMemsetAsync(p, v, n, s);
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t s) { return hipStreamSynchronize(s); }
inline cudaError_t cudaDeviceSynchronize() { return hipDeviceSynchronize(); }

// ------------------------------------------------------------------------- bfloat16
struct __nv_bfloat16 {
  std::uint16_t bits;
};
inline float __bfloat162float(__nv_bfloat16 v) {
  const std::uint32_t u = std::uint32_t(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline __nv_bfloat16 __float2bfloat16(float f) {  // round to nearest, ties to even
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return {std::uint16_t((u >> 16) | 0x40u)};  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return {std::uint16_t(u >> 16)};
}

// ------------------------------------------------------------------------- loads, roundings
template <typename T>
inline T __ldcg(const T* p) { return *p; }
inline __nv_bfloat16 __ldg(const __nv_bfloat16* p) { return *p; }
// Explicitly rounded operations: the emulation is built with -ffp-contract=off, and volatile
// keeps any later optimisation from fusing them either.
inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
inline float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }

// CUDA's device overloads of min/max for 64-bit integers.
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }

namespace cuda_emu {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr std::uint32_t kMaxBlockThreads = 1024;

// ------------------------------------------------------------------------- faults and counters
inline std::atomic<long> faults{0};
inline std::atomic<long> warp_calls{0};
inline std::atomic<long> launches{0};

inline void fault(const char* fmt, ...) {
  if (faults.fetch_add(1) >= 20) return;  // the first few say enough
  std::va_list ap;
  va_start(ap, fmt);
  std::fputs("[cuda-emu] fault: ", stderr);
  std::vfprintf(stderr, fmt, ap);
  std::fputc('\n', stderr);
  va_end(ap);
}

inline bool descending() {
  static const bool d = [] {
    const char* s = std::getenv("CUDA_EMU_SCHEDULE");
    return s != nullptr && std::strcmp(s, "descending") == 0;
  }();
  return d;
}

// ------------------------------------------------------------------------- the stream
// Everything runs on one created stream: HIP-CPU's null stream can run two back-to-back
// kernels out of order (its drain of the null stream may overlap the next launch).
inline hipStream_t stream() {
  static hipStream_t s = [] {
    hipStream_t r = nullptr;
    if (hipStreamCreate(&r) != hipSuccess) std::abort();
    return r;
  }();
  return s;
}

// ------------------------------------------------------------------------- launches
// The static limits a GPU would refuse a launch for, and launches on the null stream.
inline void check_launch(const dim3& grid, const dim3& block, size_t shmem, hipStream_t s,
                         const char* kernel) {
  launches.fetch_add(1, std::memory_order_relaxed);
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  if (threads == 0 || threads > kMaxBlockThreads || block.z > 64)
    fault("%s: block %ux%ux%u is not a valid CUDA block", kernel, block.x, block.y, block.z);
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535)
    fault("%s: grid %ux%ux%u is not a valid CUDA grid", kernel, grid.x, grid.y, grid.z);
  if (shmem > 48 * 1024) fault("%s: %zu bytes of dynamic shared memory", kernel, shmem);
  if (s == nullptr) fault("%s: launched on the null stream", kernel);
}

// ------------------------------------------------------------------------- per-thread state
// The threads of a block are fibers on one CPU thread, so per-block state lives in thread-local
// arrays indexed by the thread's linear index within the block; each thread clears its entry
// when it starts (CUDA_EMU_LAUNCH runs thread_start before the kernel body).
struct ThreadState {
  long warp_seq = 0;  // warp-synchronous calls made so far
  long barriers = 0;  // __syncthreads made so far
};
inline thread_local ThreadState threads[kMaxBlockThreads];
// Exchange slots, double-buffered by call parity: a lane writes slot (seq & 1) and reads it
// after the ring; it cannot be overwritten before every lane has read it, because that needs
// every lane to have passed the next ring.
alignas(16) inline thread_local unsigned char slots[2][kMaxBlockThreads][16];

inline std::uint32_t tid() { return id(hip::detail::Fiber::this_fiber()); }
inline std::uint32_t block_threads() { return count(hip::detail::Tile::this_tile().dimensions()); }
inline ThreadState& my_state() { return threads[tid()]; }
inline void thread_start() { threads[tid()] = ThreadState{}; }

// Hands control to the next lane of this warp's ring (ascending or descending lane order).
// Returns the lane linear index that was handed to, or ~0u if the warp has one lane.
inline std::uint32_t warp_ring_yield() {
  using namespace hip::detail;
  const std::uint32_t t = tid();
  const std::uint32_t n = block_threads();
  const std::uint32_t base = t / kWarp * kWarp;
  const std::uint32_t w = std::min<std::uint32_t>(kWarp, n - base);
  if (w == 1) return ~0u;
  const std::uint32_t l = t - base;
  const std::uint32_t next = base + (descending() ? (l + w - 1) % w : (l + 1) % w);
  this_tile::has_barrier = true;  // tells HIP-CPU this block needs fibers
  Fiber::yield(Tile::fibers()[next]);
  return next;
}

// A warp-synchronous call: every lane of the warp must make it, with a mask naming only lanes
// that exist (this model runs whole warps; a partial mask is not emulated).
inline long warp_enter(unsigned mask, const char* what) {
  warp_calls.fetch_add(1, std::memory_order_relaxed);
  const std::uint32_t t = tid();
  const std::uint32_t n = block_threads();
  const std::uint32_t base = t / kWarp * kWarp;
  const std::uint32_t w = std::min<std::uint32_t>(kWarp, n - base);
  const unsigned exists = w == 32 ? kFullMask : ((1u << w) - 1u);
  if (mask & ~exists) fault("%s: mask %08x names lanes that do not exist (block of %u threads)", what, mask, n);
  if ((mask & exists) != exists) fault("%s: partial mask %08x is not emulated", what, mask);
  return ++my_state().warp_seq;
}

// After the ring: the lane handed to is either still at this call or already at the next one.
inline void warp_check(std::uint32_t next, long seq, const char* what) {
  if (next == ~0u) return;
  const long other = threads[next].warp_seq;
  if (other != seq && other != seq + 1)
    fault("%s: lane %u is at warp call %ld, lane %u at %ld (warp-synchronous call under divergence)",
          what, tid() % kWarp, seq, next % kWarp, other);
}

// Lane `src` (0..31 within this warp) receives what it put in; every lane gets its source's value.
template <typename T>
inline T warp_exchange(unsigned mask, T v, int src, const char* what) {
  static_assert(sizeof(T) <= 16 && std::is_trivially_copyable_v<T>, "exchange slot");
  const std::uint32_t t = tid();
  const long seq = warp_enter(mask, what);
  std::memcpy(slots[seq & 1][t], &v, sizeof(T));
  const std::uint32_t next = warp_ring_yield();
  warp_check(next, seq, what);
  const std::uint32_t from = t / kWarp * kWarp + std::uint32_t(src);
  if (from >= block_threads()) {
    fault("%s: lane %u reads lane %d, which does not exist", what, t % kWarp, src);
    return v;
  }
  T r;
  std::memcpy(&r, slots[seq & 1][from], sizeof(T));
  return r;
}

inline bool valid_width(int width) { return width >= 1 && width <= kWarp && (width & (width - 1)) == 0; }

inline void syncthreads() {
  using namespace hip::detail;
  const std::uint32_t n = block_threads();
  if (n == 1) return;
  ThreadState& me = my_state();
  const long mine = ++me.barriers;
  const std::uint32_t t = tid();
  const std::uint32_t next = descending() ? (t + n - 1) % n : (t + 1) % n;
  this_tile::has_barrier = true;
  Fiber::yield(Tile::fibers()[next]);
  const long other = threads[next].barriers;
  if (other != mine && other != mine + 1)
    fault("__syncthreads: thread %u at barrier %ld, thread %u at %ld (a barrier not every thread reaches)",
          t, mine, next, other);
}

}  // namespace cuda_emu

#define __syncthreads() ::cuda_emu::syncthreads()

// ------------------------------------------------------------------------- warp intrinsics
inline void __syncwarp(unsigned mask = cuda_emu::kFullMask) {
  (void)cuda_emu::warp_exchange<char>(mask, 0, int(cuda_emu::tid() % cuda_emu::kWarp), "__syncwarp");
}

template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = cuda_emu::kWarp) {
  if (!cuda_emu::valid_width(width)) cuda_emu::fault("__shfl_sync: width %d", width), width = 32;
  const int lane = int(cuda_emu::tid() % cuda_emu::kWarp);
  return cuda_emu::warp_exchange(mask, v, lane / width * width + (src & (width - 1)), "__shfl_sync");
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = cuda_emu::kWarp) {
  if (!cuda_emu::valid_width(width)) cuda_emu::fault("__shfl_xor_sync: width %d", width), width = 32;
  const int lane = int(cuda_emu::tid() % cuda_emu::kWarp);
  int src = lane ^ lane_mask;
  if (src / width != lane / width || src >= cuda_emu::kWarp) src = lane;  // outside the segment: own value
  return cuda_emu::warp_exchange(mask, v, src, "__shfl_xor_sync");
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = cuda_emu::kWarp) {
  if (!cuda_emu::valid_width(width)) cuda_emu::fault("__shfl_down_sync: width %d", width), width = 32;
  const int lane = int(cuda_emu::tid() % cuda_emu::kWarp);
  int src = lane + int(delta);
  if (src / width != lane / width) src = lane;
  return cuda_emu::warp_exchange(mask, v, src, "__shfl_down_sync");
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = cuda_emu::kWarp) {
  if (!cuda_emu::valid_width(width)) cuda_emu::fault("__shfl_up_sync: width %d", width), width = 32;
  const int lane = int(cuda_emu::tid() % cuda_emu::kWarp);
  int src = lane - int(delta);
  if (src < lane / width * width) src = lane;
  return cuda_emu::warp_exchange(mask, v, src, "__shfl_up_sync");
}

inline unsigned __ballot_sync(unsigned mask, int pred) {
  using namespace cuda_emu;
  const std::uint32_t t = tid();
  const long seq = warp_enter(mask, "__ballot_sync");
  slots[seq & 1][t][0] = pred ? 1 : 0;
  const std::uint32_t next = warp_ring_yield();
  warp_check(next, seq, "__ballot_sync");
  const std::uint32_t base = t / kWarp * kWarp;
  const std::uint32_t n = block_threads();
  unsigned r = 0;
  for (std::uint32_t l = 0; l < std::uint32_t(kWarp) && base + l < n; ++l)
    if ((mask >> l & 1u) && slots[seq & 1][base + l][0]) r |= 1u << l;
  return r;
}

// Kernel launches, as rewrite_launches.py writes them: hipLaunchKernelGGL's expansion (HIP-CPU
// runs the lambda once per thread with the kernel's arguments), with each thread clearing its
// emulation state before the kernel body.
#define CUDA_EMU_LAUNCH(kernel, grid, block, shmem, strm, ...)                                  \
  do {                                                                                        \
    ::cuda_emu::check_launch(dim3(grid), dim3(block), size_t(shmem), (strm), #kernel);        \
    ::hip::detail::launch(                                                                    \
        dim3(grid), dim3(block), unsigned(shmem), (strm),                                     \
        [=](auto&&... xs) noexcept {                                                          \
          ::cuda_emu::thread_start();                                                         \
          kernel(std::forward<decltype(xs)>(xs)...);                                          \
        },                                                                                    \
        std::make_tuple(__VA_ARGS__));                                                        \
  } while (0)
