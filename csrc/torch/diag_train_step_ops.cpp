// ATen glue of the fused diagonal (LRU) training step (kernels/cpu/diag_train_step.h): its options,
// its parameter list (which the options decide) and one parallel region over the models. The
// checks and fields every cell shares are in train_step_glue.h.
#include <torch/library.h>

#include <string>

#include "kernels/cpu/diag_train_step.h"
#include "torch/checks.h"
#include "torch/no_derivative.h"
#include "torch/tiles.h"
#include "torch/train_step_glue.h"

namespace rnnlab {
namespace {

cpu::DiagLambda parse_parametrization(c10::string_view name) {
  if (name == "exp") return cpu::DiagLambda::Exp;
  if (name == "polar") return cpu::DiagLambda::Polar;
  if (name == "plain") return cpu::DiagLambda::Plain;
  if (name == "real") return cpu::DiagLambda::Real;
  TORCH_CHECK_VALUE(false, "parametrization must be one of 'exp', 'polar', 'plain', 'real', got '", name, "'");
}

cpu::DiagGamma parse_gamma(c10::string_view name) {
  if (name == "learned") return cpu::DiagGamma::Learned;
  if (name == "none") return cpu::DiagGamma::None;
  if (name == "fixed") return cpu::DiagGamma::Fixed;
  TORCH_CHECK_VALUE(false, "gamma must be one of 'learned', 'none', 'fixed', got '", name, "'");
}

// The parameter names of a variant, in rnnlab.nn.lru.lru_param_shapes' order.
std::vector<std::string> param_names(const cpu::DiagVariant& var) {
  std::vector<std::string> names;
  switch (var.lambda) {
    case cpu::DiagLambda::Exp: names = {"nu_log", "theta_log"}; break;
    case cpu::DiagLambda::Polar: names = {"nu", "theta"}; break;
    case cpu::DiagLambda::Plain: names = {"lam_re", "lam_im"}; break;
    case cpu::DiagLambda::Real: names = {"nu_log"}; break;
  }
  if (var.gamma == cpu::DiagGamma::Learned) names.push_back("gamma_log");
  for (const char* part : {"B", "C"}) {
    names.push_back(std::string(part) + "_re");
    if (var.complex()) names.push_back(std::string(part) + "_im");
  }
  names.push_back("D");
  return names;
}

TrainStepOutputs diag_train_step_cpu(RNNLAB_TRAIN_STEP_PARAMS, c10::string_view parametrization,
                                     c10::string_view gamma) {
  check_float("x", x);
  check_dim("x", x, 4, "[M, T, B, I]");
  const cpu::DiagVariant var{parse_parametrization(parametrization), parse_gamma(gamma)};
  const std::vector<std::string> names = param_names(var);
  std::string listed;
  for (const auto& n : names) listed += (listed.empty() ? "" : ", ") + n;
  TORCH_CHECK_VALUE(params.size() == names.size(), "params must be [", listed, "] for parametrization '",
                    parametrization, "', gamma '", gamma, "', got ", params.size(), " tensors");
  auto label = [&](int p) { return "params[" + std::to_string(p) + "] (" + names[p] + ")"; };
  // N from λ's first parameter, O from C_re: the other shapes follow from them
  check_dim(label(0).c_str(), params[0], 2, "[M, N]");
  check_dim(label(var.c_param()).c_str(), params[var.c_param()], 3, "[M, O, N]");
  const int64_t M = x.size(0), I = x.size(3), N = params[0].size(1), O = params[var.c_param()].size(1);
  std::vector<ParamSpec> specs;
  for (int p = 0; p < var.n_params(); ++p) {
    if (p < var.b_param()) specs.push_back({label(p), {M, N}, "[M, N]"});
    else if (p < var.c_param()) specs.push_back({label(p), {M, N, I}, "[M, N, I]"});
    else if (p < var.d_param()) specs.push_back({label(p), {M, O, N}, "[M, O, N]"});
    else specs.push_back({label(p), {M, O, I}, "[M, O, I]"});
  }
  const TrainStepCall c = check_train_step(x, target, params, state, specs, N, O, loss, loss_scale, optimizer, step,
                                           readout_steps);
  TrainStepOutputs out = train_step_outputs(c, x);
  if (M == 0) return out;

  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "diag_train_step", [&] {
    cpu::TrainStep<scalar_t> s{};
    fill_train_step<scalar_t>(s, c, RNNLAB_FILL_TRAIN_STEP_ARGS, out);
    const auto kernel = cpu::diag_train_step_kernel<scalar_t>(cpu::selected_isa());
    // Work: per step, row and real column the input projection and ∂B's sums (I each) and the
    // complex products of both passes.
    const int64_t Nr = N * (var.complex() ? 2 : 1);
    run_rows(s, c.M * c.T * c.B * Nr * (2 * I + 8), std::get<6>(out).mutable_data_ptr<scalar_t>(),
             [&](int64_t m) { kernel(s, var, m); });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnlab, m) {
  m.def("diag_train_step(" RNNLAB_TRAIN_STEP_ARGS ", str parametrization=\"exp\", str gamma=\"learned\") -> "
        RNNLAB_TRAIN_STEP_RETURNS);
}

TORCH_LIBRARY_IMPL(rnnlab, CPU, m) { m.impl("diag_train_step", &diag_train_step_cpu); }

TORCH_LIBRARY_IMPL(rnnlab, Autograd, m) { register_no_derivative(m, {"diag_train_step"}); }

}  // namespace rnnlab
