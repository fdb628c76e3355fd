// Definitions of train_step_glue.h.
#include "torch/train_step_glue.h"

#include <cmath>
#include <cstdlib>
#include <limits>

#include "torch/checks.h"

namespace rnnlab {
namespace {

using cpu::Loss;
using cpu::Optimizer;

Loss parse_loss(c10::string_view name) {
  if (name == "cross_entropy") return Loss::CrossEntropy;
  if (name == "squared_error") return Loss::SquaredError;
  TORCH_CHECK_VALUE(false, "loss must be 'cross_entropy' or 'squared_error', got '", name, "'");
}

Optimizer parse_optimizer(c10::string_view name) {
  if (name == "sgd") return Optimizer::Sgd;
  if (name == "momentum") return Optimizer::Momentum;
  if (name == "adam") return Optimizer::Adam;
  TORCH_CHECK_VALUE(false, "optimizer must be one of 'sgd', 'momentum', 'adam', got '", name, "'");
}

// An [M] per-model hyper-parameter, required when `needed`; nullptr when absent and not needed.
template <typename T>
const T* hyper(const char* name, const std::optional<at::Tensor>& t, const at::Tensor& like, int64_t M, bool needed) {
  TORCH_CHECK_VALUE(!needed || t.has_value(), name, " is required here (one value per model, shape [", M, "])");
  if (!t.has_value()) return nullptr;
  check_like(name, *t, like, {M}, "[M]");
  return t->const_data_ptr<T>();
}

}  // namespace

TrainStepCall check_train_step(const at::Tensor& x, const at::Tensor& target, at::TensorList params,
                               at::TensorList state, const std::vector<ParamSpec>& specs, int64_t H, int64_t O,
                               c10::string_view loss, double loss_scale, c10::string_view optimizer, int64_t step,
                               int64_t readout_steps) {
  TrainStepCall c{};
  c.M = x.size(0), c.T = x.size(1), c.B = x.size(2), c.I = x.size(3), c.H = H, c.O = O, c.K = readout_steps;
  TORCH_CHECK_VALUE(x.device().is_cpu(), "x must be on the CPU");
  TORCH_CHECK_VALUE(c.T >= 1 && c.B >= 1 && c.I >= 1, "x must have T, B, I >= 1, got ", x.sizes());
  TORCH_CHECK_VALUE(1 <= c.K && c.K <= c.T, "readout_steps must be in [1, T = ", c.T, "], got ", c.K);
  TORCH_CHECK_VALUE(H >= 1 && O >= 1, "the hidden size H and the outputs O must be >= 1, got H = ", H, ", O = ", O);
  TORCH_CHECK_VALUE(params.size() == specs.size() && specs.size() <= static_cast<size_t>(cpu::kMaxTrainParams),
                    "params must hold ", specs.size(), " tensors, got ", params.size());
  for (size_t p = 0; p < specs.size(); ++p) check_like(specs[p].name.c_str(), params[p], x, specs[p].shape, specs[p].text.c_str());

  c.opt = parse_optimizer(optimizer);
  c.slots = c.opt == Optimizer::Sgd ? 0 : c.opt == Optimizer::Momentum ? 1 : 2;
  TORCH_CHECK_VALUE(state.size() == c.slots * specs.size(), "state must hold ", c.slots * specs.size(),
                    " tensors for optimizer '", optimizer, "' (per slot, one per parameter in the order of params), got ",
                    state.size());
  for (size_t i = 0; i < state.size(); ++i) {
    const ParamSpec& spec = specs[i % specs.size()];
    const std::string name = "state[" + std::to_string(i) + "]";
    check_like(name.c_str(), state[i], x, spec.shape, spec.text.c_str());
  }

  c.loss = parse_loss(loss);
  if (c.loss == Loss::CrossEntropy) {
    TORCH_CHECK_TYPE(target.scalar_type() == at::kLong, "target must be int64 class indices for cross_entropy, got ",
                     target.scalar_type());
    TORCH_CHECK_VALUE(target.sizes() == at::IntArrayRef({c.M, c.K, c.B}) && target.is_contiguous(),
                      "target must be a contiguous [M, K, B] = [", c.M, ", ", c.K, ", ", c.B, "] for cross_entropy, got ",
                      target.sizes());
  } else {
    check_like("target", target, x, {c.M, c.K, c.B, c.O}, "[M, K, B, O]");
  }
  TORCH_CHECK_VALUE(std::isfinite(loss_scale), "loss_scale must be finite, got ", loss_scale);
  TORCH_CHECK_VALUE(step >= 1, "step must be >= 1 (the 1-based update number), got ", step);
  return c;
}

TrainStepCall check_recurrent_train_step(const at::Tensor& x, const at::Tensor& target, at::TensorList params,
                                         at::TensorList state, int64_t gates, const std::vector<std::string>& vectors,
                                         c10::string_view loss, double loss_scale, c10::string_view optimizer,
                                         int64_t step, int64_t readout_steps) {
  check_float("x", x);
  check_dim("x", x, 4, "[M, T, B, I]");
  std::vector<std::string> names = {"weight_ih", "weight_hh", "bias"};
  names.insert(names.end(), vectors.begin(), vectors.end());
  names.insert(names.end(), {"weight_out", "bias_out"});
  std::string listed;
  for (const auto& n : names) listed += (listed.empty() ? "" : ", ") + n;
  TORCH_CHECK_VALUE(params.size() == names.size(), "params must be [", listed, "], got ", params.size(), " tensors");
  const std::string gh = gates == 1 ? "H" : std::to_string(gates) + "H";  // rows of the gate blocks
  const size_t out_param = names.size() - 2;
  auto label = [&](size_t p) { return "params[" + std::to_string(p) + "] (" + names[p] + ")"; };
  const std::string hh_text = "[M, " + gh + ", H]";
  check_dim(label(1).c_str(), params[1], 3, hh_text.c_str());
  check_dim(label(out_param).c_str(), params[out_param], 3, "[M, O, H]");
  const int64_t M = x.size(0), I = x.size(3), H = params[1].size(2), O = params[out_param].size(1);
  // weight_hh's rows are checked before the parameters whose shapes H sets, so that a weight_hh of
  // other rows is the one the error names
  TORCH_CHECK_VALUE(params[1].size(1) == gates * H, label(1), " must have shape ", hh_text, ", got ",
                    params[1].sizes());
  std::vector<ParamSpec> specs = {{label(0), {M, gates * H, I}, "[M, " + gh + ", I]"},
                                  {label(1), {M, gates * H, H}, hh_text},
                                  {label(2), {M, gates * H}, "[M, " + gh + "]"}};
  for (size_t p = 3; p < out_param; ++p) specs.push_back({label(p), {M, H}, "[M, H]"});
  specs.push_back({label(out_param), {M, O, H}, "[M, O, H]"});
  specs.push_back({label(out_param + 1), {M, O}, "[M, O]"});
  return check_train_step(x, target, params, state, specs, H, O, loss, loss_scale, optimizer, step, readout_steps);
}

TrainStepOutputs train_step_outputs(const TrainStepCall& c, const at::Tensor& x) {
  return {at::empty({c.M}, x.options()), at::empty({c.M}, x.options()), at::empty({c.M}, x.options().dtype(at::kBool)),
          at::empty({c.M}, x.options().dtype(at::kBool)), at::empty({c.M, c.T, c.B}, x.options()),
          at::empty({c.M, c.T, c.B}, x.options()), at::empty({c.M}, x.options())};
}

template <typename T>
void fill_train_step(cpu::TrainStep<T>& s, const TrainStepCall& c, const at::Tensor& x, const at::Tensor& target,
                     at::TensorList params, at::TensorList state, const at::Tensor& lr,
                     const std::optional<at::Tensor>& lr_min, double cosine_factor,
                     const std::optional<at::Tensor>& momentum, const std::optional<at::Tensor>& beta1,
                     const std::optional<at::Tensor>& beta2, const std::optional<at::Tensor>& clip, double loss_scale,
                     bool safeguard, double eps, int64_t step, TrainStepOutputs& out) {
  s.M = c.M, s.T_ = c.T, s.B = c.B, s.I = c.I, s.H = c.H, s.O = c.O, s.K = c.K;
  s.loss_kind = c.loss;
  s.loss_scale = static_cast<T>(loss_scale);
  s.opt = c.opt;
  s.x = x.const_data_ptr<T>();
  s.class_target = c.loss == Loss::CrossEntropy ? target.const_data_ptr<int64_t>() : nullptr;
  s.value_target = c.loss == Loss::SquaredError ? target.const_data_ptr<T>() : nullptr;
  s.n_params = static_cast<int>(params.size());
  for (int p = 0; p < s.n_params; ++p) {
    s.params[p] = params[p].mutable_data_ptr<T>();
    for (size_t k = 0; k < 2; ++k) s.slots[k][p] = k < c.slots ? state[k * params.size() + p].mutable_data_ptr<T>() : nullptr;
  }
  s.lr = hyper<T>("lr", lr, x, c.M, true);
  s.cosine = lr_min.has_value();
  s.lr_min = hyper<T>("lr_min", lr_min, x, c.M, false);
  s.cosine_factor = cosine_factor;
  s.momentum = hyper<T>("momentum", momentum, x, c.M, c.opt == Optimizer::Momentum);
  s.beta1 = hyper<T>("beta1", beta1, x, c.M, c.opt == Optimizer::Adam);
  s.beta2 = hyper<T>("beta2", beta2, x, c.M, c.opt == Optimizer::Adam);
  s.clip = hyper<T>("clip", clip, x, c.M, false);
  s.has_clip = clip.has_value();
  s.safeguard = safeguard;
  s.eps = static_cast<T>(eps);
  s.step = step;
  s.loss = std::get<0>(out).mutable_data_ptr<T>();
  s.norm = std::get<1>(out).mutable_data_ptr<T>();
  s.clipped = std::get<2>(out).mutable_data_ptr<bool>();
  s.fallback = std::get<3>(out).mutable_data_ptr<bool>();
  s.delta_sq = std::get<4>(out).mutable_data_ptr<T>();
  s.v_sq = std::get<5>(out).mutable_data_ptr<T>();
}

#define RNNLAB_INSTANTIATE_FILL(T)                                                                                    \
  template void fill_train_step<T>(cpu::TrainStep<T>&, const TrainStepCall&, const at::Tensor&, const at::Tensor&,    \
                                   at::TensorList, at::TensorList, const at::Tensor&, const std::optional<at::Tensor>&, \
                                   double, const std::optional<at::Tensor>&, const std::optional<at::Tensor>&,         \
                                   const std::optional<at::Tensor>&, const std::optional<at::Tensor>&, double, bool,   \
                                   double, int64_t, TrainStepOutputs&);
RNNLAB_INSTANTIATE_FILL(float)
RNNLAB_INSTANTIATE_FILL(double)
#undef RNNLAB_INSTANTIATE_FILL

bool use_lanes_layout(const TrainStepCall& c, int64_t lanes, int64_t max_hidden) {
  const char* forced = std::getenv("RNNLAB_TRAIN_LAYOUT");
  const std::string layout(forced ? forced : "");
  TORCH_CHECK_VALUE(layout.empty() || layout == "rows" || layout == "lanes",
                    "RNNLAB_TRAIN_LAYOUT must be 'rows' or 'lanes', got '", layout, "'");
  if (c.T * c.B * c.I * (lanes - 1) > std::numeric_limits<int32_t>::max()) return false;
  return layout.empty() ? c.H <= max_hidden : layout == "lanes";
}

}  // namespace rnnlab
