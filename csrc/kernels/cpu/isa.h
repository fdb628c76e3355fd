// Run-time choice of the instruction set of the CPU kernels. Every cell's kernels (and the random
// streams' fill loops) are compiled once per ISA and pick their table with selected_isa().
#pragma once

namespace rnnlab::cpu {

// Instruction sets the kernels are compiled for, best first.
enum class Isa : int { Avx512 = 0, Avx2 = 1, Portable = 2 };

// The best ISA this CPU supports (cpuid), unless RNNLAB_ISA=avx512|avx2|portable overrides it.
Isa selected_isa();
const char* isa_name(Isa isa);

}  // namespace rnnlab::cpu

// RNNLAB_ON_X86(code): code on x86-64, where the avx512 and avx2 builds exist; nothing elsewhere.
#if defined(__x86_64__)
#define RNNLAB_ON_X86(...) __VA_ARGS__
#else
#define RNNLAB_ON_X86(...)
#endif

// Inside namespace rnnlab::cpu: declares the per-ISA builds of a kernel getter,
// getter_avx512<T>(), getter_avx2<T>() and getter_portable<T>() (each defined in the
// <kernel>_<isa>.cpp that compiles the kernel for that ISA), and defines getter<T>(Isa), which
// returns the build of the ISA named. Result is the getters' return type, written with T.
#define RNNLAB_KERNEL_PER_ISA(Result, getter)                                                                  \
  RNNLAB_ON_X86(template <typename T> Result getter##_avx512(); template <typename T> Result getter##_avx2();) \
  template <typename T>                                                                                      \
  Result getter##_portable();                                                                                \
  template <typename T>                                                                                      \
  Result getter(Isa isa) {                                                                                   \
    switch (isa) {                                                                                           \
      RNNLAB_ON_X86(case Isa::Avx512: return getter##_avx512<T>(); case Isa::Avx2: return getter##_avx2<T>();) \
      default: return getter##_portable<T>();                                                                \
    }                                                                                                        \
  }
