// Run-time choice of the instruction set: the kernels are compiled three times (elman_<isa>.cpp)
// and the best one this CPU supports is used.
#include <cstdlib>
#include <cstring>
#include <initializer_list>

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

static bool cpu_supports(Isa isa) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::Avx512: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    case Isa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::Portable: return true;
  }
  return false;
#else
  return isa == Isa::Portable;
#endif
}

static Isa detect() {
  // RNNLAB_ISA=avx2|portable forces a lower ISA (tests use it to check every compiled variant);
  // asking for one the CPU lacks falls back to detection rather than crashing.
  if (const char* want = std::getenv("RNNLAB_ISA")) {
    for (Isa isa : {Isa::Avx512, Isa::Avx2, Isa::Portable})
      if (std::strcmp(want, isa_name(isa)) == 0 && cpu_supports(isa)) return isa;
  }
  for (Isa isa : {Isa::Avx512, Isa::Avx2})
    if (cpu_supports(isa)) return isa;
  return Isa::Portable;
}

Isa selected_isa() {
  static const Isa isa = detect();
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    case Isa::Portable: return "portable";
  }
  return "unknown";
}

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
