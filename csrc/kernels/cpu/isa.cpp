// Definitions of isa.h: which compiled variant of the kernels this CPU runs.
#include "kernels/cpu/isa.h"

#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace rnnlab::cpu {

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

}  // namespace rnnlab::cpu
