// ATen glue of the fused Elman training step (kernels/cpu/elman_train_step.h): its schema, its
// parameters (check_recurrent_train_step), its activation, Ω's weight α (reg_weight) and its
// kernels in either layout (run_train_step, in train_step_glue.h, with every check and field the
// cells share).
#include <torch/library.h>

#include "kernels/cpu/elman_train_step.h"
#include "torch/checks.h"
#include "torch/no_derivative.h"
#include "torch/recurrence_glue.h"
#include "torch/train_step_glue.h"

namespace rnnlab {
namespace {

TrainStepOutputs elman_train_step_cpu(RNNLAB_TRAIN_STEP_PARAMS, c10::string_view nonlinearity,
                                      const std::optional<at::Tensor>& reg_weight) {
  const TrainStepCall c = check_recurrent_train_step(x, target, params, state, /*gates=*/1, {}, loss, loss_scale,
                                                     optimizer, step, readout_steps);
  const Activation act = parse_activation(nonlinearity);
  if (reg_weight) check_like("reg_weight", *reg_weight, x, {c.M}, "[M]");
  TrainStepOutputs out = train_step_outputs(c, x);
  if (c.M == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "elman_train_step", [&] {
    cpu::ElmanTrainStep<scalar_t> s{};
    fill_train_step<scalar_t>(s, c, RNNLAB_FILL_TRAIN_STEP_ARGS, out);
    s.act = act;
    s.reg_weight = reg_weight ? reg_weight->const_data_ptr<scalar_t>() : nullptr;
    // A call with Ω (reg_weight) runs the row layout: the lanes layout has no Ω. (Ω adds only
    // elementwise work and B more rows to the ∂W_hh GEMM.) rnnlab.train.fused_step calls the op
    // with reg_weight only for the models whose α > 0, so a model's layout still depends on its
    // own configuration only.
    const cpu::Isa isa = cpu::selected_isa();
    run_train_step(c, s, 3, cpu::elman_train_step_lanes_kernel<scalar_t>(isa), cpu::elman_train_step_kernel<scalar_t>(isa),
                   /*lanes_allowed=*/!reg_weight, out);
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
