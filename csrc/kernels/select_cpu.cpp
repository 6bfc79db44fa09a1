// CPU (OpenMP) implementation of select.h. One parallel region per pick over fixed row
// blocks; each block leaves its arg-max or its weight sum, and one thread combines the blocks
// in index order (about 2,000 entries at N = 1e6), so the result never depends on the thread
// count or on which thread ran which block.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "select.h"

namespace mpts {
namespace {

// BADGE: a_i + a_c - 2 (q_i.q_c)(h_i.h_c) is exactly 0 for an exact copy of the centre only if
// the product (q.q)(h.h) is rounded as it was in a_i, i.e. not absorbed into a fused
// multiply-add with the subtraction (GCC contracts across statements by default). An empty asm
// makes the rounded product opaque; the rest of the file keeps its FMAs (turning contraction
// off for the whole file cost ~25% at N = 20,000, where the pool sits partly in L3).
template <typename T>
inline T rounded(T v) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm("" : "+x"(v));
#elif defined(__GNUC__) && defined(__aarch64__)
  asm("" : "+w"(v));
#else
  volatile T keep = v;
  v = keep;
#endif
  return v;
}

// Lanes of independent accumulators: four 512-bit vectors, enough to hide FMA latency, and a
// fixed summation order (the same bits wherever the helper is inlined, no fast-math).
template <typename T>
constexpr int kLanes = 256 / sizeof(T);

template <typename T>
inline T reduce_lanes(T* acc) {
  for (int w = kLanes<T> / 2; w > 0; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

template <typename T>
inline T sqdist(const T* __restrict__ a, const T* __restrict__ b, int64_t d) {
  T acc[kLanes<T>] = {};
  int64_t j = 0;
  for (; j + kLanes<T> <= d; j += kLanes<T>) {
#pragma omp simd
    for (int l = 0; l < kLanes<T>; ++l) {
      const T v = a[j + l] - b[j + l];
      acc[l] += v * v;
    }
  }
  for (int l = 0; j < d; ++j, ++l) {
    const T v = a[j] - b[j];
    acc[l] += v * v;
  }
  return reduce_lanes<T>(acc);
}

template <typename T>
inline T dot(const T* __restrict__ a, const T* __restrict__ b, int64_t d) {
  T acc[kLanes<T>] = {};
  int64_t j = 0;
  for (; j + kLanes<T> <= d; j += kLanes<T>) {
#pragma omp simd
    for (int l = 0; l < kLanes<T>; ++l) acc[l] += a[j + l] * b[j + l];
  }
  for (int l = 0; j < d; ++j, ++l) acc[l] += a[j] * b[j];
  return reduce_lanes<T>(acc);
}

template <typename T>
struct FeatureDist {
  const T* x;
  int64_t d;
  T operator()(int64_t i, int64_t c) const { return sqdist(x + i * d, x + c * d, d); }
};

template <typename T>
struct BadgeDist {
  const T* q;
  int64_t C;
  const T* h;
  int64_t D;
  const T* a;
  T operator()(int64_t i, int64_t c) const {
    const T qq = dot(q + i * C, q + c * C, C);
    const T hh = dot(h + i * D, h + c * D, D);
    const T cross = rounded(qq * hh);
    const T both = a[i] + a[c];
    const T v = both - T(2) * cross;
    return v > T(0) ? v : T(0);
  }
};

enum class Mode { kArgMax, kSample };

// Per-block results of one pass.
struct Blocks {
  explicit Blocks(int64_t nb) : best(nb), arg(nb), sum(nb), count(nb) {}
  std::vector<double> best;  // k-center: block max of mind (as double), -1 if none eligible
  std::vector<int64_t> arg;  // its lowest index
  std::vector<double> sum;   // k-means++: block sum of mind over eligible rows
  std::vector<int64_t> count;  // eligible rows in the block
};

// Retires centre c (mind[c] = -1), updates mind against it (c < 0: neither) and fills the
// block results. Called by every thread of the enclosing parallel region (an orphaned
// worksharing loop): dynamic, so on a shared machine a descheduled thread's blocks are taken
// over by the others; each block's result has its own slot, so the combination order never
// changes with the thread count. The loop's closing barrier is the pick's only barrier.
template <typename T, typename Dist>
void pass(const Dist& dist, int64_t N, T* mind, int64_t c, Mode mode, Blocks& b) {
  const int64_t nb = static_cast<int64_t>(b.best.size());
#pragma omp for schedule(dynamic, 4)
  for (int64_t blk = 0; blk < nb; ++blk) {
    const int64_t lo = blk * kSelectBlock, hi = std::min(N, lo + kSelectBlock);
    T best = T(-1);
    int64_t arg = -1;
    double sum = 0;
    int64_t count = 0;
    for (int64_t i = lo; i < hi; ++i) {
      T m = mind[i];
      if (i == c) mind[i] = m = T(-1);
      if (m < T(0)) continue;
      if (c >= 0) {
        const T v = dist(i, c);
        if (v < m) {
          m = v;
          mind[i] = v;
        }
      }
      if (mode == Mode::kArgMax) {
        if (m > best) {
          best = m;
          arg = i;
        }
      } else {
        sum += static_cast<double>(m);  // sequential, in row order: see draw()
        ++count;
      }
    }
    b.best[blk] = static_cast<double>(best);
    b.arg[blk] = arg;
    b.sum[blk] = sum;
    b.count[blk] = count;
  }
}

int64_t argmax_of(const Blocks& b) {
  double best = -1;
  int64_t arg = -1;
  for (size_t blk = 0; blk < b.best.size(); ++blk) {
    if (b.arg[blk] >= 0 && b.best[blk] > best) {  // strict: the earlier block wins ties
      best = b.best[blk];
      arg = b.arg[blk];
    }
  }
  return arg;
}

// Inverse-CDF draw of one row with weight mind[i] (eligible rows), or uniform over eligible
// rows if all weights are 0. The in-block scan re-adds the block's weights from 0 in the same
// order as pass() did, so it reproduces the block sum bit for bit and always finds a row.
template <typename T>
int64_t draw(const T* mind, int64_t N, const Blocks& b, double u) {
  const int64_t nb = static_cast<int64_t>(b.sum.size());
  double total = 0;
  int64_t count = 0;
  for (int64_t blk = 0; blk < nb; ++blk) {
    total += b.sum[blk];
    count += b.count[blk];
  }
  if (count == 0) return -1;
  if (total > 0 && std::isfinite(total)) {
    double rem = u * total;
    for (int64_t blk = 0; blk < nb; ++blk) {
      if (b.sum[blk] > rem) {
        const int64_t lo = blk * kSelectBlock, hi = std::min(N, lo + kSelectBlock);
        double run = 0;
        int64_t last = -1;
        for (int64_t i = lo; i < hi; ++i) {
          if (mind[i] < T(0)) continue;
          run += static_cast<double>(mind[i]);
          if (mind[i] > T(0)) last = i;
          if (run > rem) return i;
        }
        return last;  // unreachable: run ends at b.sum[blk] > rem
      }
      rem -= b.sum[blk];
    }
    // u * total rounded up to total after the subtractions: the last positive-weight row.
    for (int64_t i = N - 1; i >= 0; --i)
      if (mind[i] > T(0)) return i;
  }
  int64_t target = static_cast<int64_t>(u * static_cast<double>(count));
  target = std::min(std::max<int64_t>(target, 0), count - 1);
  for (int64_t blk = 0; blk < nb; ++blk) {
    if (target < b.count[blk]) {
      const int64_t lo = blk * kSelectBlock, hi = std::min(N, lo + kSelectBlock);
      for (int64_t i = lo; i < hi; ++i) {
        if (mind[i] < T(0)) continue;
        if (target-- == 0) return i;
      }
    }
    target -= b.count[blk];
  }
  return -1;
}

template <typename T, typename Dist>
void run_loop(const Dist& dist, int64_t N, T* mind, int64_t first, int64_t k, Mode mode,
              const double* u, int64_t* picks) {
  if (k <= 0) return;
  // One parallel region for all k picks, not one per pick: every thread runs the same pick
  // loop, shares each pass's blocks, and computes the pick itself from the block results (the
  // same bits on every thread), so a pick costs one barrier, not a fork, a join and a wake-up.
  // Block results alternate between two buffers: a fast thread may start pass t + 1 while a
  // slow one still reads pass t's; it cannot get further, pass t + 1 ends in a barrier.
  const int64_t nb = (N + kSelectBlock - 1) / kSelectBlock;
  Blocks buf[2] = {Blocks(nb), Blocks(nb)};
  int64_t last = -1;  // the last valid pick, written by the master thread
#pragma omp parallel
  {
    int64_t prev = -1;  // this thread's copy of the previous pick (picks[] is the master's)
    for (int64_t t = 0; t < k; ++t) {
      int64_t w;
      if (t == 0 && first >= 0) {
        w = first;
      } else {
        Blocks& b = buf[t & 1];
        pass(dist, N, mind, prev, mode, b);
        if (mode == Mode::kArgMax) {
          w = argmax_of(b);
        } else {
          w = draw(mind, N, b, u[t]);  // reads mind: no thread may update it until all drew
#pragma omp barrier
        }
      }
      // w < 0 only if no eligible row is left; the binding checks k against the pool first.
#pragma omp master
      {
        picks[t] = w;
        if (w >= 0) last = w;
      }
      if (w < 0) break;  // the same w on every thread: all leave together
      prev = w;
    }
  }
  // The last pick is retired here (earlier ones by the pass that followed them).
  if (last >= 0) mind[last] = T(-1);
}

}  // namespace

template <typename T>
void kcenter_greedy_cpu(const T* x, int64_t N, int64_t d, T* mind, int64_t first, int64_t k,
                        int64_t* picks) {
  run_loop(FeatureDist<T>{x, d}, N, mind, first, k, Mode::kArgMax, nullptr, picks);
}

template <typename T>
void kmeanspp_cpu(const T* x, int64_t N, int64_t d, T* mind, int64_t first, int64_t k,
                  const double* u, int64_t* picks) {
  run_loop(FeatureDist<T>{x, d}, N, mind, first, k, Mode::kSample, u, picks);
}

template <typename T>
void badge_sqnorms_cpu(const T* q, int64_t C, const T* h, int64_t D, int64_t N, T* a_out) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const T qq = dot(q + i * C, q + i * C, C);
    const T hh = dot(h + i * D, h + i * D, D);
    a_out[i] = rounded(qq * hh);
  }
}

template <typename T>
void badge_kmeanspp_cpu(const T* q, int64_t C, const T* h, int64_t D, const T* a, int64_t N,
                        T* mind, int64_t first, int64_t k, const double* u, int64_t* picks) {
  run_loop(BadgeDist<T>{q, C, h, D, a}, N, mind, first, k, Mode::kSample, u, picks);
}

#define MPTS_SELECT_INSTANTIATE(T)                                                              \
  template void kcenter_greedy_cpu<T>(const T*, int64_t, int64_t, T*, int64_t, int64_t,         \
                                      int64_t*);                                                \
  template void kmeanspp_cpu<T>(const T*, int64_t, int64_t, T*, int64_t, int64_t, const double*, \
                                int64_t*);                                                      \
  template void badge_sqnorms_cpu<T>(const T*, int64_t, const T*, int64_t, int64_t, T*);        \
  template void badge_kmeanspp_cpu<T>(const T*, int64_t, const T*, int64_t, const T*, int64_t,  \
                                      T*, int64_t, int64_t, const double*, int64_t*);

MPTS_SELECT_INSTANTIATE(float)
MPTS_SELECT_INSTANTIATE(double)
#undef MPTS_SELECT_INSTANTIATE

}  // namespace mpts
