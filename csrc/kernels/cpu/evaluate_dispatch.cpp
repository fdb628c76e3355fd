// The validation forward of the ISA selected_isa() names (compiled three times, in
// evaluate_<isa>.cpp).
#include "kernels/cpu/evaluate.h"

namespace rnnlab::cpu {

#if defined(__x86_64__)
template <typename T> EvaluateKernel<T> evaluate_avx512();
template <typename T> EvaluateKernel<T> evaluate_avx2();
#endif
template <typename T> EvaluateKernel<T> evaluate_portable();

template <typename T>
EvaluateKernel<T> evaluate_kernel(Isa isa) {
  switch (isa) {
#if defined(__x86_64__)
    case Isa::Avx512: return evaluate_avx512<T>();
    case Isa::Avx2: return evaluate_avx2<T>();
#endif
    default: return evaluate_portable<T>();
  }
}

template EvaluateKernel<float> evaluate_kernel<float>(Isa);
template EvaluateKernel<double> evaluate_kernel<double>(Isa);

}  // namespace rnnlab::cpu
