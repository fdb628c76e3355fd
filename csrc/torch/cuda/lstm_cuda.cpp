// ATen glue for the CUDA LSTM kernels: the CUDA impls of the ops whose schemas are defined in
// csrc/torch/lstm_ops.cpp, input checks, the choice between the on-chip kernel (float32 H ≤ 64,
// float64 H ≤ 32) and the per-step path (batched cuBLAS GEMM + one fused kernel per step;
// RNNLAB_CUDA_PATH=steps forces it), and the weight-gradient GEMMs after the backward kernel.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <vector>

#include "kernels/cuda/lstm.cuh"
#include "torch/cuda/common.h"

namespace rnnlab {
namespace {

using cuda_glue::current_stream;

template <typename T>
bool use_onchip(int64_t H) {
  return cuda::lstm_onchip_fits<T>(H) && !cuda_glue::steps_forced();
}

// Checks xp [M, T, B, 4H] (CUDA), w_hh [M, 4H, H], h0 and c0 [M, B, H]; returns the shape with s.H = H.
RecurrenceShape check_lstm_cuda(const at::Tensor& xp, const at::Tensor& w_hh, const at::Tensor& h0,
                                const at::Tensor& c0, const char* xp_name) {
  cuda_glue::check_float_cuda(xp_name, xp);
  check_dim(xp_name, xp, 4, "[M, T, B, 4H]");
  TORCH_CHECK_VALUE(xp.size(3) % 4 == 0, xp_name, " must have shape [M, T, B, 4H] (gates i, f, g, o), got ",
                    xp.sizes(), " whose last size is not a multiple of 4");
  const RecurrenceShape s{xp.size(0), xp.size(1), xp.size(2), xp.size(3) / 4};
  check_like("w_hh", w_hh, xp, {s.M, 4 * s.H, s.H}, "[M, 4H, H]");
  check_like("h0", h0, xp, {s.M, s.B, s.H}, "[M, B, H]");
  check_like("c0", c0, xp, {s.M, s.B, s.H}, "[M, B, H]");
  return s;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> lstm_forward_cuda(const at::Tensor& xp, const at::Tensor& w_hh,
                                                                 const at::Tensor& h0, const at::Tensor& c0) {
  const RecurrenceShape s = check_lstm_cuda(xp, w_hh, h0, c0, "xp");
  const c10::cuda::CUDAGuard guard(xp.device());
  auto hs = at::empty({s.M, s.T, s.B, s.H}, xp.options());
  auto cs = at::empty({s.M, s.T, s.B, s.H}, xp.options());
  auto gates = at::empty_like(xp, at::MemoryFormat::Contiguous);
  if (hs.numel() == 0) return {hs, cs, gates};
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "lstm_forward_cuda", [&] {
    using T = scalar_t;
    if (use_onchip<T>(s.H)) {
      C10_CUDA_CHECK(cuda::lstm_forward_onchip<T>(s, xp.const_data_ptr<T>(), w_hh.const_data_ptr<T>(),
                                                  h0.const_data_ptr<T>(), c0.const_data_ptr<T>(),
                                                  hs.mutable_data_ptr<T>(), cs.mutable_data_ptr<T>(),
                                                  gates.mutable_data_ptr<T>(), current_stream()));
      return;
    }
    auto rec = at::empty({s.M, s.B, 4 * s.H}, xp.options());  // h_{t-1} w_hhᵀ
    const auto w_t = w_hh.transpose(1, 2);
    for (int64_t t = 0; t < s.T; ++t) {
      at::bmm_out(rec, t == 0 ? h0 : hs.select(1, t - 1), w_t);
      C10_CUDA_CHECK(cuda::lstm_forward_step<T>(s, t, xp.const_data_ptr<T>(), rec.const_data_ptr<T>(),
                                                c0.const_data_ptr<T>(), hs.mutable_data_ptr<T>(),
                                                cs.mutable_data_ptr<T>(), gates.mutable_data_ptr<T>(),
                                                current_stream()));
    }
  });
  return {hs, cs, gates};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lstm_backward_cuda(
    const at::Tensor& grad_hs, const std::optional<at::Tensor>& grad_cs, const at::Tensor& hs, const at::Tensor& cs,
    const at::Tensor& gates, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_hh) {
  const RecurrenceShape s = check_lstm_cuda(gates, w_hh, h0, c0, "gates");
  const std::vector<int64_t> seq{s.M, s.T, s.B, s.H};
  check_like("grad_hs", grad_hs, gates, seq, "[M, T, B, H]");
  check_like("hs", hs, gates, seq, "[M, T, B, H]");
  check_like("cs", cs, gates, seq, "[M, T, B, H]");
  if (grad_cs) check_like("grad_cs", *grad_cs, gates, seq, "[M, T, B, H]");
  const c10::cuda::CUDAGuard guard(gates.device());

  auto grad_xp = at::empty_like(gates, at::MemoryFormat::Contiguous);
  auto grad_h0 = at::zeros_like(h0, at::MemoryFormat::Contiguous);  // stay 0 when T = 0
  auto grad_c0 = at::zeros_like(c0, at::MemoryFormat::Contiguous);
  auto delta_sq = at::empty({s.M, s.T, s.B}, gates.options());
  auto v_sq = at::empty({s.M, s.T, s.B}, gates.options());
  if (s.M > 0 && s.T > 0 && s.B > 0 && s.H > 0) {
    AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_backward_cuda", [&] {
      using T = scalar_t;
      const T* gc = grad_cs ? grad_cs->const_data_ptr<T>() : nullptr;
      if (use_onchip<T>(s.H)) {
        C10_CUDA_CHECK(cuda::lstm_backward_onchip<T>(
            s, grad_hs.const_data_ptr<T>(), gc, cs.const_data_ptr<T>(), gates.const_data_ptr<T>(),
            c0.const_data_ptr<T>(), w_hh.const_data_ptr<T>(), grad_xp.mutable_data_ptr<T>(),
            grad_h0.mutable_data_ptr<T>(), grad_c0.mutable_data_ptr<T>(), delta_sq.mutable_data_ptr<T>(),
            v_sq.mutable_data_ptr<T>(), current_stream()));
        return;
      }
      auto v = at::empty({s.M, s.B, s.H}, gates.options());  // v_t = ∂z_t w_hh
      auto dc = at::zeros({s.M, s.B, s.H}, gates.options());  // ε' carried between steps
      auto step = [&](int64_t t, const T* vt) {
        C10_CUDA_CHECK(cuda::lstm_backward_step<T>(
            s, t, vt, grad_hs.const_data_ptr<T>(), gc, cs.const_data_ptr<T>(), gates.const_data_ptr<T>(),
            c0.const_data_ptr<T>(), dc.mutable_data_ptr<T>(), grad_xp.mutable_data_ptr<T>(),
            grad_h0.mutable_data_ptr<T>(), grad_c0.mutable_data_ptr<T>(), delta_sq.mutable_data_ptr<T>(),
            v_sq.mutable_data_ptr<T>(), current_stream()));
      };
      step(s.T, nullptr);  // the cell step T − 1, from δ_{T-1} = ∂⁺L/∂h_{T-1}
      for (int64_t t = s.T - 1; t >= 0; --t) {
        at::bmm_out(v, grad_xp.select(1, t), w_hh);
        step(t, v.const_data_ptr<T>());
      }
    });
  } else {
    grad_xp.zero_();
    delta_sq.zero_();
    v_sq.zero_();
  }

  // dW_hh = Σ_t ∂z_tᵀ h_{t-1}: two batched GEMMs over all steps (h_0, then h_1 … h_{T-1}).
  auto grad_w = at::zeros_like(w_hh, at::MemoryFormat::Contiguous);
  if (s.T > 0 && s.B > 0) {
    grad_w.baddbmm_(grad_xp.select(1, 0).transpose(1, 2), h0);
    if (s.T > 1)
      grad_w.baddbmm_(grad_xp.narrow(1, 1, s.T - 1).reshape({s.M, (s.T - 1) * s.B, 4 * s.H}).transpose(1, 2),
                      hs.narrow(1, 0, s.T - 1).reshape({s.M, (s.T - 1) * s.B, s.H}));
  }
  return {grad_xp, grad_w, grad_h0, grad_c0, delta_sq, v_sq};
}

}  // namespace

TORCH_LIBRARY_IMPL(rnnlab, CUDA, m) {
  m.impl("lstm_forward", &lstm_forward_cuda);
  m.impl("lstm_backward", &lstm_backward_cuda);
}

}  // namespace rnnlab
