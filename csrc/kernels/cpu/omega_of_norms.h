// Pascanu's Ω of one model from its per-step squared norms (SPEC §2.5), shared by the
// omega_from_norms op (the autograd path's sinks) and the fused training steps, which report it.
#pragma once

#include <cstdint>

#include "kernels/common.h"

namespace rnnlab::cpu {

// c [n] = ‖δ_t‖², a [n] = ‖v_t‖² of one model's n = T·B rows, B rows per step. With
// m = [c ≥ kOmegaBound]: Ω = Σ m (a/c − 1)² / Σ m (0 where no row counts) and N = Σ m / B.
// Summed in double in row order, so every caller gets the same bits. n_valid may be null.
template <typename T>
inline void omega_of_norms(const T* c, const T* a, int64_t n, int64_t B, T* omega, T* n_valid) {
  double total = 0, valid = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!(c[i] >= T(kOmegaBound))) continue;  // m = 0: the ratio is 1 and adds nothing
    const double r = double(a[i]) / double(c[i]) - 1.0;
    total += r * r;
    valid += 1;
  }
  if (n_valid) *n_valid = static_cast<T>(valid / B);
  *omega = valid > 0 ? static_cast<T>(total / valid) : T(0);
}

}  // namespace rnnlab::cpu
