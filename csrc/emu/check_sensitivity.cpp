// sensitivity_cuda.cu under emulation: phi against the CPU kernel and a direct float64 triple
// sum, for every norm and output activation, input and class counts around the 32 lanes of the
// row-norm and max-over-classes warps, several chunks, missing biases (CUDA accepts null), and
// NaN inputs, which must come out as NaN in every norm.
#include "check_common.h"

#include <algorithm>
#include <cmath>

#include "sensitivity.h"
#include "sensitivity_cuda.h"

namespace {

using mpts::SensNorm;

const char* norm_name(SensNorm n) { return n == SensNorm::kL1 ? "l1" : n == SensNorm::kL2 ? "l2" : "inf"; }

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// phi[p] = max_k a_pk |sum_j W_kj g_pj V_j:|, in double, NaN anywhere in a row's terms -> NaN.
std::vector<double> reference(const std::vector<float>& x, const std::vector<float>& V, const std::vector<float>& bv,
                              const std::vector<float>& W, const std::vector<float>& bw, long P, long I, long J,
                              long K, SensNorm norm, bool sig) {
  std::vector<double> phi(P), y(J), g(J), s(I);
  for (long p = 0; p < P; ++p) {
    for (long j = 0; j < J; ++j) {
      double h = bv[j];
      for (long i = 0; i < I; ++i) h += double(x[p * I + i]) * V[j * I + i];
      y[j] = sigmoid(h);
      g[j] = y[j] * (1 - y[j]);
    }
    double best = 0;
    bool nan = false;
    for (long k = 0; k < K; ++k) {
      double o = bw[k];
      for (long j = 0; j < J; ++j) o += y[j] * W[k * J + j];
      const double a = sig ? sigmoid(o) * (1 - sigmoid(o)) : 1.0;
      std::fill(s.begin(), s.end(), 0.0);
      for (long j = 0; j < J; ++j)
        for (long i = 0; i < I; ++i) s[i] += double(W[k * J + j]) * g[j] * V[j * I + i];
      double nrm = 0;
      for (long i = 0; i < I; ++i) {
        nan |= std::isnan(s[i]);
        if (norm == SensNorm::kL1) nrm += std::fabs(s[i]);
        if (norm == SensNorm::kL2) nrm += s[i] * s[i];
        if (norm == SensNorm::kInf) nrm = std::max(nrm, std::fabs(s[i]));
      }
      if (norm == SensNorm::kL2) nrm = std::sqrt(nrm);
      nan |= std::isnan(a);
      best = std::max(best, a * nrm);
    }
    phi[p] = nan ? NAN : best;
  }
  return phi;
}

struct Case {
  long P, I, J, K;
  SensNorm norm;
  bool sigmoid_output;
  long chunk;
  bool null_bias;   // CUDA takes b_v = b_w = nullptr as zero biases
  long nan_row;     // >= 0: x[nan_row, 0] = NaN
};

void run(check::Suite& suite, const Case& c) {
  std::normal_distribution<float> nd(0.f, 1.f);
  auto draw = [&](long n, float scale) {
    std::vector<float> v(n);
    for (auto& e : v) e = scale * nd(suite.rng);
    return v;
  };
  std::vector<float> x = draw(c.P * c.I, 1.f), V = draw(c.J * c.I, 0.5f), W = draw(c.K * c.J, 0.5f);
  std::vector<float> bv = c.null_bias ? std::vector<float>(c.J, 0.f) : draw(c.J, 0.3f);
  std::vector<float> bw = c.null_bias ? std::vector<float>(c.K, 0.f) : draw(c.K, 0.3f);
  if (c.nan_row >= 0) x[c.nan_row * c.I] = NAN;
  const std::vector<double> ref = reference(x, V, bv, W, bw, c.P, c.I, c.J, c.K, c.norm, c.sigmoid_output);

  std::vector<float> cpu(c.P);
  mpts::sensitivity_cpu<float>(x.data(), V.data(), bv.data(), W.data(), bw.data(), c.P, c.I, c.J, c.K, c.norm,
                               c.sigmoid_output, cpu.data(), mpts::GemmFn<float>(mpts::gemm_naive<float>), c.chunk);

  const check::Buffer<float> dx(x), dV(V), dW(W), dbv(bv), dbw(bw);
  check::Buffer<float> phi(c.P);
  check::Buffer<unsigned char> ws(mpts::cuda::sensitivity_workspace_bytes(c.P, c.I, c.J, c.K, c.chunk), 5);
  mpts::cuda::sensitivity(dx.get(), dV.get(), c.null_bias ? nullptr : dbv.get(), dW.get(),
                          c.null_bias ? nullptr : dbw.get(), c.P, c.I, c.J, c.K, c.norm, c.sigmoid_output,
                          phi.get(), ws.get(), check::stream_gemm(), cuda_emu::stream(), c.chunk);
  const std::vector<float> got = phi.download();

  double scale = 0;
  for (double v : ref)
    if (!std::isnan(v)) scale = std::max(scale, std::fabs(v));
  const double atol = 1e-6 * std::max(1e-2, scale);
  size_t at = 0, at_cpu = 0;
  const double vs_ref = check::worst_ratio(got, ref, atol, 1e-5, &at);
  const double cpu_vs_ref = check::worst_ratio(cpu, ref, atol, 1e-5, &at_cpu);
  const bool ok = vs_ref <= 1.0 && check::worst_ratio(got, cpu, 2 * atol, 2e-5) <= 1.0 && phi.guards_intact() &&
                  ws.guards_intact();
  suite.expect(ok, "P=%ld I=%ld J=%ld K=%ld %s %s chunk=%ld%s%s: gpu %.3g x tol vs float64 (p=%zu: %.8g vs %.8g); "
                   "cpu %.3g x tol (p=%zu: %.8g)%s",
               c.P, c.I, c.J, c.K, norm_name(c.norm), c.sigmoid_output ? "sigmoid" : "linear", c.chunk,
               c.null_bias ? " no-bias" : "", c.nan_row >= 0 ? " NaN-row" : "", vs_ref, at, double(got[at]), ref[at],
               cpu_vs_ref, at_cpu, double(cpu[at_cpu]), phi.guards_intact() ? "" : ", guard zone overwritten");
}

}  // namespace

int main() {
  check::Suite suite("sensitivity");
  for (SensNorm norm : {SensNorm::kL1, SensNorm::kL2, SensNorm::kInf})
    for (bool sig : {true, false}) {
      run(suite, {1, 1, 1, 1, norm, sig, 0, false, -1});
      run(suite, {300, 13, 7, 5, norm, sig, 0, false, -1});
      run(suite, {300, 13, 7, 5, norm, sig, 64, false, -1});    // 5 chunks, the last partial
      run(suite, {77, 32, 33, 32, norm, sig, 10, false, -1});   // I = one warp, K = one warp
      run(suite, {40, 33, 9, 33, norm, sig, 0, false, -1});     // one past a warp
      run(suite, {65, 31, 40, 31, norm, sig, 0, true, -1});     // one short; null biases
      run(suite, {70, 70, 6, 65, norm, sig, 32, false, -1});    // several lanes' strides
      run(suite, {50, 12, 8, 6, norm, sig, 16, false, 21});     // a NaN input row in chunk 2
    }
  return suite.finish();
}
