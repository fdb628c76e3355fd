// ATen glue of the fused Elman training step (kernels/cpu/elman_train_step.h): its parameter
// shapes, its activation, Ω's weight α (reg_weight), the layout, and one parallel region over the
// models. The checks and fields every cell shares are in train_step_glue.h.
#include <torch/library.h>

#include <vector>

#include "kernels/cpu/elman_train_step.h"
#include "torch/checks.h"
#include "torch/no_derivative.h"
#include "torch/recurrence_glue.h"
#include "torch/tiles.h"
#include "torch/train_step_glue.h"

namespace rnnlab {
namespace {

TrainStepOutputs elman_train_step_cpu(const at::Tensor& x, const at::Tensor& target, at::TensorList params,
                                      at::TensorList state, const at::Tensor& lr, const std::optional<at::Tensor>& lr_min,
                                      double cosine_factor, const std::optional<at::Tensor>& momentum,
                                      const std::optional<at::Tensor>& beta1, const std::optional<at::Tensor>& beta2,
                                      const std::optional<at::Tensor>& clip, c10::string_view loss, double loss_scale,
                                      c10::string_view optimizer, bool safeguard, double eps, int64_t step,
                                      int64_t readout_steps, c10::string_view nonlinearity,
                                      const std::optional<at::Tensor>& reg_weight) {
  check_float("x", x);
  check_dim("x", x, 4, "[M, T, B, I]");
  TORCH_CHECK_VALUE(params.size() == cpu::kElmanTrainParams,
                    "params must be [weight_ih, weight_hh, bias, weight_out, bias_out], got ", params.size(), " tensors");
  check_dim("params[1] (weight_hh)", params[1], 3, "[M, H, H]");
  check_dim("params[3] (weight_out)", params[3], 3, "[M, O, H]");
  const int64_t M = x.size(0), I = x.size(3), H = params[1].size(1), O = params[3].size(1);
  const std::vector<ParamSpec> specs = {{"params[0] (weight_ih)", {M, H, I}, "[M, H, I]"},
                                        {"params[1] (weight_hh)", {M, H, H}, "[M, H, H]"},
                                        {"params[2] (bias)", {M, H}, "[M, H]"},
                                        {"params[3] (weight_out)", {M, O, H}, "[M, O, H]"},
                                        {"params[4] (bias_out)", {M, O}, "[M, O]"}};
  const TrainStepCall c = check_train_step(x, target, params, state, specs, H, O, loss, loss_scale, optimizer, step,
                                           readout_steps);
  const Activation act = parse_activation(nonlinearity);
  if (reg_weight) check_like("reg_weight", *reg_weight, x, {M}, "[M]");
  TrainStepOutputs out = train_step_outputs(c, x);
  if (M == 0) return out;

  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "elman_train_step", [&] {
    cpu::ElmanTrainStep<scalar_t> s{};
    fill_train_step<scalar_t>(s, c, x, target, params, state, lr, lr_min, cosine_factor, momentum, beta1, beta2, clip,
                              loss_scale, safeguard, eps, step, out);
    scalar_t* omega = std::get<6>(out).mutable_data_ptr<scalar_t>();
    s.act = act;
    s.reg_weight = reg_weight ? reg_weight->const_data_ptr<scalar_t>() : nullptr;
    // Work: the forward, v_t and ∂W_hh GEMMs (Ω adds only elementwise work and B more rows to the
    // ∂W_hh GEMM).
    const int64_t work = RecurrenceShape{c.M, c.T, c.B, c.H}.recurrent_work(3);
    const auto lanes = cpu::elman_train_step_lanes_kernel<scalar_t>(cpu::selected_isa());
    // A call with Ω (reg_weight) runs the row layout: the lanes layout has no Ω.
    // (rnnlab.train.fused_step calls the op with reg_weight only for the models whose α > 0, so a
    // model's layout still depends on its own configuration only.)
    if (use_lanes_layout(c, lanes.lanes, lanes.max_hidden) && !reg_weight) {
      run_lanes(lanes, s, work, omega);
    } else {
      const auto kernel = cpu::elman_train_step_kernel<scalar_t>(cpu::selected_isa());
      run_rows(s, work, omega, [&](int64_t m) { kernel(s, m); });
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnlab, m) {
  // reg_weight: α of Pascanu's Ω per model [M] (SPEC §2.5), whose gradient joins ∂W_hh; None: α = 0
  m.def("elman_train_step(" RNNLAB_TRAIN_STEP_ARGS ", str nonlinearity=\"tanh\", Tensor? reg_weight=None) -> "
        RNNLAB_TRAIN_STEP_RETURNS);
}

TORCH_LIBRARY_IMPL(rnnlab, CPU, m) { m.impl("elman_train_step", &elman_train_step_cpu); }

TORCH_LIBRARY_IMPL(rnnlab, Autograd, m) { register_no_derivative(m, {"elman_train_step"}); }

}  // namespace rnnlab
