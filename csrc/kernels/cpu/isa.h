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
