// The op schemas and the pybind11 module mpts_fast._C (importing it registers the ops).
#include <torch/extension.h>
#include <torch/library.h>

#ifdef _OPENMP
#include <omp.h>
#endif

TORCH_LIBRARY(mpts_fast, m) {
  // value and d value / d [x; y] as one (n + m, d) tensor (empty unless with_grad).
  m.def("rbf_mmd2(Tensor x, Tensor y, float[] scales, bool unbiased, bool with_grad)"
        " -> (Tensor, Tensor)");
  // (S, N, C) logits -> (5, N) scores: entropy, bald, variance, margin, least_confidence.
  m.def("snapshot_scores(Tensor logits) -> Tensor");
  m.def("snapshot_accumulate(Tensor(a!) mean, Tensor(b!) m2, Tensor(c!) ent_sum, Tensor logits,"
        " int count) -> ()");
  m.def("snapshot_finalize(Tensor mean, Tensor m2, Tensor ent_sum, int count) -> Tensor");
  // norm: 1 = l1, 2 = l2, 0 = inf.
  m.def("sensitivity(Tensor x, Tensor V, Tensor b_v, Tensor W, Tensor b_w, int norm,"
        " bool sigmoid_output) -> Tensor");
  // Selection loops (csrc/kernels/select.h): mind (N) is the running squared distance to the
  // nearest centre, < 0 for rows never to pick; it is updated in place. first = -1: pick 0
  // comes from mind. Each returns the (k) int64 picks in order.
  m.def("select_kcenter(Tensor x, Tensor(a!) mind, int first, int k) -> Tensor");
  m.def("select_kmeanspp(Tensor x, Tensor(a!) mind, int first, int k, Tensor u) -> Tensor");
  // mind = min(mind, squared distance to the nearest of the rows `centres`), rows < 0 kept.
  m.def("select_lower_mind(Tensor x, Tensor centres, Tensor(a!) mind) -> ()");
  // k-center's first pick without labeled rows: the row farthest from the mean (0-dim int64).
  m.def("select_farthest_from_mean(Tensor x) -> Tensor");
  m.def("select_badge_sqnorms(Tensor q, Tensor h) -> Tensor");
  m.def("select_badge_kmeanspp(Tensor q, Tensor h, Tensor a, Tensor(a!) mind, int first, int k,"
        " Tensor u) -> Tensor");
}

namespace {
int openmp_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 0;
#endif
}
bool cuda_compiled() {
#ifdef MPTS_FAST_WITH_CUDA
  return true;
#else
  return false;
#endif
}
}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "mpts-fast native kernels; the ops live in torch.ops.mpts_fast";
  m.def("openmp_threads", &openmp_threads, "OpenMP threads the CPU kernels use (0: no OpenMP)");
  m.def("cuda_compiled", &cuda_compiled, "Whether the CUDA kernels were compiled in");
}
