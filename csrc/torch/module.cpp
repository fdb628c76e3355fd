// The Python module rnnlab._C. Ops register themselves with TORCH_LIBRARY_FRAGMENT in their own
// files; this module only reports how the build was configured.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <mutex>
#include <set>

#include "kernels/common.h"
#include "kernels/cpu/isa.h"

namespace {

// How many distinct threads at::parallel_for actually used on a job with many chunks. Without
// OpenMP compiled in, it silently runs on one thread (DESIGN §7); tests check this is > 1.
int64_t parallel_threads_used() {
  std::set<int> seen;
  std::mutex lock;
  at::parallel_for(0, 1024, 1, [&](int64_t begin, int64_t end) {
    volatile double sink = 0;
    for (int64_t i = begin; i < end; ++i)
      for (int j = 0; j < 20000; ++j) sink = sink + j;
    std::lock_guard<std::mutex> g(lock);
    seen.insert(at::get_thread_num());
  });
  return static_cast<int64_t>(seen.size());
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.def("cpu_isa", [] { return std::string(rnnlab::cpu::isa_name(rnnlab::cpu::selected_isa())); },
        "Instruction set of the CPU kernels chosen at run time (avx512, avx2 or portable).");
  m.def("parallel_threads_used", &parallel_threads_used, "Distinct threads used by one at::parallel_for job.");
  m.attr("omega_bound") = rnnlab::kOmegaBound;  // reference.OMEGA_BOUND: one constant, defined in kernels/common.h
#ifdef RNNLAB_WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
}
