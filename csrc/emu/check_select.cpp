// select_cuda.cu under emulation: greedy k-center, k-means++ and BADGE k-means++ picks, and the
// BADGE norms, against the CPU kernels and float64 loops written out here.
//
// Exact inputs (small integers; dyadic BADGE factors) make every distance and every weight sum
// exact in float32 and double whatever the summation order, so there the CUDA picks must equal
// the float64 loop's and the CPU kernel's one for one, ties included. Gaussian inputs have
// near-ties that float32 rounding may decide either way (CPU and CUDA sum in different orders):
// there each CUDA pick is checked against the float64 state of its own sequence, within a
// rounding tolerance, and disagreements with the CPU are only counted.
//
// Row counts run around the grid's 64-row minimum per block, past 32 blocks (the final
// combination's lane stride) and past 65,536 rows (65-row blocks); each loop runs twice on one workspace (the last block must reset
// the ticket counter for the next launch).
#include "check_common.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "select.h"
#include "select_cuda.h"

namespace {

using check::Storage;
using mpts::cuda::RowType;

constexpr double kInf = std::numeric_limits<double>::infinity();

// ------------------------------------------------------------------------- float64 loops
using DistFn = std::function<double(long, long)>;

// The contract of select.h in double: mind < 0 never picked, lowest index wins ties, a draw is
// the first eligible row whose running weight exceeds u * total (uniform when all weights are 0).
std::vector<int64_t> loop64(const DistFn& dist, std::vector<double> mind, long first, long k,
                            const std::vector<double>* u) {
  const long N = long(mind.size());
  std::vector<int64_t> picks;
  for (long t = 0; t < k; ++t) {
    long w = -1;
    if (t == 0 && first >= 0) {
      w = first;
    } else {
      if (t > 0)
        for (long i = 0; i < N; ++i)
          if (mind[i] >= 0) mind[i] = std::min(mind[i], dist(i, picks.back()));
      if (!u) {
        double best = -1;
        for (long i = 0; i < N; ++i)
          if (mind[i] >= 0 && mind[i] > best) best = mind[i], w = i;
      } else {
        double total = 0;
        long count = 0;
        for (long i = 0; i < N; ++i)
          if (mind[i] >= 0) total += mind[i], ++count;
        if (count == 0) break;
        if (total > 0) {
          const double target = (*u)[t] * total;
          double run = 0;
          for (long i = 0; i < N && w < 0; ++i)
            if (mind[i] >= 0 && (run += mind[i]) > target) w = i;
        } else {
          long target = std::min(long((*u)[t] * double(count)), count - 1);
          for (long i = 0; i < N && w < 0; ++i)
            if (mind[i] >= 0 && target-- == 0) w = i;
        }
      }
    }
    if (w < 0) break;
    picks.push_back(w);
    mind[w] = -1;
  }
  return picks;
}

// Is `picks` (from a float32 kernel) a valid run of the loop up to rounding? Each pick is
// checked against the float64 state of the sequence so far: k-center's pick within a relative
// 1e-5 of the largest distance, a draw's pick within 1e-5 of the total from the u * total point.
bool plausible(const DistFn& dist, std::vector<double> mind, long first, const std::vector<int64_t>& picks,
               const std::vector<double>* u, std::string* why) {
  const long N = long(mind.size());
  constexpr double kRel = 1e-5;
  for (size_t t = 0; t < picks.size(); ++t) {
    const long w = long(picks[t]);
    if (t > 0)
      for (long i = 0; i < N; ++i)
        if (mind[i] >= 0) mind[i] = std::min(mind[i], dist(i, long(picks[t - 1])));
    if (w < 0 || w >= N || mind[w] < 0) {
      *why = "pick " + std::to_string(t) + " = " + std::to_string(w) + " is not an eligible row";
      return false;
    }
    if (!(t == 0 && first >= 0)) {
      double best = 0, total = 0, before = 0;
      for (long i = 0; i < N; ++i)
        if (mind[i] >= 0) {
          best = std::max(best, mind[i]);
          total += mind[i];
          if (i < w) before += mind[i];
        }
      bool ok;
      if (!u) {
        ok = mind[w] >= best * (1 - kRel);
      } else if (total > 0) {
        const double target = (*u)[t] * total, slack = kRel * total;
        ok = mind[w] > 0 && before <= target + slack && before + mind[w] >= target - slack;
      } else {
        ok = true;  // uniform draw: any eligible row is a possible rounding of the target
      }
      if (!ok) {
        *why = "pick " + std::to_string(t) + " = " + std::to_string(w) + " (weight " + std::to_string(mind[w]) +
               ", largest " + std::to_string(best) + ") is not within rounding of the loop's choice";
        return false;
      }
    }
    mind[w] = -1;
  }
  return true;
}

// ------------------------------------------------------------------------- one configuration
struct Setup {
  Storage storage;
  long N, d, k;
  bool exact;
  bool labeled;  // every 10th row labeled (mind = its squared distance otherwise), else mind = inf
  bool only_kmeanspp = false;  // one k-means++ run, no k-center or BADGE (for the largest N)
};

class SelectCheck {
 public:
  explicit SelectCheck(check::Suite& suite) : suite_(suite) {}
  long float_disagreements = 0, float_runs = 0;

  void run(const Setup& s) {
    std::uniform_int_distribution<int> small(-8, 8);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::uniform_real_distribution<double> uni(0.0, 1.0);
    std::vector<float> x(s.N * s.d);
    for (auto& v : x) v = s.exact ? float(small(suite_.rng)) : check::stored(nd(suite_.rng), s.storage);
    std::vector<double> u(std::max<long>(s.k, 1));
    for (auto& v : u) v = uni(suite_.rng);
    const DistFn dist = [&](long i, long c) {
      double acc = 0;
      for (long j = 0; j < s.d; ++j) {
        const double t = double(x[i * s.d + j]) - double(x[c * s.d + j]);
        acc += t * t;
      }
      return acc;
    };

    // initial state: nearest labeled row (labeled rows -1), or +inf with a given first pick
    std::vector<double> mind64(s.N, kInf);
    long first = long(suite_.rng() % s.N);
    long eligible = s.N;
    if (s.labeled && s.N >= 10) {
      first = -1;
      for (long i = 0; i < s.N; ++i) {
        double best = kInf;
        for (long l = 0; l < s.N; l += 10) best = std::min(best, dist(i, l));
        mind64[i] = i % 10 == 0 ? -1.0 : double(float(best));
      }
      eligible = s.N - (s.N + 9) / 10;
    }
    const long k = std::min(s.k, eligible);
    std::vector<float> mind32(mind64.begin(), mind64.end());

    const check::StoredRows rows(x, s.storage);
    const check::Buffer<double> du(u);
    const auto type = static_cast<RowType>(s.storage);
    const char* what[2] = {"kcenter", "kmeanspp"};
    for (int sample = s.only_kmeanspp ? 1 : 0; sample <= 1; ++sample) {
      const std::vector<double>* uu = sample ? &u : nullptr;
      std::vector<float> mc = mind32;
      std::vector<int64_t> cpu(k);
      if (sample)
        mpts::kmeanspp_cpu<float>(x.data(), s.N, s.d, mc.data(), first, k, u.data(), cpu.data());
      else
        mpts::kcenter_greedy_cpu<float>(x.data(), s.N, s.d, mc.data(), first, k, cpu.data());
      check::Buffer<unsigned char> ws(mpts::cuda::select_workspace_bytes(s.N));
      ws.zero();
      for (int again = 0; again < (s.only_kmeanspp ? 1 : 2); ++again) {  // the same workspace twice
        check::Buffer<float> dm(mind32);
        check::Buffer<int64_t> picks(k);
        if (sample)
          mpts::cuda::kmeanspp(rows.get(), type, s.N, s.d, dm.get(), first, k, du.get(), picks.get(), ws.get(),
                               cuda_emu::stream());
        else
          mpts::cuda::kcenter_greedy(rows.get(), type, s.N, s.d, dm.get(), first, k, picks.get(), ws.get(),
                                     cuda_emu::stream());
        judge(s, what[sample], again, picks.download(), cpu, dist, mind64, first, k, uu,
              picks.guards_intact() && dm.guards_intact() && ws.guards_intact());
      }
    }
    if (!s.only_kmeanspp) badge(s, x, u, rows);
  }

 private:
  void judge(const Setup& s, const char* what, int again, const std::vector<int64_t>& gpu,
             const std::vector<int64_t>& cpu, const DistFn& dist, const std::vector<double>& mind64, long first,
             long k, const std::vector<double>* u, bool guards) {
    std::string why;
    bool ok = guards;
    if (s.exact) {
      const std::vector<int64_t> ref = loop64(dist, mind64, first, k, u);
      ok = ok && gpu == ref && cpu == ref;
      if (gpu != ref) why = "CUDA picks differ from the float64 loop at pick " + first_difference(gpu, ref);
      if (cpu != ref) why += " (CPU kernel differs from the float64 loop at " + first_difference(cpu, ref) + ")";
    } else {
      ok = ok && plausible(dist, mind64, first, gpu, u, &why);
      ++float_runs;
      float_disagreements += gpu != cpu;
    }
    suite_.expect(ok, "%s %s N=%ld d=%ld k=%ld first=%ld %s %s%s: %s%s", what, check::name(s.storage), s.N, s.d, k,
                  first, s.exact ? "exact" : "gaussian", s.labeled ? "labeled" : "unlabeled",
                  again ? " (workspace reused)" : "", why.c_str(), guards ? "" : " guard zone overwritten");
  }

  static std::string first_difference(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
    size_t i = 0;
    while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
    auto at = [](const std::vector<int64_t>& v, size_t j) { return j < v.size() ? std::to_string(v[j]) : "-"; };
    return std::to_string(i) + " (" + at(a, i) + " vs " + at(b, i) + ")";
  }

  // BADGE: q (N, C) float32 (dyadic in exact mode), h = the rows in their storage type.
  void badge(const Setup& s, const std::vector<float>& h, const std::vector<double>& u, const check::StoredRows& rows) {
    const long C = 5, N = s.N, D = s.d;
    std::uniform_int_distribution<int> small(-8, 8);
    std::normal_distribution<float> nd(0.f, 0.3f);
    std::vector<float> q(N * C);
    for (auto& v : q) v = s.exact ? float(small(suite_.rng)) / 8.f : nd(suite_.rng);
    std::vector<float> a_cpu(N);
    mpts::badge_sqnorms_cpu<float>(q.data(), C, h.data(), D, N, a_cpu.data());
    const check::Buffer<float> dq(q);
    check::Buffer<float> da(N);
    mpts::cuda::badge_sqnorms(dq.get(), C, rows.get(), static_cast<RowType>(s.storage), D, N, da.get(),
                              cuda_emu::stream());
    const std::vector<float> a_gpu = da.download();
    std::vector<double> a64(N);
    auto dot = [](const float* p, const float* r, long n) {
      double acc = 0;
      for (long j = 0; j < n; ++j) acc += double(p[j]) * r[j];
      return acc;
    };
    for (long i = 0; i < N; ++i) a64[i] = dot(&q[i * C], &q[i * C], C) * dot(&h[i * D], &h[i * D], D);
    const double a_ratio = check::worst_ratio(a_gpu, a64, 1e-30, s.exact ? 0.0 : 1e-5);
    suite_.expect(a_ratio <= 1.0 && check::worst_ratio(a_gpu, a_cpu, 1e-30, s.exact ? 0.0 : 2e-5) <= 1.0 &&
                      da.guards_intact(),
                  "badge_sqnorms %s N=%ld D=%ld %s: %.3g x tol vs float64", check::name(s.storage), N, D,
                  s.exact ? "exact" : "gaussian", a_ratio);

    const long k = std::min(s.k, N);
    const long first = long(suite_.rng() % N);
    const DistFn dist = [&](long i, long c) {
      const double v = a64[i] + a64[c] - 2 * dot(&q[i * C], &q[c * C], C) * dot(&h[i * D], &h[c * D], D);
      return v > 0 ? v : 0.0;
    };
    const std::vector<double> mind64(N, kInf);
    std::vector<float> mc(N, std::numeric_limits<float>::infinity());
    std::vector<int64_t> cpu(k);
    mpts::badge_kmeanspp_cpu<float>(q.data(), C, h.data(), D, a_cpu.data(), N, mc.data(), first, k, u.data(),
                                    cpu.data());
    check::Buffer<float> dm(std::vector<float>(N, std::numeric_limits<float>::infinity()));
    check::Buffer<int64_t> picks(k);
    check::Buffer<unsigned char> ws(mpts::cuda::select_workspace_bytes(N));
    ws.zero();
    const check::Buffer<double> du(u);
    mpts::cuda::badge_kmeanspp(dq.get(), C, rows.get(), static_cast<RowType>(s.storage), D, da.get(), N, dm.get(),
                               first, k, du.get(), picks.get(), ws.get(), cuda_emu::stream());
    judge(s, "badge", 0, picks.download(), cpu, dist, mind64, first, k, &u, picks.guards_intact() && dm.guards_intact());
  }

  check::Suite& suite_;
};

}  // namespace

int main() {
  check::Suite suite("select");
  SelectCheck chk(suite);
  // Blocks hold max(64, ceil(N / 1024)) rows: N = 63, 64, 65 around one block, 2049 = 33 blocks.
  const long Ns[] = {1, 2, 63, 65, 700, 2049};
  for (Storage st : {Storage::kFloat32, Storage::kFloat16, Storage::kBFloat16})
    for (long N : Ns)
      for (long d : {1L, 33L}) {
        if (st != Storage::kFloat32 && (N < 63 || d == 1)) continue;
        const long k = N > 1000 ? 12 : 20;
        chk.run({st, N, d, k, true, false});
        chk.run({st, N, d, k, true, true});
      }
  chk.run({Storage::kFloat32, 64, 64, 30, true, true});  // every row of a block picked or labeled
  // past 65,536 rows blocks hold 65 rows (a draw's in-block scan ends on a partial 32-row step)
  chk.run({Storage::kFloat32, 65600, 1, 3, true, false, true});
  for (long N : {65L, 700L})
    for (bool labeled : {false, true}) chk.run({Storage::kFloat32, N, 16, 20, false, labeled});
  std::printf("cuda-emu select: Gaussian inputs: %ld of %ld CUDA pick sequences differ from the CPU's "
              "(near-ties; each CUDA pick was checked within rounding)\n",
              chk.float_disagreements, chk.float_runs);
  return suite.finish();
}
