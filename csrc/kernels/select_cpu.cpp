// CPU (OpenMP) implementation of select.h. One parallel region per call; each pick is a pass
// over fixed row blocks, each block leaves its arg-max or its weight sum, and the blocks are
// combined in index order (about 2,000 entries at N = 1e6), so the result never depends on the
// thread count or on which thread ran which block. No barrier per pick: see PickLoop.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>
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

// Per-block results of one pass, written only by the thread that completed the block first.
struct Blocks {
  explicit Blocks(int64_t nb) : best(nb), arg(nb), sum(nb), count(nb) {}
  std::vector<double> best;  // k-center: block max of mind (as double), -1 if none eligible
  std::vector<int64_t> arg;  // its lowest index
  std::vector<double> sum;   // k-means++: block sum of mind over eligible rows
  std::vector<int64_t> count;  // eligible rows in the block
};

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
// order as the pass did, so it reproduces the block sum bit for bit and always finds a row.
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

inline void cpu_relax() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __builtin_ia32_pause();
#elif defined(__GNUC__) && defined(__aarch64__)
  asm volatile("yield");
#endif
}

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The pick loop, shared by all threads of one parallel region and built so that no thread
// ever waits for a particular other thread. A pick costs one pass over nb fixed row blocks.
// On a machine where other processes hold cores, a thread can be descheduled for a whole
// time slice (milliseconds) at any point; with a barrier per pick (0.1-1 ms of work) every
// such preemption stalled every pick. Here:
//   - blocks are claimed from a counter tagged with the pass number, so a thread that wakes
//     up late cannot claim a block of a later pass by mistake;
//   - a thread with nothing left to claim helps: after a short spin it recomputes blocks that
//     are claimed but not finished. Recomputing is harmless because a block's work is
//     idempotent: mind only ever moves down, through an atomic min, so a late or duplicate
//     writer can never raise it, and the block's result is a function of mind's values after
//     the min, identical for every thread that computes it;
//   - the first thread to finish a block (a compare-and-swap on the block's pass tag) writes
//     its result and counts it; whoever sees the count reach nb computes the pick (the same
//     bits on every thread) and publishes the next pass.
// So a preempted thread delays a pick by at most the patience before help, not by its time
// slice. Results stay independent of the thread count: per-block results, combined in block
// order, depend only on the block layout.
template <typename T, typename Dist>
class PickLoop {
 public:
  PickLoop(const Dist& dist, int64_t N, T* mind, int64_t k, Mode mode, const double* u,
           int64_t* picks, int64_t first_pass)
      : dist_(dist), N_(N), nb_((N + kSelectBlock - 1) / kSelectBlock), mind_(mind), k_(k),
        mode_(mode), u_(u), picks_(picks), res_(nb_), gen_(nb_) {
    for (auto& g : gen_) g.store(first_pass - 1, std::memory_order_relaxed);
    pass_.store(first_pass, std::memory_order_relaxed);
    claim_.store(tag(first_pass), std::memory_order_relaxed);
    done_.store(tag(first_pass), std::memory_order_relaxed);
  }

  int64_t blocks() const { return nb_; }

  // Run by every thread of the region; returns when the k picks are made (or none is left).
  void work() {
    int64_t block_ns = 20000;  // this thread's recent time per block: sets its patience
    for (;;) {
      const int64_t t = pass_.load(std::memory_order_acquire);
      if (t >= k_) return;
      const int64_t c = t == 0 ? -1 : pick_ref(t - 1).load(std::memory_order_relaxed);
      bool moved_on = false;
      for (;;) {  // claim unclaimed blocks of pass t
        int64_t v = claim_.load(std::memory_order_acquire);
        if (v >> kTagShift != t) {
          moved_on = true;
          break;
        }
        const int64_t blk = v & kIdxMask;
        if (blk >= nb_) break;
        if (!claim_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) continue;
        const int64_t t0 = now_ns();
        run_block(blk, t, c);
        block_ns = (3 * block_ns + (now_ns() - t0)) / 4;
      }
      if (!moved_on) wait_or_help(t, c, block_ns);
    }
  }

 private:
  static constexpr int kTagShift = 32;
  static constexpr int64_t kIdxMask = (int64_t(1) << kTagShift) - 1;
  static constexpr int64_t tag(int64_t t) { return t << kTagShift; }

 public:
  static constexpr int64_t kUnset = -2;  // picks[t] before pick t is made

 private:

  std::atomic_ref<int64_t> pick_ref(int64_t t) const { return std::atomic_ref<int64_t>(picks_[t]); }

  // Computes block blk of pass t (centre c; c < 0: none) and, if no other thread finished it
  // first, records it. Gives up early once another thread has finished it.
  void run_block(int64_t blk, int64_t t, int64_t c) {
    if (gen_[blk].load(std::memory_order_acquire) != t - 1) return;
    const int64_t lo = blk * kSelectBlock, hi = std::min(N_, lo + kSelectBlock);
    T best = T(-1);
    int64_t arg = -1;
    double sum = 0;
    int64_t count = 0;
    for (int64_t i = lo; i < hi; ++i) {
      if (((i - lo) & 63) == 63 && gen_[blk].load(std::memory_order_relaxed) != t - 1) return;
      std::atomic_ref<T> mi(mind_[i]);
      T m = mi.load(std::memory_order_relaxed);
      if (i == c && m >= T(0)) m = lower(mi, T(-1));
      if (m < T(0)) continue;
      if (c >= 0) {
        const T v = dist_(i, c);
        if (v < m) m = lower(mi, v);
      }
      if (mode_ == Mode::kArgMax) {
        if (m > best) {
          best = m;
          arg = i;
        }
      } else {
        sum += static_cast<double>(m);  // sequential, in row order: see draw()
        ++count;
      }
    }
    int64_t expected = t - 1;
    if (!gen_[blk].compare_exchange_strong(expected, t, std::memory_order_acq_rel)) return;
    res_.best[blk] = static_cast<double>(best);
    res_.arg[blk] = arg;
    res_.sum[blk] = sum;
    res_.count[blk] = count;
    const int64_t d = done_.fetch_add(1, std::memory_order_acq_rel) + 1;
    if ((d & kIdxMask) == nb_) publish(t);
  }

  // mind[i] = min(mind[i], v); returns the new value. A plain store could let a late thread
  // (still on an older pass) write back a larger distance.
  static T lower(std::atomic_ref<T>& mi, T v) {
    T cur = mi.load(std::memory_order_relaxed);
    while (v < cur && !mi.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
    }
    return v < cur ? v : cur;
  }

  // Every block of pass t is done: compute pick t and open pass t + 1. Any thread may run
  // this. The first to store pick t wins; it computed from mind and the block results as pass
  // t left them, because pass t + 1 opens only after pick t is stored. A late duplicate may
  // read them while pass t + 1 changes them, but its pick is discarded, and the tagged
  // compare-and-swaps keep it from resetting a later pass's counters.
  void publish(int64_t t) {
    int64_t w = mode_ == Mode::kArgMax ? argmax_of(res_) : draw(mind_, N_, res_, u_[t]);
    int64_t unset = kUnset;
    if (!pick_ref(t).compare_exchange_strong(unset, w, std::memory_order_acq_rel)) w = unset;
    const int64_t next = w < 0 ? k_ : t + 1;  // no eligible row left: the binding prevents it
    int64_t v = claim_.load(std::memory_order_acquire);
    while (v >> kTagShift == t &&
           !claim_.compare_exchange_weak(v, tag(next), std::memory_order_acq_rel)) {
    }
    v = done_.load(std::memory_order_acquire);
    while (v >> kTagShift == t &&
           !done_.compare_exchange_weak(v, tag(next), std::memory_order_acq_rel)) {
    }
    int64_t expected = t;
    pass_.compare_exchange_strong(expected, next, std::memory_order_acq_rel);
  }

  // Nothing left to claim in pass t: spin for about two of this thread's block times (the
  // usual wait for the other threads' last blocks), then finish whatever is still unfinished,
  // in case its owner was descheduled.
  void wait_or_help(int64_t t, int64_t c, int64_t block_ns) {
    const int64_t patience = std::max<int64_t>(2 * block_ns, 2000);
    int64_t start = now_ns();
    int spins = 0;
    while (pass_.load(std::memory_order_acquire) == t) {
      const int64_t d = done_.load(std::memory_order_acquire);
      if (d >> kTagShift == t && (d & kIdxMask) == nb_) {
        publish(t);  // the thread that finished the last block was descheduled before publishing
        continue;
      }
      if (++spins % 64 != 0) {
        cpu_relax();
        continue;
      }
      if (now_ns() - start < patience) continue;
      for (int64_t blk = 0; blk < nb_ && pass_.load(std::memory_order_acquire) == t; ++blk)
        run_block(blk, t, c);
      start = now_ns();
      std::this_thread::yield();
    }
  }

  const Dist& dist_;
  const int64_t N_, nb_;
  T* mind_;
  const int64_t k_;
  const Mode mode_;
  const double* u_;
  int64_t* picks_;
  Blocks res_;
  std::vector<std::atomic<int64_t>> gen_;  // per block: the last pass that finished it
  std::atomic<int64_t> pass_;              // the pass in progress (k: finished)
  std::atomic<int64_t> claim_;             // tag(pass) | next unclaimed block
  std::atomic<int64_t> done_;              // tag(pass) | finished blocks
};

template <typename T, typename Dist>
void run_loop(const Dist& dist, int64_t N, T* mind, int64_t first, int64_t k, Mode mode,
              const double* u, int64_t* picks) {
  if (k <= 0) return;
  int64_t first_pass = 0;
  if (first >= 0) {
    picks[0] = first;  // no pass: pass 1 retires it while it updates mind against it
    first_pass = 1;
  }
  if (first_pass < k) {
    std::fill(picks + first_pass, picks + k, PickLoop<T, Dist>::kUnset);
    PickLoop<T, Dist> loop(dist, N, mind, k, mode, u, picks, first_pass);
    // One parallel region for all k picks; more threads than blocks would only duplicate.
    const int threads = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), loop.blocks()));
#pragma omp parallel num_threads(threads)
    loop.work();
  }
  // The last pick is retired here (earlier ones by the pass that followed them).
  int64_t last = -1;
  for (int64_t t = 0; t < k; ++t) {
    if (picks[t] < 0) {
      std::fill(picks + t, picks + k, int64_t(-1));  // no eligible row was left
      break;
    }
    last = picks[t];
  }
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

// Squared distances of rows a0, a1 to centres b[0..3] in 32-byte vector accumulators: eight
// independent chains hide the FMA latency, and each load of a row or a centre serves four or two
// multiply-adds (sqdist alone does one load per multiply-add and, at small d, spends as long in
// its 64-lane reduction as in the loop). Fixed summation order, so thread-count independent.
// GCC ignores vector_size on a dependent type, hence one alias per element type.
#pragma GCC diagnostic ignored "-Wpsabi"
template <typename T>
struct Vec32;
template <>
struct Vec32<float> {
  using type = float __attribute__((vector_size(32)));
};
template <>
struct Vec32<double> {
  using type = double __attribute__((vector_size(32)));
};

template <typename T>
inline void sqdist_2x4(const T* __restrict__ a0, const T* __restrict__ a1, const T* const* b,
                       int64_t d, T out[2][4]) {
  using V = typename Vec32<T>::type;
  constexpr int64_t W = 32 / sizeof(T);
  V acc[2][4] = {};
  int64_t j = 0;
  for (; j + W <= d; j += W) {
    V r0, r1;
    std::memcpy(&r0, a0 + j, sizeof(V));
    std::memcpy(&r1, a1 + j, sizeof(V));
    for (int c = 0; c < 4; ++c) {
      V cv;
      std::memcpy(&cv, b[c] + j, sizeof(V));
      const V v0 = r0 - cv, v1 = r1 - cv;
      acc[0][c] += v0 * v0;
      acc[1][c] += v1 * v1;
    }
  }
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 4; ++c) {
      T s = T(0);
      for (int64_t l = 0; l < W; ++l) s += acc[r][c][l];
      const T* a = r == 0 ? a0 : a1;
      for (int64_t jj = j; jj < d; ++jj) {
        const T v = a[jj] - b[c][jj];
        s += v * v;
      }
      out[r][c] = s;
    }
}

template <typename T>
void lower_mind_cpu(const T* x, int64_t N, int64_t d, const int64_t* centres, int64_t L, T* mind) {
  // Tiles of 64 rows against groups of 4 centres: a group (4 d numbers) stays in L1 while the
  // tile's rows stream past it, two rows at a time. Dynamic schedule over small tiles: a thread
  // preempted by another process holds back at most one tile, not a static share of the rows.
  constexpr int64_t kRows = 64;
  const int64_t tiles = (N + kRows - 1) / kRows;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int64_t lo = tile * kRows, hi = std::min(N, lo + kRows);
    for (int64_t c0 = 0; c0 < L; c0 += 4) {
      // A short last group repeats its last centre: the minimum is unchanged.
      const T* b[4];
      for (int c = 0; c < 4; ++c) b[c] = x + centres[std::min(L - 1, c0 + c)] * d;
      for (int64_t i = lo; i < hi; i += 2) {
        const int64_t i1 = std::min(hi - 1, i + 1);  // odd tile end: row i twice
        if (mind[i] < T(0) && mind[i1] < T(0)) continue;
        T v[2][4];
        sqdist_2x4(x + i * d, x + i1 * d, b, d, v);
        for (int r = 0; r < 2; ++r) {
          T& m = mind[r == 0 ? i : i1];
          if (m < T(0)) continue;  // labeled rows keep -1
          for (int c = 0; c < 4; ++c)
            if (v[r][c] < m) m = v[r][c];
        }
      }
    }
  }
}

template <typename T>
int64_t farthest_from_mean_cpu(const T* x, int64_t N, int64_t d) {
  // At most 64 partial sums (64 d doubles, whatever N), each over at least 1,024 rows.
  const int64_t rows = std::max<int64_t>(1024, (N + 63) / 64);
  const int64_t parts = (N + rows - 1) / rows;
  std::vector<double> part(parts * d, 0.0);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t b = 0; b < parts; ++b) {
    double* s = part.data() + b * d;
    for (int64_t i = b * rows, hi = std::min(N, (b + 1) * rows); i < hi; ++i) {
      const T* xi = x + i * d;
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) s[j] += static_cast<double>(xi[j]);
    }
  }
  std::vector<double> mean(d, 0.0);
  for (int64_t b = 0; b < parts; ++b)
    for (int64_t j = 0; j < d; ++j) mean[j] += part[b * d + j];
  for (int64_t j = 0; j < d; ++j) mean[j] /= static_cast<double>(N);
  const double* m = mean.data();
  // Per-block arg-max combined in block order by the pick loops' argmax_of (ties: lowest index).
  Blocks res((N + kSelectBlock - 1) / kSelectBlock);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t b = 0; b < static_cast<int64_t>(res.best.size()); ++b) {
    res.best[b] = -1.0;
    res.arg[b] = -1;
    for (int64_t i = b * kSelectBlock, hi = std::min(N, (b + 1) * kSelectBlock); i < hi; ++i) {
      const T* xi = x + i * d;
      double acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < d; ++j) {
        const double v = static_cast<double>(xi[j]) - m[j];
        acc += v * v;
      }
      if (acc > res.best[b]) {  // strict: the lowest index keeps a tie
        res.best[b] = acc;
        res.arg[b] = i;
      }
    }
  }
  return std::max<int64_t>(argmax_of(res), 0);  // -1 only if every distance was NaN
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
  template void lower_mind_cpu<T>(const T*, int64_t, int64_t, const int64_t*, int64_t, T*);   \
  template int64_t farthest_from_mean_cpu<T>(const T*, int64_t, int64_t);                      \
  template void badge_sqnorms_cpu<T>(const T*, int64_t, const T*, int64_t, int64_t, T*);        \
  template void badge_kmeanspp_cpu<T>(const T*, int64_t, const T*, int64_t, const T*, int64_t,  \
                                      T*, int64_t, int64_t, const double*, int64_t*);

MPTS_SELECT_INSTANTIATE(float)
MPTS_SELECT_INSTANTIATE(double)
#undef MPTS_SELECT_INSTANTIATE

}  // namespace mpts
