// Snapshot scores on the CPU: one pass over (S, N, C) logits, meant to run near memory speed.
//
// Items are processed in blocks of B (the unit of dynamic scheduling), and within a block in
// chunks of L items (16 with AVX-512, else 8), one item per SIMD lane. Per block and snapshot,
// pass 1 transposes each chunk's rows ((L, C), contiguous in the snapshot) into a class-major
// [C][L] tile and takes the row max; pass 2 takes exp(l - max) and the per-item sums with those
// sums in registers; pass 3 folds the softmax into the Welford state. The float path is written
// in GCC/Clang vector types (portable, no intrinsics: 8 x 8 in-register transposes, L-lane
// exp/log); the generic path (double, or compilers without vector types) is plain loops across
// lanes.
//
// The exp/log (simd_math.h) vectorise under GCC's default -ftrapping-math because their selects
// are done on the bits; keep any select added to the generic passes that way too (`c ? a * b : 0`
// on floats keeps an `omp simd` loop scalar). Check with -fopt-info-vec after editing.
//
// Sums over classes (softmax denominator, sum e (l - max), entropy, variance) end in double: in
// float32 a sequential sum's error grows linearly with C (7-10x torch's pairwise sums at
// C = 1000). The per-class work that dominates the time (exp, Welford) stays in T.
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#include "common.h"
#include "simd_math.h"
#include "snapshot_uncertainty.h"

namespace mpts {
namespace {

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

// The per-chunk passes are inlined into the loops over a block's chunks, so their constants
// are set up once per block rather than once per chunk.
#if defined(__GNUC__)
#define MPTS_INLINE inline __attribute__((always_inline))
#else
#define MPTS_INLINE inline
#endif

// Items are handled in chunks of kLanes (one vector register of floats): per chunk, the state is
// [C][kLanes] (class-major, one item per lane). 16 lanes with AVX-512 (half the instructions per
// logit: 5-15% faster on a Zen 4 VM, which splits 512-bit operations in two); 8 otherwise, since
// GCC 12 lowers 64-byte vectors without AVX-512 to element-wise code (5x slower).
#if defined(__AVX512F__)
constexpr int kLanes = 16;  // (lo_to_double and hi_to_double follow the same condition)
#else
constexpr int kLanes = 8;
#endif
// The float transpose reads kRowRead values from each row start, also when C < kRowRead.
constexpr int kRowRead = 8;

// One snapshot is folded into a block's state in three passes, each over all the block's chunks
// (rather than all three per chunk: a chunk's passes form one dependency chain, and this way
// the CPU can overlap it with the next chunk's work; measured a few % faster).
// Per chunk: rows are its kLanes rows of C logits (row stride C; when C < kRowRead, kRowRead
// values are readable from each row start); tile, mean, m2: [C][kLanes]; mx, inv, ent: [kLanes].
// Generic versions: loops across the lanes that the compiler vectorises.

// Pass 1: class-major copy of the rows into tile, and each row's max. NaN never wins a
// comparison, but it is still copied and poisons its item in pass 2; +inf gives max +inf and
// inf - inf = NaN; an all -inf row gives max -inf and -inf - -inf = NaN.
template <typename T>
MPTS_INLINE void chunk_transpose_max(const T* rows, int C, T* tile, T* mx) {
#pragma omp simd
  for (int j = 0; j < kLanes; ++j) mx[j] = -INFINITY;
  for (int c = 0; c < C; ++c) {
    T* l = tile + c * kLanes;
#pragma omp simd
    for (int j = 0; j < kLanes; ++j) {
      const T v = rows[j * C + c];
      l[j] = v;
      mx[j] = v > mx[j] ? v : mx[j];
    }
  }
}

// Pass 2: e = exp(l - max) in place; ent += H(p) = log sum e - sum e (l - max) / sum e;
// inv = 1 / sum e. The class sums are taken in T over groups of kClassGroup classes and the
// group sums added in double: the error no longer grows with C, and float -> double
// conversions (slow on x86) come once per group, not per class.
constexpr int kClassGroup = 16;

template <typename T>
MPTS_INLINE void chunk_exp_entropy(int C, T* tile, const T* mx, T* inv, T* ent) {
  using Acc = double;
  alignas(64) Acc sum[kLanes], dot[kLanes];
  alignas(64) T part_sum[kLanes], part_dot[kLanes];
#pragma omp simd
  for (int j = 0; j < kLanes; ++j) sum[j] = dot[j] = 0;
  for (int c0 = 0; c0 < C; c0 += kClassGroup) {
#pragma omp simd
    for (int j = 0; j < kLanes; ++j) part_sum[j] = part_dot[j] = 0;
    for (int c = c0; c < std::min(C, c0 + kClassGroup); ++c) {
      T* l = tile + c * kLanes;
#pragma omp simd
      for (int j = 0; j < kLanes; ++j) {
        T shifted;
        const T e = exp_nonpositive(l[j] - mx[j], shifted);
        l[j] = e;
        part_sum[j] += e;
        part_dot[j] += e * shifted;
      }
    }
#pragma omp simd
    for (int j = 0; j < kLanes; ++j) {
      sum[j] += static_cast<Acc>(part_sum[j]);
      dot[j] += static_cast<Acc>(part_dot[j]);
    }
  }
#pragma omp simd
  for (int j = 0; j < kLanes; ++j) {
    const T s = static_cast<T>(sum[j]);  // >= 1 (the max contributes 1) unless NaN
    ent[j] += log_cephes(s) - static_cast<T>(dot[j] / sum[j]);  // NaN sum: dot / sum is NaN
    inv[j] = T(1) / s;
  }
}

// Pass 3: Welford on p = e / sum (no sum-of-squares cancellation); inv_count = 1 / (snapshots
// folded before + 1).
template <typename T>
MPTS_INLINE void chunk_welford(int C, const T* tile, const T* inv, T inv_count, T* mean, T* m2) {
  for (int c = 0; c < C; ++c) {
    const T* e = tile + c * kLanes;
    T* mu = mean + c * kLanes;
    T* q = m2 + c * kLanes;
#pragma omp simd
    for (int j = 0; j < kLanes; ++j) {
      const T p = e[j] * inv[j];
      const T delta = p - mu[j];
      mu[j] += delta * inv_count;
      q[j] += delta * (p - mu[j]);
    }
  }
}

#ifdef MPTS_SIMD_VECTOR_TYPES  // (simd_math.h: GCC/Clang vector types)
// The float fold in GCC/Clang vector types (no intrinsics: any target; AVX2 or AVX-512 with
// -march=native):
// the auto-vectoriser keeps the generic version's per-lane sums in memory and transposes with
// scalar loads, which made it compute-bound; here the sums live in registers and the rows are
// transposed 8 x 8 in registers. Same operations in the same order as the generic version.
using f8 = VecF<8>;       // one row block of the 8 x 8 transposes
using fv = VecF<kLanes>;  // one float per item of a chunk
using dv = double __attribute__((vector_size(4 * kLanes)));  // half a chunk's lanes, in double

inline fv splat(float x) { return fv{} + x; }
inline f8 load8(const float* p) {
  f8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store8(float* p, f8 v) { std::memcpy(p, &v, sizeof(v)); }
inline fv loadv(const float* p) {
  fv v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void storev(float* p, fv v) { std::memcpy(p, &v, sizeof(v)); }
inline f8 max8(f8 a, f8 m) { return a > m ? a : m; }  // x86 maxps: NaN a never wins
// Element-wise constructors: GCC 12 lowers __builtin_convertvector(float4 -> double4) to four
// 2-lane conversions, these to one vcvtps2pd each.
#if defined(__AVX512F__)
inline dv lo_to_double(fv v) { return dv{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}; }
inline dv hi_to_double(fv v) { return dv{v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15]}; }
#else
inline dv lo_to_double(fv v) { return dv{v[0], v[1], v[2], v[3]}; }
inline dv hi_to_double(fv v) { return dv{v[4], v[5], v[6], v[7]}; }
#endif
inline fv to_float(dv lo, dv hi) {
  fv r;
  for (int j = 0; j < kLanes / 2; ++j) {
    r[j] = static_cast<float>(lo[j]);
    r[kLanes / 2 + j] = static_cast<float>(hi[j]);
  }
  return r;
}

// r[j] = column j of the 8 x 8 block whose rows are r[0..7].
inline void transpose8(f8* r) {
  f8 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = __builtin_shufflevector(r[2 * i], r[2 * i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[2 * i + 1] = __builtin_shufflevector(r[2 * i], r[2 * i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int i = 0; i < 2; ++i)
    for (int h = 0; h < 2; ++h) {
      u[4 * i + 2 * h] = __builtin_shufflevector(t[4 * i + h], t[4 * i + 2 + h], 0, 1, 8, 9, 4, 5, 12, 13);
      u[4 * i + 2 * h + 1] = __builtin_shufflevector(t[4 * i + h], t[4 * i + 2 + h], 2, 3, 10, 11, 6, 7, 14, 15);
    }
  for (int j = 0; j < 4; ++j) {
    r[j] = __builtin_shufflevector(u[j], u[4 + j], 0, 1, 2, 3, 8, 9, 10, 11);
    r[4 + j] = __builtin_shufflevector(u[j], u[4 + j], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}

// exp_nonpositive on kLanes lanes: with AVX-512, the table algorithm (different bits from the
// polynomial: 1.061 vs 4.485 ulp at most, and fewer instructions), else the polynomial's twin.
inline fv expv(fv x, fv& clamped) {
#if defined(__AVX512F__)
  if constexpr (kLanes == 16) return exp_nonpositive_table16(x, clamped);
#endif
  return exp_nonpositive_lanes<kLanes>(x, clamped);
}

inline fv logv(fv x) { return log_cephes_lanes<kLanes>(x); }

template <>
MPTS_INLINE void chunk_transpose_max<float>(const float* rows, int C, float* tile, float* mx_out) {
  // Each group of 8 rows in 8 x 8 blocks into its 8 of the tile's lanes: when 8 does not divide
  // C >= 8, the last block of classes overlaps the one before; when C < 8, one block, of which
  // columns 0..C-1 are the row's classes.
  static_assert(kLanes % kRowRead == 0);
  for (int h = 0; h < kLanes / kRowRead; ++h) {
    const float* hrows = rows + h * kRowRead * C;
    float* htile = tile + h * kRowRead;
    f8 mx = f8{} - INFINITY;
    f8 r[kRowRead];
    if (C < kRowRead) {
      for (int j = 0; j < kRowRead; ++j) r[j] = load8(hrows + j * C);
      transpose8(r);
      for (int j = 0; j < C; ++j) {
        store8(htile + j * kLanes, r[j]);
        mx = max8(r[j], mx);
      }
    } else {
      for (int c0 = 0; c0 < C; c0 += kRowRead) {
        const int cc = std::min(c0, C - kRowRead);
        for (int j = 0; j < kRowRead; ++j) r[j] = load8(hrows + j * C + cc);
        transpose8(r);
        for (int j = 0; j < kRowRead; ++j) {
          store8(htile + (cc + j) * kLanes, r[j]);
          mx = max8(r[j], mx);
        }
      }
    }
    store8(mx_out + h * kRowRead, mx);
  }
}

// The inverse of chunk_transpose_max's copy for C >= 8: tile [C][kLanes] back to kLanes rows of C
// (row stride C), by the same 8 x 8 blocks (a transpose is its own inverse; when 8 does not divide
// C, the last block overlaps the one before and writes the overlap's values again).
MPTS_INLINE void chunk_tile_to_rows(const float* tile, int C, float* rows) {
  for (int h = 0; h < kLanes / kRowRead; ++h) {
    f8 r[kRowRead];
    for (int c0 = 0; c0 < C; c0 += kRowRead) {
      const int cc = std::min(c0, C - kRowRead);
      for (int j = 0; j < kRowRead; ++j) r[j] = load8(tile + (cc + j) * kLanes + h * kRowRead);
      transpose8(r);
      for (int i = 0; i < kRowRead; ++i) store8(rows + (h * kRowRead + i) * C + cc, r[i]);
    }
  }
}

// Pass 2 for Nc consecutive chunks (tiles C kLanes apart) at once: each chunk's class loop is one
// long dependency chain (exp, then the two running sums), and interleaving independent chains
// gives the out-of-order core more work to overlap (fold takes two: C = 8, N = 1e6, 70 -> 56 ms).
// The same operations in the same order for each chunk whatever Nc, so the same bits.
// One snapshot's entropy H(p) = log sum e - sum e (l - max) / sum e from the float sums of a
// single class group (the same bits as the double path there: see chunk_fold_small_c).
MPTS_INLINE fv entropy_one_group(fv sum, fv dot) { return logv(sum) - dot / sum; }

// Welford step of one class vector: p folded into mean and m2 (ic = 1 / snapshots so far).
MPTS_INLINE void welford_step(fv p, fv ic, float* mean, float* m2) {
  fv mu = loadv(mean);
  const fv delta = p - mu;
  mu += delta * ic;
  storev(mean, mu);
  storev(m2, loadv(m2) + delta * (p - mu));
}

// e = exp(l - max) in place for classes [c0, c1) of Nc chunks, their sums added to part_sum and
// part_dot (sum e (l - max)).
template <int Nc>
MPTS_INLINE void exp_classes(int C, int c0, int c1, float* tile, const fv* mx, fv* part_sum, fv* part_dot) {
  for (int c = c0; c < c1; ++c) {
    for (int n = 0; n < Nc; ++n) {
      float* l = tile + (n * C + c) * kLanes;
      fv shifted;
      const fv e = expv(loadv(l) - mx[n], shifted);
      storev(l, e);
      part_sum[n] += e;
      part_dot[n] += e * shifted;
    }
  }
}

template <int Nc>
MPTS_INLINE void chunk_exp_entropy_n(int C, float* tile, const float* mx_in, float* inv, float* ent) {
  fv mx[Nc];
  for (int n = 0; n < Nc; ++n) mx[n] = loadv(mx_in + n * kLanes);
  if (C <= kClassGroup) {
    // One group (C <= 16 without AVX-512): in float, the same bits as the double path, as in
    // chunk_fold_small_c (in-cache fold at C = 10: 0.71 -> 0.68 ns per logit).
    fv sum[Nc] = {}, dot[Nc] = {};
    exp_classes<Nc>(C, 0, C, tile, mx, sum, dot);
    for (int n = 0; n < Nc; ++n) {
      float* en = ent + n * kLanes;
      storev(en, loadv(en) + entropy_one_group(sum[n], dot[n]));
      storev(inv + n * kLanes, 1.0f / sum[n]);
    }
    return;
  }
  dv sum_lo[Nc] = {}, sum_hi[Nc] = {}, dot_lo[Nc] = {}, dot_hi[Nc] = {};
  for (int c0 = 0; c0 < C; c0 += kClassGroup) {
    fv part_sum[Nc] = {}, part_dot[Nc] = {};
    exp_classes<Nc>(C, c0, std::min(C, c0 + kClassGroup), tile, mx, part_sum, part_dot);
    for (int n = 0; n < Nc; ++n) {
      sum_lo[n] += lo_to_double(part_sum[n]);
      sum_hi[n] += hi_to_double(part_sum[n]);
      dot_lo[n] += lo_to_double(part_dot[n]);
      dot_hi[n] += hi_to_double(part_dot[n]);
    }
  }
  for (int n = 0; n < Nc; ++n) {
    const fv s = to_float(sum_lo[n], sum_hi[n]);
    float* en = ent + n * kLanes;
    storev(en, loadv(en) + (logv(s) - to_float(dot_lo[n] / sum_lo[n], dot_hi[n] / sum_hi[n])));
    storev(inv + n * kLanes, 1.0f / s);
  }
}

template <>
MPTS_INLINE void chunk_exp_entropy<float>(int C, float* tile, const float* mx_in, float* inv, float* ent) {
  chunk_exp_entropy_n<1>(C, tile, mx_in, inv, ent);
}

template <>
MPTS_INLINE void chunk_welford<float>(int C, const float* tile, const float* inv_in, float inv_count, float* mean,
                          float* m2) {
  const fv inv = loadv(inv_in), ic = splat(inv_count);
  for (int c = 0; c < C; ++c) welford_step(loadv(tile + c * kLanes) * inv, ic, mean + c * kLanes, m2 + c * kLanes);
}

// The whole fold of one chunk for a compile-time C <= 16 (two 8 x 8 blocks per 8 rows at most;
// used with AVX-512, see BlockState::fold): the chunk's logits and exponentials stay in registers
// from the transpose to Welford, with no tile round trip and no separate passes (in-cache fold at
// C = 10: 0.68 -> 0.63 ns per logit; one thread at N = 1e6, three alternating runs: 0.81-0.97 ->
// 0.73-0.92). The same operations in the same order as the three passes, so the same bits. The
// entropy terms are taken in float: with one class group the group's float sums are what the
// double path would convert to double and back (exactly), and a float division of floats is the
// double division rounded to float (no double-rounding error for division).
template <int C>
MPTS_INLINE void chunk_fold_small_c(const float* rows, float inv_count, float* mean, float* m2, float* ent) {
  static_assert(C >= 1 && C <= 2 * kRowRead);
  constexpr int kGroups = kLanes / kRowRead;  // groups of 8 rows, each transposed on its own
  f8 part[kGroups][C];
  for (int h = 0; h < kGroups; ++h) {
    const float* hrows = rows + h * kRowRead * C;
    f8 r[kRowRead];
    for (int j = 0; j < kRowRead; ++j) r[j] = load8(hrows + j * C);
    transpose8(r);
    for (int c = 0; c < std::min(C, kRowRead); ++c) part[h][c] = r[c];
    if constexpr (C > kRowRead) {  // the second block overlaps the first: classes C - 8 .. C - 1
      constexpr int cc = C - kRowRead;
      for (int j = 0; j < kRowRead; ++j) r[j] = load8(hrows + j * C + cc);
      transpose8(r);
      for (int c = kRowRead; c < C; ++c) part[h][c] = r[c - cc];
    }
  }
  fv x[C];
  for (int c = 0; c < C; ++c) {
    if constexpr (kGroups == 2)
      x[c] = __builtin_shufflevector(part[0][c], part[1][c], 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    else
      std::memcpy(&x[c], &part[0][c], sizeof(fv));
  }
  fv mx = splat(-INFINITY);
  for (int c = 0; c < C; ++c) mx = x[c] > mx ? x[c] : mx;  // NaN never wins, as in max8
  fv sum = {}, dot = {};
  for (int c = 0; c < C; ++c) {
    fv shifted;
    x[c] = expv(x[c] - mx, shifted);
    sum += x[c];
    dot += x[c] * shifted;
  }
  storev(ent, loadv(ent) + entropy_one_group(sum, dot));
  const fv inv = 1.0f / sum, ic = splat(inv_count);
  for (int c = 0; c < C; ++c) welford_step(x[c] * inv, ic, mean + c * kLanes, m2 + c * kLanes);
}

// Folds `chunks` consecutive chunks (rows kLanes * C apart; state C * kLanes apart) with C <= 16.
template <int C>
void fold_small_c(const float* rows, int chunks, float inv_count, float* mean, float* m2, float* ent) {
  for (int k = 0; k < chunks; ++k)
    chunk_fold_small_c<C>(rows + k * kLanes * C, inv_count, mean + k * C * kLanes, m2 + k * C * kLanes,
                          ent + k * kLanes);
}

template <int... Cs>
constexpr auto small_c_folds(std::integer_sequence<int, Cs...>) {
  return std::array<void (*)(const float*, int, float, float*, float*, float*), sizeof...(Cs)>{
      &fold_small_c<Cs + 1>...};
}
// fold_small_c<C> for C = 1..16, indexed by C - 1.
constexpr auto kSmallCFolds = small_c_folds(std::make_integer_sequence<int, 2 * kRowRead>{});
#endif  // MPTS_SIMD_VECTOR_TYPES

// Per-thread state of one block of B items (B a multiple of kLanes): per chunk of kLanes items,
// the Welford mean and m2 of the softmax ([C][kLanes]); the summed snapshot entropies ([B]).
template <typename T, int B>
struct BlockState {
  static_assert(B % kLanes == 0);
  static constexpr int kChunks = B / kLanes;
  const int C;
  Scratch<T> tile_, mean_, m2_, rows;  // tile, mean, m2: [kChunks][C][kLanes]
  alignas(64) T ent[B];
  alignas(64) T mx[B];
  alignas(64) T inv[B];

  explicit BlockState(int64_t C_)
      : C(static_cast<int>(C_)), tile_(B * C_), mean_(B * C_), m2_(B * C_), rows(B * C_ + kRowRead) {}

  T* tile(int k) { return tile_.p + k * C * kLanes; }
  T* mean(int k) { return mean_.p + k * C * kLanes; }
  T* m2(int k) { return m2_.p + k * C * kLanes; }

  void zero() {
    std::fill(mean_.p, mean_.p + B * C, T(0));
    std::fill(m2_.p, m2_.p + B * C, T(0));
    std::fill(ent, ent + B, T(0));
  }

  // The block's rows of an (N, C) array: B rows from row n0, of which bn < B may be real.
  // A partial block, and the last block when C < kRowRead (the transpose reads kRowRead values
  // from each row start), are copied into zero-padded scratch, so every chunk has kLanes rows.
  const T* block_rows(const T* src, int64_t n0, int64_t bn, int64_t N) {
    if (bn == B && (C >= kRowRead || n0 + B < N)) return src + n0 * C;
    std::copy(src + n0 * C, src + (n0 + bn) * C, rows.p);
    std::fill(rows.p + bn * C, rows.p + B * C + kRowRead, T(0));
    return rows.p;
  }

  // state rows n0..n0+bn from (N, C) arrays and back (the accumulator API)
  // The copies are the logits' class-major transposes (chunk_transpose_max; its row max lands in
  // mx, unused here), vectorised for float: element by element they were most of an update
  // (N = 1e6, C = 10, two threads: 19.8 ms per update then, 11.2-13.1 ms with the transposes).
  void load(const T* gmean, const T* gm2, const T* gent, int64_t n0, int64_t bn, int64_t N) {
    const T* mu = block_rows(gmean, n0, bn, N);
    for (int k = 0; k < kChunks; ++k) chunk_transpose_max<T>(mu + k * kLanes * C, C, mean(k), mx + k * kLanes);
    const T* q = block_rows(gm2, n0, bn, N);
    for (int k = 0; k < kChunks; ++k) chunk_transpose_max<T>(q + k * kLanes * C, C, m2(k), mx + k * kLanes);
    std::fill(ent, ent + B, T(0));
    std::copy(gent + n0, gent + n0 + bn, ent);
  }
  void store(T* gmean, T* gm2, T* gent, int64_t n0, int64_t bn) {
    int64_t b0 = 0;
#ifdef MPTS_SIMD_VECTOR_TYPES
    // Whole chunks by 8 x 8 blocks (C >= 8: each block's rows hold 8 classes); the rest by element.
    if constexpr (std::is_same_v<T, float>)
      if (C >= kRowRead)
        for (; b0 + kLanes <= bn; b0 += kLanes) {
          chunk_tile_to_rows(mean(b0 / kLanes), C, gmean + (n0 + b0) * C);
          chunk_tile_to_rows(m2(b0 / kLanes), C, gm2 + (n0 + b0) * C);
        }
#endif
    for (int64_t b = b0; b < bn; ++b)
      for (int c = 0; c < C; ++c) {
        gmean[(n0 + b) * C + c] = mean(b / kLanes)[c * kLanes + b % kLanes];
        gm2[(n0 + b) * C + c] = m2(b / kLanes)[c * kLanes + b % kLanes];
      }
    std::copy(ent, ent + bn, gent + n0);
  }

  // Folds one snapshot's block rows (from block_rows) into the state; `count` snapshots were
  // folded before.
  void fold(const T* src, int64_t count) {
    const T inv_count = T(1) / static_cast<T>(count + 1);
#ifdef MPTS_SIMD_VECTOR_TYPES
    // With AVX-512 only: its 32 vector registers hold a chunk's classes; with AVX2's 16 the fused
    // fold spills and the three passes are faster (C = 10: 1.07 vs 0.87-0.88 ns per logit, C = 4:
    // 1.65 vs 1.15-1.55, built with -mno-avx512f on the same machine).
    if constexpr (std::is_same_v<T, float> && kLanes == 2 * kRowRead)
      if (C <= static_cast<int>(kSmallCFolds.size())) {
        kSmallCFolds[C - 1](src, kChunks, inv_count, mean(0), m2(0), ent);
        return;
      }
#endif
    for (int k = 0; k < kChunks; ++k) chunk_transpose_max<T>(src + k * kLanes * C, C, tile(k), mx + k * kLanes);
    int k0 = 0;
#ifdef MPTS_SIMD_VECTOR_TYPES
    if constexpr (std::is_same_v<T, float>)
      for (; k0 + 1 < kChunks; k0 += 2) chunk_exp_entropy_n<2>(C, tile(k0), mx + k0 * kLanes, inv + k0 * kLanes, ent + k0 * kLanes);
#endif
    for (int k = k0; k < kChunks; ++k) chunk_exp_entropy<T>(C, tile(k), mx + k * kLanes, inv + k * kLanes, ent + k * kLanes);
    for (int k = 0; k < kChunks; ++k) chunk_welford<T>(C, tile(k), inv + k * kLanes, inv_count, mean(k), m2(k));
  }

  void finalize(int64_t n0, int64_t bn, int64_t N, int64_t count, T* scores) {
    using Acc = double;
    const T inv_count = T(1) / static_cast<T>(count);
    const T var_scale = count > 1 ? T(1) / static_cast<T>(count - 1) : T(0);
    for (int k = 0; k * kLanes < bn; ++k) {
      alignas(64) Acc H[kLanes] = {}, var[kLanes] = {};
      alignas(64) T top1[kLanes] = {}, top2[kLanes] = {};
      const T* mu = mean(k);
      const T* q = m2(k);
      for (int c = 0; c < C; ++c) {
#pragma omp simd
        for (int j = 0; j < kLanes; ++j) {
          const T p = mu[c * kLanes + j];
          H[j] -= static_cast<Acc>(xlogx_or_nan(p));
          var[j] += static_cast<Acc>(q[c * kLanes + j]);
          const T lo = p < top1[j] ? p : top1[j];
          top2[j] = lo > top2[j] ? lo : top2[j];
          top1[j] = p > top1[j] ? p : top1[j];
        }
      }
      const int64_t b0 = k * kLanes;
      const int64_t nj = std::min<int64_t>(kLanes, bn - b0);
      for (int64_t j = 0; j < nj; ++j) {
        const int64_t i = n0 + b0 + j;
        const T h = static_cast<T>(H[j]);
        const T mi = h - ent[b0 + j] * inv_count;
        scores[kEntropy * N + i] = h;
        scores[kBald * N + i] = mi > T(0) ? mi : (mi != mi ? mi : T(0));
        const T v = static_cast<T>(var[j]) * var_scale;
        scores[kVariance * N + i] = v < T(0) ? T(0) : v;  // m2 may round below 0 (FMA-contracted Welford)
        scores[kMargin * N + i] = top1[j] - top2[j];
        scores[kLeastConfidence * N + i] = T(1) - top1[j];
      }
    }
  }
};

// Asks for n elements from p to be brought into L2 (prefetcht1). The rows a thread folds are S
// streams, one per snapshot, tens of MB apart, read in bursts of one block's B * C values: the
// hardware prefetchers do not keep up with that pattern, and without help the kernel spent a
// third of its time waiting for memory. Each stream is prefetched a few blocks ahead of its use;
// into L2 rather than L1 (measured, 1 thread, S = 10, N = 1e6, C = 10: no prefetch 1.10-1.12 ns
// per logit; the next snapshot's rows into L1 just before use 1.09-1.24; 4-16 blocks ahead into
// L2 0.84-0.97; in cache 0.72).
template <typename T>
void prefetch_rows_to_l2(const T* p, int64_t n) {
#if defined(__GNUC__)
  const char* b = reinterpret_cast<const char*>(p);
  for (int64_t off = 0; off < n * static_cast<int64_t>(sizeof(T)); off += 64) __builtin_prefetch(b + off, 0, 2);
#else
  (void)p;
  (void)n;
#endif
}

// Blocks are handed out in runs of kRun (dynamic: a thread whose core another process takes
// does fewer runs instead of holding up the region's end, as a static split would).
constexpr int64_t kRun = 8;
// How far ahead each snapshot's rows are prefetched: about this many bytes per stream.
constexpr int64_t kAheadBytes = 20 * 1024;

// Runs body(state, n0, bn, ahead_n0) over item blocks in parallel, with one BlockState per thread;
// ahead_n0 is the first item of the block this thread will take `lookahead` blocks later (-1 if
// none), for the body to prefetch. Each block writes only its own items, so the results do not
// depend on which thread takes which block. A thread claims its next run only when its look-ahead
// reaches past the current one, so it never holds more than one run it has not started.
template <typename T, int B, typename Body>
void for_each_block_of(int64_t N, int64_t C, Body body) {
  const int64_t nblocks = (N + B - 1) / B;
  const int64_t block_bytes = B * C * static_cast<int64_t>(sizeof(T));
  const int64_t lookahead = std::clamp<int64_t>(kAheadBytes / block_bytes, 1, kRun);
  std::atomic<int64_t> next_run{0};
#pragma omp parallel
  {
    BlockState<T, B> st(C);
    int64_t run = next_run.fetch_add(kRun, std::memory_order_relaxed);
    while (run < nblocks) {
      const int64_t run_end = std::min(run + kRun, nblocks);
      int64_t following = -1;  // the next run, once claimed
      for (int64_t blk = run; blk < run_end; ++blk) {
        int64_t ahead = blk + lookahead;
        if (ahead >= run_end) {
          if (following < 0) following = next_run.fetch_add(kRun, std::memory_order_relaxed);
          ahead = following + (ahead - run_end);  // lookahead <= kRun: within the following run
          if (ahead >= nblocks) ahead = -1;
        }
        const int64_t n0 = blk * B;
        body(st, n0, std::min<int64_t>(B, N - n0), ahead < 0 ? int64_t(-1) : ahead * B);
      }
      run = following >= 0 ? following : next_run.fetch_add(kRun, std::memory_order_relaxed);
    }
  }
}

// Blocks of 64 items keep the state in L1 up to C = 64; 16 above.
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
  for_each_block<T>(N, C, [&](auto& st, int64_t n0, int64_t bn, int64_t ahead_n0) {
    st.zero();
    for (int64_t s = 0; s < S; ++s) {
      if (ahead_n0 >= 0) prefetch_rows_to_l2(logits[s] + ahead_n0 * C, std::min<int64_t>(bn, N - ahead_n0) * C);
      st.fold(st.block_rows(logits[s], n0, bn, N), s);
    }
    st.finalize(n0, bn, N, S, scores);
  });
}

template <typename T>
void snapshot_accumulate_cpu(const T* logits, int64_t N, int64_t C, int64_t count, T* mean, T* m2,
                             T* ent_sum) {
  for_each_block<T>(N, C, [&](auto& st, int64_t n0, int64_t bn, int64_t) {
    st.load(mean, m2, ent_sum, n0, bn, N);
    st.fold(st.block_rows(logits, n0, bn, N), count);
    st.store(mean, m2, ent_sum, n0, bn);
  });
}

template <typename T>
void snapshot_finalize_cpu(const T* mean, const T* m2, const T* ent_sum, int64_t N, int64_t C,
                           int64_t count, T* scores) {
  for_each_block<T>(N, C, [&](auto& st, int64_t n0, int64_t bn, int64_t) {
    st.load(mean, m2, ent_sum, n0, bn, N);
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
