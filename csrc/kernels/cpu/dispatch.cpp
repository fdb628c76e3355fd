// The kernel table of each cell for an ISA: the kernels are compiled three times (elman_<isa>.cpp,
// ...) and the one selected_isa() (isa.h) names is used.
#include "kernels/cpu/diag.h"
#include "kernels/cpu/elman.h"
#include "kernels/cpu/gru.h"
#include "kernels/cpu/lstm.h"

namespace rnnlab::cpu {

#if defined(__x86_64__)
template <typename T> const ElmanKernels<T>& elman_kernels_avx512();
template <typename T> const ElmanKernels<T>& elman_kernels_avx2();
#endif
template <typename T> const ElmanKernels<T>& elman_kernels_portable();

#if defined(__x86_64__)
template <typename T> const LstmKernels<T>& lstm_kernels_avx512();
template <typename T> const LstmKernels<T>& lstm_kernels_avx2();
#endif
template <typename T> const LstmKernels<T>& lstm_kernels_portable();

#if defined(__x86_64__)
template <typename T> const GruKernels<T>& gru_kernels_avx512();
template <typename T> const GruKernels<T>& gru_kernels_avx2();
#endif
template <typename T> const GruKernels<T>& gru_kernels_portable();

#if defined(__x86_64__)
template <typename T> const DiagKernels<T>& diag_kernels_avx512();
template <typename T> const DiagKernels<T>& diag_kernels_avx2();
#endif
template <typename T> const DiagKernels<T>& diag_kernels_portable();

template <typename T>
const ElmanKernels<T>& elman_kernels(Isa isa) {
  switch (isa) {
#if defined(__x86_64__)
    case Isa::Avx512: return elman_kernels_avx512<T>();
    case Isa::Avx2: return elman_kernels_avx2<T>();
#endif
    default: return elman_kernels_portable<T>();
  }
}

template const ElmanKernels<float>& elman_kernels<float>(Isa);
template const ElmanKernels<double>& elman_kernels<double>(Isa);

template <typename T>
const LstmKernels<T>& lstm_kernels(Isa isa) {
  switch (isa) {
#if defined(__x86_64__)
    case Isa::Avx512: return lstm_kernels_avx512<T>();
    case Isa::Avx2: return lstm_kernels_avx2<T>();
#endif
    default: return lstm_kernels_portable<T>();
  }
}

template const LstmKernels<float>& lstm_kernels<float>(Isa);
template const LstmKernels<double>& lstm_kernels<double>(Isa);

template <typename T>
const GruKernels<T>& gru_kernels(Isa isa) {
  switch (isa) {
#if defined(__x86_64__)
    case Isa::Avx512: return gru_kernels_avx512<T>();
    case Isa::Avx2: return gru_kernels_avx2<T>();
#endif
    default: return gru_kernels_portable<T>();
  }
}

template const GruKernels<float>& gru_kernels<float>(Isa);
template const GruKernels<double>& gru_kernels<double>(Isa);

template <typename T>
const DiagKernels<T>& diag_kernels(Isa isa) {
  switch (isa) {
#if defined(__x86_64__)
    case Isa::Avx512: return diag_kernels_avx512<T>();
    case Isa::Avx2: return diag_kernels_avx2<T>();
#endif
    default: return diag_kernels_portable<T>();
  }
}

template const DiagKernels<float>& diag_kernels<float>(Isa);
template const DiagKernels<double>& diag_kernels<double>(Isa);

}  // namespace rnnlab::cpu
