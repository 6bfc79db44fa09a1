#include <algorithm>
#include <vector>

#include "common.h"
#include "snapshot_uncertainty.h"

namespace mpts {
namespace {

// Items are processed in blocks held class-major ([C][B]) in thread-local scratch, so every
// per-class step is a unit-stride loop across items and vectorises even for C = 10.
// Sums over classes (softmax denominator, sum p*(l - max), entropy, variance) run in double:
// in float32 their error grows linearly with C (7-10x torch's pairwise sums at C = 1000), while
// the per-class work that dominates the time (exp, Welford) stays in T.
template <typename T>
struct BlockState {
  using Acc = double;
  int64_t B, C;
  std::vector<T> logit, mean, m2;  // [C][B]
  std::vector<T> ent, mx, inv, top2;  // [B]
  std::vector<Acc> sum, dot;          // [B]
  BlockState(int64_t B_, int64_t C_)
      : B(B_), C(C_), logit(B_ * C_), mean(B_ * C_), m2(B_ * C_), ent(B_), mx(B_), inv(B_), top2(B_),
        sum(B_), dot(B_) {}

  void zero() {
    std::fill(mean.begin(), mean.end(), T(0));
    std::fill(m2.begin(), m2.end(), T(0));
    std::fill(ent.begin(), ent.end(), T(0));
  }

  // state rows n0..n0+bn from (N, C) arrays and back
  void load(const T* gmean, const T* gm2, const T* gent, int64_t n0, int64_t bn) {
    for (int64_t b = 0; b < bn; ++b)
      for (int64_t c = 0; c < C; ++c) {
        mean[c * B + b] = gmean[(n0 + b) * C + c];
        m2[c * B + b] = gm2[(n0 + b) * C + c];
      }
    for (int64_t b = 0; b < bn; ++b) ent[b] = gent[n0 + b];
  }
  void store(T* gmean, T* gm2, T* gent, int64_t n0, int64_t bn) const {
    for (int64_t b = 0; b < bn; ++b)
      for (int64_t c = 0; c < C; ++c) {
        gmean[(n0 + b) * C + c] = mean[c * B + b];
        gm2[(n0 + b) * C + c] = m2[c * B + b];
      }
    for (int64_t b = 0; b < bn; ++b) gent[n0 + b] = ent[b];
  }

  // Folds snapshot rows n0..n0+bn of `logits` ((N, C) row-major) into the state;
  // `count` snapshots were folded before.
  void fold(const T* logits, int64_t n0, int64_t bn, int64_t count) {
    T* lt = logit.data();
    const T* src = logits + n0 * C;
    for (int64_t b = 0; b < bn; ++b)
      for (int64_t c = 0; c < C; ++c) lt[c * B + b] = src[b * C + c];
    T* mxp = mx.data();
    Acc* sp = sum.data();
    Acc* dp = dot.data();
    T* ip = inv.data();
#pragma omp simd
    for (int64_t b = 0; b < bn; ++b) mxp[b] = lt[b];
    for (int64_t c = 1; c < C; ++c) {
      const T* l = lt + c * B;
#pragma omp simd
      for (int64_t b = 0; b < bn; ++b) mxp[b] = l[b] > mxp[b] ? l[b] : mxp[b];
    }
#pragma omp simd
    for (int64_t b = 0; b < bn; ++b) {
      sp[b] = 0;
      dp[b] = 0;
    }
    for (int64_t c = 0; c < C; ++c) {
      T* l = lt + c * B;
#pragma omp simd
      for (int64_t b = 0; b < bn; ++b) {
        // +inf - +inf and NaN give NaN: NaN, +inf and all--inf rows poison the item. A -inf
        // logit (a masked class) gives sh = -inf, e = exp(-inf) = 0 exactly, and adds nothing:
        // its e * sh would be 0 * -inf = NaN, so the product is taken only where e > 0 (a NaN e
        // still reaches sp and l, so NaN input is not hidden by the guard).
        const T sh = l[b] - mxp[b];
        const T e = fast_exp(sh);
        l[b] = e;
        sp[b] += static_cast<Acc>(e);
        dp[b] += static_cast<Acc>(e > T(0) ? e * sh : T(0));
      }
    }
    T* ep = ent.data();
#pragma omp simd
    for (int64_t b = 0; b < bn; ++b) {
      const T s = static_cast<T>(sp[b]);
      ep[b] += fast_log(s) - static_cast<T>(dp[b] / sp[b]);  // H(p) = log sum e - sum p (l - max)
      ip[b] = T(1) / s;
    }
    const T inv_count = T(1) / static_cast<T>(count + 1);
    for (int64_t c = 0; c < C; ++c) {
      const T* e = lt + c * B;
      T* mu = mean.data() + c * B;
      T* q = m2.data() + c * B;
#pragma omp simd
      for (int64_t b = 0; b < bn; ++b) {
        const T p = e[b] * ip[b];
        const T delta = p - mu[b];
        mu[b] += delta * inv_count;
        q[b] += delta * (p - mu[b]);  // Welford: no sum-of-squares cancellation
      }
    }
  }

  void finalize(int64_t n0, int64_t bn, int64_t N, int64_t count, T* scores) {
    T* H = scores + kEntropy * N + n0;
    T* bald = scores + kBald * N + n0;
    T* var = scores + kVariance * N + n0;
    T* margin = scores + kMargin * N + n0;
    T* lc = scores + kLeastConfidence * N + n0;
    T* top1 = mx.data();
    T* t2 = top2.data();
    Acc* Hd = sum.data();
    Acc* vd = dot.data();
#pragma omp simd
    for (int64_t b = 0; b < bn; ++b) {
      Hd[b] = 0;
      vd[b] = 0;
      top1[b] = 0;
      t2[b] = 0;
    }
    for (int64_t c = 0; c < C; ++c) {
      const T* mu = mean.data() + c * B;
      const T* q = m2.data() + c * B;
#pragma omp simd
      for (int64_t b = 0; b < bn; ++b) {
        const T p = mu[b];
        Hd[b] -= static_cast<Acc>((p != p) ? p : xlogx(p));
        vd[b] += static_cast<Acc>(q[b]);
        const T lo = p < top1[b] ? p : top1[b];
        t2[b] = lo > t2[b] ? lo : t2[b];
        top1[b] = p > top1[b] ? p : top1[b];
      }
    }
#pragma omp simd
    for (int64_t b = 0; b < bn; ++b) {
      H[b] = static_cast<T>(Hd[b]);
      var[b] = static_cast<T>(vd[b]);
    }
    const T inv_count = T(1) / static_cast<T>(count);
    const T var_scale = count > 1 ? T(1) / static_cast<T>(count - 1) : T(0);
    const T* ep = ent.data();
#pragma omp simd
    for (int64_t b = 0; b < bn; ++b) {
      const T mi = H[b] - ep[b] * inv_count;
      bald[b] = mi > T(0) ? mi : (mi != mi ? mi : T(0));
      const T v = var[b] * var_scale;
      var[b] = v < T(0) ? T(0) : v;  // m2 may round below 0 (FMA-contracted Welford steps)
      margin[b] = top1[b] - t2[b];
      lc[b] = T(1) - top1[b];
    }
  }
};

int64_t block_items(int64_t C) { return C <= 64 ? 64 : 16; }

// Runs body(state, n0, bn) over item blocks in parallel, with one BlockState per thread.
// Dynamic: a thread whose core another process takes does fewer blocks instead of holding up
// the region's end (a static split waits for its share); each block writes only its own items.
template <typename T, typename Body>
void for_each_block(int64_t N, int64_t C, Body body) {
  const int64_t B = block_items(C);
  const int64_t nblocks = (N + B - 1) / B;
#pragma omp parallel
  {
    BlockState<T> st(B, C);
#pragma omp for schedule(dynamic, 8)
    for (int64_t blk = 0; blk < nblocks; ++blk) {
      const int64_t n0 = blk * B;
      body(st, n0, std::min(B, N - n0));
    }
  }
}

}  // namespace

template <typename T>
void snapshot_scores_cpu(const T* const* logits, int64_t S, int64_t N, int64_t C, T* scores) {
  for_each_block<T>(N, C, [&](BlockState<T>& st, int64_t n0, int64_t bn) {
    st.zero();
    for (int64_t s = 0; s < S; ++s) st.fold(logits[s], n0, bn, s);
    st.finalize(n0, bn, N, S, scores);
  });
}

template <typename T>
void snapshot_accumulate_cpu(const T* logits, int64_t N, int64_t C, int64_t count, T* mean, T* m2,
                             T* ent_sum) {
  for_each_block<T>(N, C, [&](BlockState<T>& st, int64_t n0, int64_t bn) {
    st.load(mean, m2, ent_sum, n0, bn);
    st.fold(logits, n0, bn, count);
    st.store(mean, m2, ent_sum, n0, bn);
  });
}

template <typename T>
void snapshot_finalize_cpu(const T* mean, const T* m2, const T* ent_sum, int64_t N, int64_t C,
                           int64_t count, T* scores) {
  for_each_block<T>(N, C, [&](BlockState<T>& st, int64_t n0, int64_t bn) {
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
