// snapshot_uncertainty_cuda.cu under emulation: scores, accumulate and finalize against the CPU
// kernel and a float64 reference written out here, for every logit storage type, class counts
// around every team configuration (1, 4, 8, 16, 32 lanes per item) and item counts around the
// warp and block boundaries of each.
#include "check_common.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "snapshot_uncertainty.h"
#include "snapshot_uncertainty_cuda.h"

namespace {

using check::Storage;
using mpts::cuda::LogitType;

constexpr int kScores = mpts::kNumScores;
const char* kField[kScores] = {"entropy", "bald", "variance", "margin", "least_confidence"};

// Float64 reference: explicit softmax per snapshot, mean, entropies, sample variance, top two.
// -inf logits mask their classes (exp gives 0, 0 log 0 = 0); an item with a NaN or +inf logit, or
// with every logit of a snapshot at -inf, gets NaN everywhere (the kernels' contract).
std::vector<double> reference(const std::vector<float>& logits, int S, long stride_s, long N, long C) {
  std::vector<double> out(kScores * N);
  std::vector<double> p(S * C), pbar(C);
  for (long i = 0; i < N; ++i) {
    bool finite = true;
    double h_sum = 0;
    for (int s = 0; s < S; ++s) {
      const float* row = logits.data() + s * stride_s + i * C;
      double mx = -INFINITY;
      for (long c = 0; c < C; ++c) {
        finite &= !std::isnan(row[c]) && row[c] != INFINITY;
        mx = std::max(mx, double(row[c]));
      }
      finite &= mx > -INFINITY;  // all classes masked
      double z = 0;
      for (long c = 0; c < C; ++c) z += std::exp(double(row[c]) - mx);
      double h = 0;
      for (long c = 0; c < C; ++c) {
        const double q = std::exp(double(row[c]) - mx) / z;
        p[s * C + c] = q;
        h -= q > 0 ? q * std::log(q) : 0.0;
      }
      h_sum += h;
    }
    double ent = 0, var = 0, t1 = 0, t2 = 0;
    for (long c = 0; c < C; ++c) {
      double m = 0;
      for (int s = 0; s < S; ++s) m += p[s * C + c];
      m /= S;
      double ss = 0;
      for (int s = 0; s < S; ++s) ss += (p[s * C + c] - m) * (p[s * C + c] - m);
      var += S > 1 ? ss / (S - 1) : 0.0;
      ent -= m > 0 ? m * std::log(m) : 0.0;
      if (m > t1) {
        t2 = t1;
        t1 = m;
      } else if (m > t2) {
        t2 = m;
      }
    }
    const double v[kScores] = {ent, std::max(0.0, ent - h_sum / S), var, t1 - t2, 1.0 - t1};
    for (int f = 0; f < kScores; ++f) out[f * N + i] = finite ? v[f] : NAN;
  }
  return out;
}

struct Tolerance {
  double atol, rtol;
};

// float32 state and scores against float64: a few ulps of the O(1..log C) quantities.
Tolerance tolerance_for(long C) { return {2e-6 * std::max(1.0, std::log(double(C))), 4e-6}; }

// Largest absolute error per score field.
std::vector<double> field_errors(const std::vector<float>& got, const std::vector<double>& ref, long N) {
  std::vector<double> e(kScores, 0.0);
  for (int f = 0; f < kScores; ++f)
    for (long i = 0; i < N; ++i) {
      const double g = got[f * N + i], r = ref[f * N + i];
      if (std::isnan(r) || std::isnan(g)) continue;  // NaN agreement is checked separately
      e[f] = std::max(e[f], std::fabs(g - r));
    }
  return e;
}

struct Config {
  Storage storage;
  int S;
  long N, C;
  float scale;     // logits ~ scale * N(0, 1)
  const char* kind;  // "random", "equal", "peaked", "masked", "nonfinite"
};

class SnapshotCheck {
 public:
  explicit SnapshotCheck(check::Suite& suite) : suite_(suite) {}

  void run(const Config& cf) {
    const long pad = 3;  // snapshots strided apart, not packed
    const long stride_s = cf.N * cf.C + pad;
    std::vector<float> host(cf.S * stride_s);
    fill(host, cf);
    const std::vector<double> ref = reference(host, cf.S, stride_s, cf.N, cf.C);

    // the CPU twin, float32, on the same stored values
    std::vector<std::vector<float>> snaps(cf.S);
    std::vector<const float*> ptrs(cf.S);
    for (int s = 0; s < cf.S; ++s) {
      snaps[s].assign(host.begin() + s * stride_s, host.begin() + s * stride_s + cf.N * cf.C);
      ptrs[s] = snaps[s].data();
    }
    std::vector<float> cpu(kScores * cf.N);
    mpts::snapshot_scores_cpu<float>(ptrs.data(), cf.S, cf.N, cf.C, cpu.data());

    const check::StoredRows logits(host, cf.storage);
    const auto type = static_cast<LogitType>(cf.storage);

    // one pass over all snapshots
    check::Buffer<float> scores(kScores * cf.N);
    mpts::cuda::snapshot_scores(logits.get(), type, cf.S, stride_s, cf.N, cf.C, scores.get(), cuda_emu::stream());
    compare("scores", cf, scores, ref, cpu);

    // the accumulator: snapshot by snapshot from a poisoned state (count 0 must ignore it)
    check::Buffer<float> mean(cf.N * cf.C), m2(cf.N * cf.C), ent(cf.N);
    for (int s = 0; s < cf.S; ++s) {
      const void* snap = static_cast<const char*>(logits.get()) + s * stride_s * logits.elem_bytes();
      mpts::cuda::snapshot_accumulate(snap, type, cf.N, cf.C, s, mean.get(), m2.get(), ent.get(), cuda_emu::stream());
    }
    check::Buffer<float> fin(kScores * cf.N);
    mpts::cuda::snapshot_finalize(mean.get(), m2.get(), ent.get(), cf.N, cf.C, cf.S, fin.get(), cuda_emu::stream());
    const bool state_guards = mean.guards_intact() && m2.guards_intact() && ent.guards_intact();
    compare("accumulate+finalize", cf, fin, ref, cpu, state_guards);
  }

 private:
  void fill(std::vector<float>& host, const Config& cf) {
    std::normal_distribution<float> nd(0.f, 1.f);
    for (auto& v : host) v = check::stored(cf.scale * nd(suite_.rng), cf.storage);
    const long stride_s = cf.N * cf.C + 3;
    std::string kind = cf.kind;
    for (int s = 0; s < cf.S; ++s)
      for (long i = 0; i < cf.N; ++i) {
        float* row = host.data() + s * stride_s + i * cf.C;
        if (kind == "equal") std::fill(row, row + cf.C, check::stored(1.5f, cf.storage));
        if (kind == "dust-mass") {  // the same with each e = exp(l - max) below half an ulp of the
          // softmax denominator's running sum: a float32 denominator drops ~1e-6 of its mass
          std::fill(row, row + cf.C, -16.5f);
          row[0] = row[1] = 0.f;
        }
        if (kind == "dust") {  // two classes share p ~ 1/2; every other -p log p is below half an
          // ulp of that running sum, so a float32 class sum drops them all (a double one keeps them)
          std::fill(row, row + cf.C, -19.8f);
          row[0] = row[1] = 0.f;
        }
        if (kind == "masked") {  // -inf in a varying subset of classes, one class always kept,
          // so items with 0 .. C-1 masked classes; each snapshot masks differently
          const long keep = (i + s) % cf.C;
          for (long c = 0; c < cf.C; ++c)
            if (c != keep && ((c * 7 + i * 3 + s) % 4 == 0 || i % 9 == 5)) row[c] = -INFINITY;
        }
        if (kind == "peaked") {  // one class far ahead: p = one-hot up to exp(-60)
          std::fill(row, row + cf.C, 0.f);
          row[(i * 7 + s) % cf.C] = 60.f;
        }
      }
    if (kind == "nonfinite") {  // items 1, 4, 6 (mod 8) get NaN, +inf, -inf in one snapshot
      // (-inf alone masks a class: those items stay finite), items 3 (mod 8) all -inf in one
      const float bad[3] = {NAN, INFINITY, -INFINITY};
      for (long i = 0; i < cf.N; ++i) {
        const int which = i % 8 == 1 ? 0 : i % 8 == 4 ? 1 : i % 8 == 6 ? 2 : -1;
        if (which >= 0) host[(i % cf.S) * stride_s + i * cf.C + (i * 5) % cf.C] = bad[which];
        float* row = host.data() + (i % cf.S) * stride_s + i * cf.C;
        if (i % 8 == 3) std::fill(row, row + cf.C, -INFINITY);
      }
    }
  }

  void compare(const char* path, const Config& cf, const check::Buffer<float>& buf,
               const std::vector<double>& ref, const std::vector<float>& cpu, bool more_guards = true) {
    const std::vector<float> got = buf.download();
    const Tolerance tol = tolerance_for(cf.C);
    size_t at = 0;
    const double vs_ref = check::worst_ratio(got, ref, tol.atol, tol.rtol, &at);
    size_t at_cpu = 0;
    double vs_cpu = 0;
    if (std::string(cf.kind) == "nonfinite") {
      // The CPU kernel leaves margin and least_confidence finite where the mean is (the binding
      // rejects the item either way); the CUDA kernel makes all five NaN. Same items flagged?
      for (long i = 0; i < cf.N; ++i) {
        bool g_any = false, c_any = false;
        for (int f = 0; f < kScores; ++f) {
          g_any |= std::isnan(got[f * cf.N + i]);
          c_any |= std::isnan(cpu[f * cf.N + i]);
        }
        if (g_any != c_any) vs_cpu = 1e9, at_cpu = i;
      }
    } else {
      vs_cpu = check::worst_ratio(got, cpu, 2 * tol.atol, 2 * tol.rtol, &at_cpu);
    }
    bool ok = vs_ref <= 1.0 && vs_cpu <= 1.0 && buf.guards_intact() && more_guards;
    // Class sums: for many classes, and for classes whose terms are each below half an ulp of
    // the running sum, the CUDA entropy and BALD must be as accurate as the CPU kernel's (which
    // sums classes in double): no worse than 2x its error plus 1e-7 and one float32 ulp.
    std::string detail;
    if ((cf.C >= 100 && std::string(cf.kind) == "random") || std::string(cf.kind).rfind("dust", 0) == 0) {
      const std::vector<double> eg = field_errors(got, ref, cf.N), ec = field_errors(cpu, ref, cf.N);
      for (int f : {int(mpts::kEntropy), int(mpts::kBald)}) {
        double scale = 0;
        for (long i = 0; i < cf.N; ++i) scale = std::max(scale, std::fabs(ref[mpts::kEntropy * cf.N + i]));
        // one float32 ulp of each quantity the score comes from (bald: two entropies), as in
        // tests/test_snapshot_uncertainty.py's flash rule
        const double ulps = std::ldexp(f == mpts::kBald ? 2 * scale : scale, -23);
        const double bound = 2.0 * ec[f] + 1e-7 + ulps;
        if (std::getenv("CUDA_EMU_VERBOSE"))
          std::printf("  %s C=%ld %s: CUDA error %.3g, CPU error %.3g, bound %.3g\n", path, cf.C, kField[f], eg[f], ec[f], bound);
        if (eg[f] > bound) {
          ok = false;
          char b[160];
          std::snprintf(b, sizeof b, " %s error %.3g > 2 x CPU error %.3g + ulp", kField[f], eg[f], ec[f]);
          detail += b;
        }
      }
    }
    suite_.expect(ok, "%s %s S=%d N=%ld C=%ld %s scale=%g: %.3g x tol vs float64 (%s item %ld: %.9g vs %.9g), %.3g x 2tol vs CPU%s%s",
                  path, check::name(cf.storage), cf.S, cf.N, cf.C, cf.kind, cf.scale, vs_ref,
                  kField[at / cf.N], long(at % cf.N), double(got[at]), ref[at], vs_cpu,
                  buf.guards_intact() && more_guards ? "" : ", guard zone overwritten", detail.c_str());
  }

  check::Suite& suite_;
};

}  // namespace

int main() {
  check::Suite suite("snapshot");
  SnapshotCheck chk(suite);
  // Team configurations switch at C = 16, 32, 64, 128, 256 (1024 the largest); items per block
  // are 256 / team lanes (256, 64, 32, 16, 8), items per warp 32 / team lanes.
  const long Cs[] = {1, 2, 16, 17, 32, 33, 64, 65, 128, 129, 256, 257, 1000, 1024};
  const long Ns[] = {1, 9, 33, 257, 520};
  for (long C : Cs)
    for (long N : Ns)
      for (int S : {1, 3}) {
        if (N * C * S > 400000) continue;
        chk.run({Storage::kFloat32, S, N, C, 2.f, "random"});
      }
  // the class-sum regression: many classes, several snapshots, several blocks
  for (long C : {100L, 1000L, 1024L}) chk.run({Storage::kFloat32, 3, 200, C, 2.f, "random"});
  for (long C : {32L, 100L, 1024L}) {
    chk.run({Storage::kFloat32, 1, 40, C, 1.f, "dust"});
    chk.run({Storage::kFloat32, 1, 40, C, 1.f, "dust-mass"});
  }
  // half and bfloat16 storage through each team configuration
  for (Storage st : {Storage::kFloat16, Storage::kBFloat16})
    for (long C : {10L, 33L, 65L, 129L, 257L})
      for (long N : {9L, 257L}) chk.run({st, 2, N, C, 3.f, "random"});
  // hostile logits
  for (long C : {1L, 2L, 17L, 100L, 1024L}) {
    chk.run({Storage::kFloat32, 3, 65, C, 1.f, "equal"});
    chk.run({Storage::kFloat32, 3, 65, C, 1.f, "peaked"});
    chk.run({Storage::kFloat32, 1, 33, C, 40.f, "random"});  // large spread: exp underflows
    chk.run({Storage::kFloat32, 3, 40, C, 2.f, "nonfinite"});
    chk.run({Storage::kFloat32, 3, 65, C, 2.f, "masked"});  // -inf logits: masked classes
  }
  for (Storage st : {Storage::kFloat16, Storage::kBFloat16}) chk.run({st, 2, 40, 65, 2.f, "masked"});
  for (long C : {33L, 129L, 257L}) chk.run({Storage::kFloat32, 2, 257, C, 2.f, "masked"});
  chk.run({Storage::kFloat16, 2, 40, 65, 2.f, "nonfinite"});
  chk.run({Storage::kBFloat16, 2, 40, 65, 2.f, "nonfinite"});
  return suite.finish();
}
