// rbf_mmd_cuda.cu under emulation: MMD^2 and its gradient against the CPU kernel and a direct
// float64 double sum over all pairs, for tiles around the epilogue's 256 threads and the column
// sum's 32-column blocks, several tiles per side, more rows than the final reduction's 1024
// threads, scale ladders and odd scales, both estimators, and the hostile cases the CPU kernel
// handles specially (duplicate rows far from the origin, tiny bandwidths).
#include "check_common.h"

#include <algorithm>
#include <cmath>

#include "rbf_mmd.h"
#include "rbf_mmd_cuda.h"

namespace {

struct Reference {
  double value = 0;
  std::vector<double> grad;
};

// sum_{a,b} c_ab k(D_ab) and 4 sum_b w_ab (z_a - z_b), distances taken directly in double.
Reference reference(const std::vector<float>& z, long n, long m, long d, const std::vector<double>& scales,
                    const mpts::MmdWeights& w) {
  const long N = n + m;
  Reference r;
  r.grad.assign(N * d, 0.0);
  for (long a = 0; a < N; ++a)
    for (long b = 0; b < N; ++b) {
      if (a == b && !w.include_diagonal) continue;
      const bool ax = a < n, bx = b < n;
      const double c = ax && bx ? w.xx : (!ax && !bx ? w.yy : w.xy);
      double D = 0;
      for (long k = 0; k < d; ++k) {
        const double t = double(z[a * d + k]) - double(z[b * d + k]);
        D += t * t;
      }
      double kv = 0, kp = 0;
      for (double s : scales) {
        const double e = std::exp(-D / s);
        kv += e;
        kp -= e / s;
      }
      r.value += c * kv;
      for (long k = 0; k < d; ++k) r.grad[a * d + k] += 4.0 * c * kp * (double(z[a * d + k]) - double(z[b * d + k]));
    }
  return r;
}

struct Case {
  long n, m, d;
  std::vector<double> scales;
  bool unbiased;
  long tile;          // 0: the kernel's default
  float offset;       // added to every coordinate
  const char* kind;   // "random", "y=x" (y a copy of x), "one-pair" (n = m = 1, x == y)
};

void run(check::Suite& suite, const Case& cs) {
  const long N = cs.n + cs.m, d = cs.d;
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> z(N * d);
  for (auto& v : z) v = nd(suite.rng) + cs.offset;
  const std::string kind = cs.kind;
  if (kind == "y=x" || kind == "one-pair")
    for (long i = 0; i < std::min(cs.n, cs.m) * d; ++i) z[cs.n * d + i] = z[i];

  mpts::MmdScales sc;
  if (!mpts::make_mmd_scales(cs.scales.data(), int(cs.scales.size()), &sc)) std::abort();
  const mpts::MmdWeights w = mpts::make_mmd_weights(cs.n, cs.m, cs.unbiased);
  const Reference ref = reference(z, cs.n, cs.m, d, cs.scales, w);

  std::vector<float> g_cpu(N * d);
  const double v_cpu = mpts::rbf_mmd2_cpu<float>(z.data(), cs.n, cs.m, d, sc, w, g_cpu.data(),
                                                 mpts::GemmFn<float>(mpts::gemm_naive<float>), cs.tile);

  // value and gradient; a poisoned, misaligned workspace (the kernel must clear what it uses)
  const check::Buffer<float> dz(z);
  check::Buffer<float> grad(N * d);
  check::Buffer<double> value(1);
  check::Buffer<unsigned char> ws(mpts::cuda::rbf_mmd2_workspace_bytes(cs.n, cs.m, d, true, cs.tile), 3);
  mpts::cuda::rbf_mmd2(dz.get(), cs.n, cs.m, d, sc, w, value.get(), grad.get(), ws.get(), check::stream_gemm(),
                       cuda_emu::stream(), cs.tile);
  const double v_gpu = value.download()[0];
  const std::vector<float> g_gpu = grad.download();
  // value only
  check::Buffer<double> value2(1);
  check::Buffer<unsigned char> ws2(mpts::cuda::rbf_mmd2_workspace_bytes(cs.n, cs.m, d, false, cs.tile), 5);
  mpts::cuda::rbf_mmd2(dz.get(), cs.n, cs.m, d, sc, w, value2.get(), nullptr, ws2.get(), check::stream_gemm(),
                       cuda_emu::stream(), cs.tile);
  const double v_gpu2 = value2.download()[0];

  const double Q = double(cs.scales.size());
  const double cpu_err = std::fabs(v_cpu - ref.value);
  const double vtol = 4e-6 * Q + 4 * cpu_err;
  double g_err = 0, g_cpu_err = 0, g_scale = 0;
  for (long i = 0; i < N * d; ++i) {
    g_err = std::max(g_err, std::isnan(g_gpu[i]) ? INFINITY : std::fabs(g_gpu[i] - ref.grad[i]));
    g_cpu_err = std::max(g_cpu_err, std::fabs(g_cpu[i] - ref.grad[i]));
    g_scale = std::max(g_scale, std::fabs(ref.grad[i]));
  }
  const double gtol = 1e-5 * std::max(1.0, g_scale) + 4 * g_cpu_err;
  bool ok = std::fabs(v_gpu - ref.value) <= vtol && std::fabs(v_gpu - v_cpu) <= vtol && g_err <= gtol &&
            v_gpu == v_gpu2 && grad.guards_intact() && value.guards_intact() && ws.guards_intact() &&
            ws2.guards_intact();
  // Duplicates at different indices are exactly 0 apart on the CPU (near-identical pairs are
  // recomputed directly), so the MMD^2 of a sample with itself is exactly 0 there; on CUDA too.
  const bool exact_zero = kind == "one-pair" || (kind == "y=x" && !cs.unbiased && v_cpu == 0.0);
  if (exact_zero) ok = ok && v_gpu == 0.0 && v_gpu2 == 0.0;
  suite.expect(ok,
               "%s n=%ld m=%ld d=%ld Q=%zu %s tile=%ld offset=%g: value gpu %.6g (value-only %.6g) cpu %.6g f64 %.6g "
               "(tol %.2g%s); grad err gpu %.3g cpu %.3g (tol %.2g)%s",
               cs.kind, cs.n, cs.m, d, cs.scales.size(), cs.unbiased ? "unbiased" : "biased", cs.tile, cs.offset,
               v_gpu, v_gpu2, v_cpu, ref.value, vtol, exact_zero ? ", must be exactly 0" : "", g_err, g_cpu_err, gtol,
               grad.guards_intact() && ws.guards_intact() ? "" : ", guard zone overwritten");
}

}  // namespace

int main() {
  check::Suite suite("mmd");
  const std::vector<double> one = {1.0};
  const std::vector<double> ladder = {4.0, 2.0, 1.0, 0.5, 0.25};  // one exp, squarings after
  const std::vector<double> odd = {0.98, 3.38, 19.22};            // an exp per scale
  std::vector<double> sixteen;                                     // MmdScales::kMax
  for (int q = 0; q < 16; ++q) sixteen.push_back(0.5 + 0.37 * q);
  for (bool U : {false, true}) {
    for (long tile : {0L, 33L, 100L}) {  // one tile; column sums at 32-column block edges; uneven tiles
      run(suite, {2, 3, 1, one, U, tile, 0.f, "random"});
      run(suite, {150, 120, 4, odd, U, tile, 0.f, "random"});
      run(suite, {130, 127, 33, ladder, U, tile, 0.f, "random"});
      run(suite, {250, 7, 31, ladder, U, tile, 0.3f, "random"});
    }
    run(suite, {128, 128, 32, sixteen, U, 256, 0.f, "random"});   // tile = epilogue block exactly
    run(suite, {129, 128, 5, ladder, U, 256, 0.f, "random"});     // one row past it
    run(suite, {600, 530, 3, ladder, U, 0, 0.f, "random"});       // > 1024 rows: reduction strides
    run(suite, {5, 4, 0, one, U, 0, 0.f, "random"});              // d = 0: all distances 0
    run(suite, {200, 200, 8, {0.02, 0.01}, U, 0, 0.f, "y=x"});    // tiny bandwidths
    run(suite, {300, 300, 6, {16.0, 8.0}, U, 0, 0.f, "y=x"});     // wide ones: many kernel values in each row sum
    run(suite, {200, 200, 8, {2.0, 1.0}, U, 64, 30.f, "y=x"});    // far from the origin
    run(suite, {200, 200, 8, {2.0, 1.0}, U, 0, 30.f, "random"});
  }
  run(suite, {1, 1, 8, ladder, false, 0, 30.f, "one-pair"});  // the unbiased estimator needs n, m >= 2
  return suite.finish();
}
