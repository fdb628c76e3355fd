// The device-independent part of the op glue. The Elman and LSTM ops use all of it, shared by the
// CPU impls (elman_ops.cpp, lstm_ops.cpp) and the CUDA impls (cuda/elman_cuda.cpp,
// cuda/lstm_cuda.cpp): input checks, output allocation, the weight-gradient GEMMs that follow a
// backward kernel, and Ω, N (SPEC §2.5). What differs between devices is only which kernels fill
// the outputs. The GRU's CPU impl (gru_ops.cpp) uses the cell-independent first section.
// Definitions of the non-inline functions are in recurrence_glue.cpp.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <tuple>
#include <vector>

#include "kernels/common.h"
#include "torch/checks.h"
#include "torch/output_allocator.h"

namespace rnnlab {

// How an op checks its first tensor, which every other tensor must then match (check_like):
// dtype and contiguity on the CPU (check_float), and a CUDA device too (cuda_glue::check_float_cuda).
using FirstTensorCheck = void (*)(const char* name, const at::Tensor& t);

// t [M, T, B, n·H] (checked by check_first), n gates stacked along the last axis: the shape with
// s.H = H, or a clear error naming the tensor, its shape as written (e.g. "[M, T, B, 4H]") and the
// gates in their order.
inline RecurrenceShape check_gate_stack(const char* name, const at::Tensor& t, int64_t n, const char* shape,
                                        const char* gates, FirstTensorCheck check_first) {
  check_first(name, t);
  check_dim(name, t, 4, shape);
  TORCH_CHECK_VALUE(t.size(3) % n == 0, name, " must have shape ", shape, " (gates ", gates, "), got ", t.sizes(),
                    " whose last size is not a multiple of ", n);
  return {t.size(0), t.size(1), t.size(2), t.size(3) / n};
}

// A loss gradient g [M, T, B, H] of any strides as the CPU backward kernels read it (SeqRows: rows
// of H contiguous values, anywhere): g itself when its rows are contiguous; otherwise a copy that
// keeps g's broadcast dimensions broadcast, so the gradient of a sum of the states (a scalar
// expanded: all strides 0) becomes one row of H values instead of a dense [M, T, B, H] tensor. A
// tensor that is not 4-D is returned as it is, for the shape check to name it.
at::Tensor with_contiguous_rows(const at::Tensor& g);

// g [M, T, B, H] with contiguous rows (with_contiguous_rows) as the CPU kernels take it.
template <typename T>
SeqRows<T> seq_rows(const at::Tensor& g) {
  return {g.const_data_ptr<T>(), g.stride(0), g.stride(1), g.stride(2)};
}

// A loss gradient (check_like_strided) whose rows are contiguous: what the backward ops read
// grad_hs and grad_cs as, the CPU impls after with_contiguous_rows, the CUDA impls after a dense copy.
inline void check_rows_like(const char* name, const at::Tensor& t, const at::Tensor& like, at::IntArrayRef sizes,
                            const char* shape) {
  check_like_strided(name, t, like, sizes, shape);
  TORCH_CHECK_VALUE(t.size(3) <= 1 || t.stride(3) == 1, name,
                    " must have contiguous rows (stride 1 along its last dimension), got strides ", t.strides());
}

// A forward op's optional bias b [M, G], added to xp [M, T, B, G] at every step (so that the
// projection GEMM that makes xp needs no bias pass): checked like xp (`shape` as written, e.g.
// "[M, 4H]"), or zeros when absent, which the kernels add as well (xp + 0 is xp).
inline at::Tensor bias_or_zeros(const std::optional<at::Tensor>& b, const at::Tensor& xp, const char* shape) {
  const std::vector<int64_t> sizes{xp.size(0), xp.size(3)};
  if (!b) return at::zeros(sizes, xp.options());
  check_like("b", *b, xp, sizes, shape);
  return *b;
}

// Whether a call has anything for the kernels to compute.
inline bool has_work(const RecurrenceShape& s) { return s.M > 0 && s.T > 0 && s.B > 0 && s.H > 0; }

// An output the backward kernels write in full when they run: uninitialized then (empty_output),
// zeros otherwise.
inline at::Tensor kernel_output(const RecurrenceShape& s, at::IntArrayRef sizes, const at::TensorOptions& options) {
  return has_work(s) ? empty_output(sizes, options) : at::zeros(sizes, options);
}

// out [M, G, H] += Σ_t g_tᵀ h_{t-1}, the recurrent weight gradient, for g [M, T, B, G] (u_t of the
// Elman RNN, ∂z_t of the LSTM: G = H or 4H), hs [M, T, B, H] and h0 [M, B, H] (h_{-1}): two
// batched GEMMs over views (h_0, then h_1 … h_{T-1}), no copies for a contiguous g. out is written
// in place and may be a view: the GRU fills ∂W_hh in row blocks, from g = narrowed gate gradients.
inline void add_recurrent_weight_grad(const at::Tensor& out, const RecurrenceShape& s, const at::Tensor& g,
                                      const at::Tensor& hs, const at::Tensor& h0) {
  if (s.T == 0 || s.B == 0) return;
  const int64_t G = g.size(3);
  out.baddbmm_(g.select(1, 0).transpose(1, 2), h0);
  if (s.T > 1)
    out.baddbmm_(g.narrow(1, 1, s.T - 1).reshape({s.M, (s.T - 1) * s.B, G}).transpose(1, 2),
                 hs.narrow(1, 0, s.T - 1).reshape({s.M, (s.T - 1) * s.B, s.H}));
}

// What every backward op returns besides the weight gradient: grad_xp [M, T, B, G] (the gradient
// of the op's input xp), grad_h0 [M, B, H] (zero unless the kernels write it), delta_sq and v_sq
// [M, T, B] (‖δ_t‖², ‖v_t‖²). Zeros where the kernels do not run.
struct BackwardOutputs {
  at::Tensor grad_xp, grad_h0, delta_sq, v_sq;

  // grad_xp like `pre` [M, T, B, G], a tensor the backward op is given (hs, gates) of xp's shape.
  BackwardOutputs(const RecurrenceShape& s, const at::Tensor& pre, const at::Tensor& h0)
      : BackwardOutputs(s, pre.sizes(), pre.options(), h0) {}

  // grad_xp of xp's sizes, for an op given no tensor of that shape (the GRU's: [M, T, B, 3H]).
  BackwardOutputs(const RecurrenceShape& s, at::IntArrayRef grad_xp_sizes, const at::TensorOptions& options,
                  const at::Tensor& h0)
      : grad_xp(kernel_output(s, grad_xp_sizes, options)),
        grad_h0(at::zeros_like(h0, at::MemoryFormat::Contiguous)),
        delta_sq(kernel_output(s, {s.M, s.T, s.B}, options)),
        v_sq(kernel_output(s, {s.M, s.T, s.B}, options)) {}
};

// (Ω [M], N [M]) of SPEC §2.5 from the per-step squared norms delta_sq, v_sq [M, T, B], for every
// cell: the Elman backward op calls it, and so does the omega_from_norms op, which gives the other
// cells' sinks their Ω.
std::tuple<at::Tensor, at::Tensor> omega_from_norms(const at::Tensor& delta_sq, const at::Tensor& v_sq);

// ---- Elman --------------------------------------------------------------------------------------

Activation parse_activation(c10::string_view name);

// xp [M, T, B, H] (checked by check_first), w_hh [M, H, H], h0 [M, B, H]: the shape, or a clear error.
inline RecurrenceShape check_elman(const at::Tensor& xp, const at::Tensor& w_hh, const at::Tensor& h0,
                                   FirstTensorCheck check_first) {
  check_first("xp", xp);
  check_dim("xp", xp, 4, "[M, T, B, H]");
  const RecurrenceShape s{xp.size(0), xp.size(1), xp.size(2), xp.size(3)};
  check_like("w_hh", w_hh, xp, {s.M, s.H, s.H}, "[M, H, H]");
  check_like("h0", h0, xp, {s.M, s.B, s.H}, "[M, B, H]");
  return s;
}

// The elman_backward op's tensors: check_elman on (hs, w_hh, h0), grad_hs like hs (check_rows_like),
// reg_weight [M].
inline RecurrenceShape check_elman_backward(const at::Tensor& grad_hs, const at::Tensor& hs, const at::Tensor& h0,
                                            const at::Tensor& w_hh, const std::optional<at::Tensor>& reg_weight,
                                            FirstTensorCheck check_first) {
  const RecurrenceShape s = check_elman(hs, w_hh, h0, check_first);
  check_rows_like("grad_hs", grad_hs, hs, {s.M, s.T, s.B, s.H}, "[M, T, B, H]");
  if (reg_weight) check_like("reg_weight", *reg_weight, hs, {s.M}, "[M]");
  return s;
}

using ElmanBackwardResult =
    std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// The elman_backward op's outputs. The kernels fill the BackwardOutputs and, with a regularizer,
// reg_v = κ_t v_t [M, T, B, H]; finish() adds Ω, N and dW_hh.
struct ElmanBackwardOutputs : BackwardOutputs {
  at::Tensor reg_v;  // undefined without a regularizer

  ElmanBackwardOutputs(const RecurrenceShape& s, const at::Tensor& hs, const at::Tensor& h0, bool with_reg)
      : BackwardOutputs(s, hs, h0), reg_v(with_reg ? empty_output(hs.sizes(), hs.options()) : at::Tensor()) {}

  // (grad_xp, grad_w_hh, grad_h0, delta_sq, v_sq, omega, n_valid): dW_hh = Σ_t u_tᵀ h_{t-1}, plus
  // α·4/(B·N)·Σ_t u_tᵀ (κ_t v_t) with a regularizer (reg_weight = α [M]).
  ElmanBackwardResult finish(const RecurrenceShape& s, const at::Tensor& hs, const at::Tensor& h0,
                             const std::optional<at::Tensor>& reg_weight) const;
};

// ---- LSTM ---------------------------------------------------------------------------------------

// xp [M, T, B, 4H] (checked by check_first; named xp_name in messages), w_hh [M, 4H, H], h0 and c0
// [M, B, H]: the shape with s.H = H, or a clear error.
inline RecurrenceShape check_lstm(const at::Tensor& xp, const at::Tensor& w_hh, const at::Tensor& h0,
                                  const at::Tensor& c0, const char* xp_name, FirstTensorCheck check_first) {
  const RecurrenceShape s = check_gate_stack(xp_name, xp, 4, "[M, T, B, 4H]", "i, f, g, o", check_first);
  check_like("w_hh", w_hh, xp, {s.M, 4 * s.H, s.H}, "[M, 4H, H]");
  check_like("h0", h0, xp, {s.M, s.B, s.H}, "[M, B, H]");
  check_like("c0", c0, xp, {s.M, s.B, s.H}, "[M, B, H]");
  return s;
}

// The lstm_backward op's tensors: check_lstm on (gates, w_hh, h0, c0), and grad_hs, hs, cs, grad_cs
// (when given) [M, T, B, H] like gates (the two gradients check_rows_like).
inline RecurrenceShape check_lstm_backward(const at::Tensor& grad_hs, const std::optional<at::Tensor>& grad_cs,
                                           const at::Tensor& hs, const at::Tensor& cs, const at::Tensor& gates,
                                           const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_hh,
                                           FirstTensorCheck check_first) {
  const RecurrenceShape s = check_lstm(gates, w_hh, h0, c0, "gates", check_first);
  const std::vector<int64_t> seq{s.M, s.T, s.B, s.H};
  check_rows_like("grad_hs", grad_hs, gates, seq, "[M, T, B, H]");
  check_like("hs", hs, gates, seq, "[M, T, B, H]");
  check_like("cs", cs, gates, seq, "[M, T, B, H]");
  if (grad_cs) check_rows_like("grad_cs", *grad_cs, gates, seq, "[M, T, B, H]");
  return s;
}

// The lstm_forward op's outputs (hs, cs [M, T, B, H], gates like xp [M, T, B, 4H]), uninitialized
// (empty_output).
inline std::tuple<at::Tensor, at::Tensor, at::Tensor> lstm_forward_outputs(const RecurrenceShape& s,
                                                                           const at::Tensor& xp) {
  return {empty_output({s.M, s.T, s.B, s.H}, xp.options()), empty_output({s.M, s.T, s.B, s.H}, xp.options()),
          empty_output(xp.sizes(), xp.options())};
}

using LstmBackwardResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// The lstm_backward op's outputs: the BackwardOutputs (grad_xp = ∂z like gates) and grad_c0,
// which the kernels fill; finish() adds dW_hh.
struct LstmBackwardOutputs : BackwardOutputs {
  at::Tensor grad_c0;  // zero unless the kernels write it

  LstmBackwardOutputs(const RecurrenceShape& s, const at::Tensor& gates, const at::Tensor& h0, const at::Tensor& c0)
      : BackwardOutputs(s, gates, h0), grad_c0(at::zeros_like(c0, at::MemoryFormat::Contiguous)) {}

  // (grad_xp, grad_w_hh, grad_h0, grad_c0, delta_sq, v_sq) with dW_hh = Σ_t ∂z_tᵀ h_{t-1}.
  LstmBackwardResult finish(const RecurrenceShape& s, const at::Tensor& hs, const at::Tensor& h0) const;
};

}  // namespace rnnlab
