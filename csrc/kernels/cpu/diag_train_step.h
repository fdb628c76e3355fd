// One whole training update of one diagonal (LRU) model on the CPU: the torch-free kernel API.
// What every cell's fused step shares (loss, clipping, optimizer, shapes of x, targets, slots and
// outputs) is documented in train_step.h; the diagonal cell's part (rnnlab.nn.lru, N = H channels):
//
//   u_t = γ ⊙ (B x_t)                                  (inside the recurrence; never stored)
//   h_t = λ ⊙ h_{t−1} + u_t                            (complex, or real for "real")
//   ŷ_t = Re(C h_t) + D x_t = C_re h_re − C_im h_im + D x_t    (read-out steps only)
//
// with λ from its stored parameters and γ (per channel) by the options:
//   parametrization  "exp":   λ = exp(−exp(nu_log) + i·exp(theta_log))
//                    "polar": λ = nu·e^{i·theta}
//                    "plain": λ = lam_re + i·lam_im
//                    "real":  λ = exp(−exp(nu_log)) real; B, C real (no B_im, C_im)
//   gamma            "learned": γ = exp(gamma_log);  "none": γ = 1;
//                    "fixed": γ = sqrt(1 − |λ|² + 1e-6), a function of λ (its gradient reaches λ)
//
// Backward (v_T = 0, h_0 = 0; complex values as real (re, im) pairs, as diag.h):
//
//   δ_t = ∂⁺L/∂h_t + v_{t+1},  ∂⁺L/∂h_t = (C_reᵀ, −C_imᵀ) ∂L/∂ŷ_t,  v_t = conj(λ) ⊙ δ_t
//   ∂L/∂λ = Σ_{t,b} conj(h_{t−1}) ⊙ δ_t (PyTorch's convention), then the chain to the stored λ
//   P = Σ_{t,b} δ_t x_tᵀ:  ∂B_re = γ ⊙ Re P, ∂B_im = γ ⊙ Im P, ∂γ = Σ_i (B_re Re P + B_im Im P)
//   ∂C_re = Σ_k ∂L/∂ŷ_kᵀ Re h_k,  ∂C_im = −Σ_k ∂L/∂ŷ_kᵀ Im h_k,  ∂D = Σ_k ∂L/∂ŷ_kᵀ x_k
//
// ‖δ_t‖² and ‖v_t‖² (delta_sq, v_sq) are those the gradient sink of rnnlab.diag_recurrence
// receives on the autograd path (diag.h): squared norms over the N complex channels. The cell has
// no W_hh, so the clipping safeguard zeroes the whole gradient instead of decaying W_hh
// (rnnlab.train.clipping with weight_hh=None; the optimizer step still runs on that zero
// gradient, as on the autograd path).
//
//   params  the cell's parameters in the order of rnnlab.nn.lru.lru_param_shapes: λ's (two [M, N],
//           or nu_log [M, N] for "real"), gamma_log [M, N] ("learned" only), B_re [M, N, I],
//           B_im [M, N, I] (complex only), C_re [M, O, N], C_im [M, O, N] (complex only),
//           D [M, O, I]: the read-out is C (and D), not train_step.h's W_out, b_out
#pragma once

#include <cstdint>

#include "kernels/cpu/train_step.h"

namespace rnnlab::cpu {

enum class DiagLambda : int { Exp = 0, Polar = 1, Plain = 2, Real = 3 };
enum class DiagGamma : int { Learned = 0, None = 1, Fixed = 2 };

// The options of one diagonal cell and where its parameters sit in TrainStep::params.
struct DiagVariant {
  DiagLambda lambda;
  DiagGamma gamma;

  bool complex() const { return lambda != DiagLambda::Real; }
  int lambda_params() const { return complex() ? 2 : 1; }
  int gamma_param() const { return gamma == DiagGamma::Learned ? lambda_params() : -1; }  // -1: none
  int b_param() const { return lambda_params() + (gamma == DiagGamma::Learned ? 1 : 0); }  // B_re (B_im next)
  int c_param() const { return b_param() + (complex() ? 2 : 1); }                          // C_re (C_im next)
  int d_param() const { return c_param() + (complex() ? 2 : 1); }
  int n_params() const { return d_param() + 1; }
};

// Runs the update of model m. Throws std::invalid_argument on a class target outside [0, O).
template <typename T>
using DiagTrainStepFn = void (*)(const TrainStep<T>&, const DiagVariant&, int64_t m);

// The kernel of each ISA (diag_train_step_<isa>.cpp), and diag_train_step_kernel<T>(isa), the one in use.
RNNLAB_KERNEL_PER_ISA(DiagTrainStepFn<T>, diag_train_step_kernel)

}  // namespace rnnlab::cpu
