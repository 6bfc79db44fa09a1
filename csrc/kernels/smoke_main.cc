// Links the kernel library without torch and checks one MMD^2 value and one snapshot score
// against closed forms, so C++ users see the library works with the portable GEMM.
#include <cmath>
#include <cstdio>
#include <vector>

#include "rbf_mmd.h"
#include "snapshot_uncertainty.h"

int main() {
  // x = {0}, y = {1} in 1-D, one bandwidth s = 1: MMD^2 = k(0) + k(0) - 2 k(1) = 2 - 2 e^-1.
  const std::vector<double> z = {0.0, 1.0};
  const double s = 1.0;
  mpts::MmdScales sc;
  if (!mpts::make_mmd_scales(&s, 1, &sc)) return 1;
  const auto w = mpts::make_mmd_weights(1, 1, false);
  std::vector<double> grad(2);
  const double v = mpts::rbf_mmd2_cpu<double>(z.data(), 1, 1, 1, sc, w, grad.data(),
                                              mpts::gemm_naive<double>);
  const double want = 2.0 - 2.0 * std::exp(-1.0);
  // Two equal logits: entropy log 2.
  const std::vector<float> logits = {3.0f, 3.0f};
  const float* snaps[1] = {logits.data()};
  std::vector<float> scores(5);
  mpts::snapshot_scores_cpu<float>(snaps, 1, 1, 2, scores.data());
  const bool ok = std::fabs(v - want) < 1e-12 && std::fabs(scores[0] - std::log(2.0f)) < 1e-6f;
  std::printf("mmd2 %.12f (want %.12f), entropy %.6f (want %.6f): %s\n", v, want, scores[0],
              std::log(2.0f), ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
