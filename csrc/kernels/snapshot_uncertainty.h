// Posterior summaries of S softmax snapshots in one pass over (S, N, C) logits.
//
// Per item, with p_s = softmax(logits_s) and pbar = mean_s p_s:
//   entropy          = -sum_c pbar log pbar                  (natural log, 0 log 0 = 0)
//   bald             = max(0, entropy - mean_s H(p_s))       (clamped: Jensen says >= 0)
//   variance         = sum_c Var_s p_s[c], denominator S - 1 (0 when S == 1)
//   margin           = pbar(1st) - pbar(2nd)                 (pbar(2nd) = 0 when C == 1)
//   least_confidence = 1 - max pbar
// The running state is Welford's: mean (N, C), m2 (N, C), summed snapshot entropy (N),
// so snapshots can also arrive one at a time (the accumulator API) with O(N C) memory.
// A -inf logit masks its class (the scores equal those without it). NaN, +inf, or an item whose
// logits in a snapshot are all -inf make that item's scores NaN; the binding turns that into an error.
#pragma once

#include <cstdint>

namespace mpts {

enum SnapshotScore : int { kEntropy = 0, kBald = 1, kVariance = 2, kMargin = 3, kLeastConfidence = 4, kNumScores = 5 };

// One pass. logits: S pointers to (N, C) row-major snapshots (row stride C).
// scores: (5, N) row-major in SnapshotScore order.
template <typename T>
void snapshot_scores_cpu(const T* const* logits, int64_t S, int64_t N, int64_t C, T* scores);

// Accumulator: fold one (N, C) snapshot into the state (mean, m2: (N, C); ent_sum: (N)).
// `count` is the number of snapshots already folded in.
template <typename T>
void snapshot_accumulate_cpu(const T* logits, int64_t N, int64_t C, int64_t count, T* mean, T* m2,
                             T* ent_sum);

// Scores from the state after `count` >= 1 snapshots. scores: (5, N).
template <typename T>
void snapshot_finalize_cpu(const T* mean, const T* m2, const T* ent_sum, int64_t N, int64_t C,
                           int64_t count, T* scores);

}  // namespace mpts
