// ATen glue of the fused GRU training step (kernels/cpu/gru_train_step.h): its parameter shapes,
// the layout (use_lanes_layout) and one parallel region over the models or groups of models.
// The checks and fields every cell shares are in train_step_glue.h.
#include <torch/library.h>

#include "kernels/cpu/gru_train_step.h"
#include "torch/checks.h"
#include "torch/no_derivative.h"
#include "torch/tiles.h"
#include "torch/train_step_glue.h"

namespace rnnlab {
namespace {

TrainStepOutputs gru_train_step_cpu(const at::Tensor& x, const at::Tensor& target, at::TensorList params,
                                    at::TensorList state, const at::Tensor& lr, const std::optional<at::Tensor>& lr_min,
                                    double cosine_factor, const std::optional<at::Tensor>& momentum,
                                    const std::optional<at::Tensor>& beta1, const std::optional<at::Tensor>& beta2,
                                    const std::optional<at::Tensor>& clip, c10::string_view loss, double loss_scale,
                                    c10::string_view optimizer, bool safeguard, double eps, int64_t step,
                                    int64_t readout_steps) {
  check_float("x", x);
  check_dim("x", x, 4, "[M, T, B, I]");
  TORCH_CHECK_VALUE(params.size() == cpu::kGruTrainParams,
                    "params must be [weight_ih, weight_hh, bias, bias_hn, weight_out, bias_out], got ", params.size(),
                    " tensors");
  check_dim("params[1] (weight_hh)", params[1], 3, "[M, 3H, H]");
  check_dim("params[4] (weight_out)", params[4], 3, "[M, O, H]");
  const int64_t M = x.size(0), I = x.size(3), H = params[1].size(2), O = params[4].size(1);
  // H is weight_hh's column count: a weight_hh of other rows is named here, not through the
  // other parameters' shapes that H sets
  TORCH_CHECK_VALUE(params[1].size(1) == 3 * H, "params[1] (weight_hh) must have shape [M, 3H, H], got ",
                    params[1].sizes());
  const std::vector<ParamSpec> specs = {{"params[0] (weight_ih)", {M, 3 * H, I}, "[M, 3H, I]"},
                                        {"params[1] (weight_hh)", {M, 3 * H, H}, "[M, 3H, H]"},
                                        {"params[2] (bias)", {M, 3 * H}, "[M, 3H]"},
                                        {"params[3] (bias_hn)", {M, H}, "[M, H]"},
                                        {"params[4] (weight_out)", {M, O, H}, "[M, O, H]"},
                                        {"params[5] (bias_out)", {M, O}, "[M, O]"}};
  const TrainStepCall c = check_train_step(x, target, params, state, specs, H, O, loss, loss_scale, optimizer, step,
                                           readout_steps);
  TrainStepOutputs out = train_step_outputs(c, x);
  if (M == 0) return out;

  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_train_step", [&] {
    cpu::TrainStep<scalar_t> s{};
    fill_train_step<scalar_t>(s, c, x, target, params, state, lr, lr_min, cosine_factor, momentum, beta1, beta2, clip,
                              loss_scale, safeguard, eps, step, out);
    scalar_t* omega = std::get<6>(out).mutable_data_ptr<scalar_t>();
    // Work: the forward, v_t and ∂W_hh GEMMs, each over the three gates.
    const int64_t work = RecurrenceShape{c.M, c.T, c.B, c.H}.recurrent_work(9);
    const auto lanes = cpu::gru_train_step_lanes_kernel<scalar_t>(cpu::selected_isa());
    if (use_lanes_layout(c, lanes.lanes, lanes.max_hidden)) {
      run_lanes(lanes, s, work, omega);
    } else {
      const auto kernel = cpu::gru_train_step_kernel<scalar_t>(cpu::selected_isa());
      run_rows(s, work, omega, [&](int64_t m) { kernel(s, m); });
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnlab, m) {
  m.def("gru_train_step(" RNNLAB_TRAIN_STEP_ARGS ") -> " RNNLAB_TRAIN_STEP_RETURNS);
}

TORCH_LIBRARY_IMPL(rnnlab, CPU, m) { m.impl("gru_train_step", &gru_train_step_cpu); }

TORCH_LIBRARY_IMPL(rnnlab, Autograd, m) { register_no_derivative(m, {"gru_train_step"}); }

}  // namespace rnnlab
