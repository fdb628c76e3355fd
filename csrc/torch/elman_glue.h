// Device-independent pieces of the Elman op glue, shared by the CPU impl (elman_ops.cpp, which
// defines them) and the CUDA impl (cuda/elman_cuda.cpp).
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <tuple>

#include "kernels/common.h"

namespace rnnlab {

Activation parse_activation(c10::string_view name);

// (Ω [M], N [M]) of SPEC §2.5 from the per-step squared norms delta_sq, v_sq [M, T, B].
std::tuple<at::Tensor, at::Tensor> omega_from_norms(const at::Tensor& delta_sq, const at::Tensor& v_sq);

// dW_hh [M, H, H] = Σ_t u_tᵀ h_{t-1}, plus α·4/(B·N)·Σ_t u_tᵀ (κ_t v_t) when reg_v is defined
// (SPEC §2.5): batched GEMMs over all steps after the backward kernel. grad_xp (= u), hs, reg_v:
// [M, T, B, H]; h0: [M, B, H]; reg_weight (α), n_valid (N): [M].
at::Tensor elman_weight_grad(const RecurrenceShape& s, const at::Tensor& grad_xp, const at::Tensor& hs,
                             const at::Tensor& h0, const at::Tensor& reg_v, const std::optional<at::Tensor>& reg_weight,
                             const at::Tensor& n_valid);

}  // namespace rnnlab
