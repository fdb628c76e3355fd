// ATen glue of the fused GRU training step (kernels/cpu/gru_train_step.h): its schema, its
// parameters (check_recurrent_train_step) and its kernels in either layout (run_train_step, in
// train_step_glue.h, with every check and field the cells share).
#include <torch/library.h>

#include "kernels/cpu/gru_train_step.h"
#include "torch/no_derivative.h"
#include "torch/train_step_glue.h"

namespace rnnlab {
namespace {

TrainStepOutputs gru_train_step_cpu(RNNLAB_TRAIN_STEP_PARAMS) {
  const TrainStepCall c = check_recurrent_train_step(x, target, params, state, /*gates=*/3, {"bias_hn"}, loss,
                                                     loss_scale, optimizer, step, readout_steps);
  TrainStepOutputs out = train_step_outputs(c, x);
  if (c.M == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_train_step", [&] {
    cpu::TrainStep<scalar_t> s{};
    fill_train_step<scalar_t>(s, c, RNNLAB_FILL_TRAIN_STEP_ARGS, out);
    const cpu::Isa isa = cpu::selected_isa();
    run_train_step(c, s, 3 * 3, cpu::gru_train_step_lanes_kernel<scalar_t>(isa),
                   cpu::gru_train_step_kernel<scalar_t>(isa), /*lanes_allowed=*/true, out);
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
