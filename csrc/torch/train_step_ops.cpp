// ATen glue of the fused Elman training step (kernels/cpu/elman_train_step.h): the schema, the
// checks that name each bad argument, and one parallel region over the models.
#include <torch/library.h>

#include <cmath>

#include "kernels/cpu/elman_train_step.h"
#include "torch/checks.h"
#include "torch/no_derivative.h"
#include "torch/recurrence_glue.h"
#include "torch/tiles.h"

namespace rnnlab {
namespace {

using cpu::Loss;
using cpu::Optimizer;
using cpu::kTrainParams;

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

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> elman_train_step_cpu(
    const at::Tensor& x, const at::Tensor& target, at::TensorList params, at::TensorList state, const at::Tensor& lr,
    const std::optional<at::Tensor>& lr_min, double cosine_factor, const std::optional<at::Tensor>& momentum,
    const std::optional<at::Tensor>& beta1, const std::optional<at::Tensor>& beta2, const std::optional<at::Tensor>& clip,
    c10::string_view activation, c10::string_view loss, double loss_scale, c10::string_view optimizer, bool safeguard,
    double eps, int64_t step, int64_t readout_steps) {
  check_float("x", x);
  check_dim("x", x, 4, "[M, T, B, I]");
  const int64_t M = x.size(0), T = x.size(1), B = x.size(2), I = x.size(3), K = readout_steps;
  TORCH_CHECK_VALUE(T >= 1 && B >= 1 && I >= 1, "x must have T, B, I >= 1, got ", x.sizes());
  TORCH_CHECK_VALUE(1 <= K && K <= T, "readout_steps must be in [1, T = ", T, "], got ", K);
  TORCH_CHECK_VALUE(params.size() == kTrainParams, "params must be [weight_ih, weight_hh, bias, weight_out, bias_out], got ",
                    params.size(), " tensors");
  check_dim("params[1] (weight_hh)", params[1], 3, "[M, H, H]");
  check_dim("params[3] (weight_out)", params[3], 3, "[M, O, H]");
  const int64_t H = params[1].size(1), O = params[3].size(1);
  TORCH_CHECK_VALUE(H >= 1 && O >= 1, "weight_hh and weight_out must have H, O >= 1");
  const std::vector<int64_t> shapes[kTrainParams] = {{M, H, I}, {M, H, H}, {M, H}, {M, O, H}, {M, O}};
  const char* names[kTrainParams] = {"params[0] (weight_ih)", "params[1] (weight_hh)", "params[2] (bias)",
                                     "params[3] (weight_out)", "params[4] (bias_out)"};
  const char* shape_text[kTrainParams] = {"[M, H, I]", "[M, H, H]", "[M, H]", "[M, O, H]", "[M, O]"};
  for (int p = 0; p < kTrainParams; ++p) check_like(names[p], params[p], x, shapes[p], shape_text[p]);

  const Optimizer opt = parse_optimizer(optimizer);
  const size_t slots = opt == Optimizer::Sgd ? 0 : opt == Optimizer::Momentum ? 1 : 2;
  TORCH_CHECK_VALUE(state.size() == slots * kTrainParams, "state must hold ", slots * kTrainParams, " tensors for optimizer '",
                    optimizer, "' (per slot, one per parameter in the order of params), got ", state.size());
  for (size_t i = 0; i < state.size(); ++i) {
    const std::string name = "state[" + std::to_string(i) + "]";
    check_like(name.c_str(), state[i], x, shapes[i % kTrainParams], shape_text[i % kTrainParams]);
  }

  const Loss loss_kind = parse_loss(loss);
  if (loss_kind == Loss::CrossEntropy) {
    TORCH_CHECK_TYPE(target.scalar_type() == at::kLong, "target must be int64 class indices for cross_entropy, got ",
                     target.scalar_type());
    TORCH_CHECK_VALUE(target.sizes() == at::IntArrayRef({M, K, B}) && target.is_contiguous(),
                      "target must be a contiguous [M, K, B] = [", M, ", ", K, ", ", B, "] for cross_entropy, got ", target.sizes());
  } else {
    check_like("target", target, x, {M, K, B, O}, "[M, K, B, O]");
  }
  TORCH_CHECK_VALUE(std::isfinite(loss_scale), "loss_scale must be finite, got ", loss_scale);
  TORCH_CHECK_VALUE(step >= 1, "step must be >= 1 (the 1-based update number), got ", step);
  TORCH_CHECK_VALUE(x.device().is_cpu(), "x must be on the CPU");

  auto loss_out = at::empty({M}, x.options());
  auto norm_out = at::empty({M}, x.options());
  auto clipped = at::empty({M}, x.options().dtype(at::kBool));
  auto fallback = at::empty({M}, x.options().dtype(at::kBool));
  auto delta_sq = at::empty({M, T, B}, x.options());
  auto v_sq = at::empty({M, T, B}, x.options());
  if (M == 0) return {loss_out, norm_out, clipped, fallback, delta_sq, v_sq};

  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "elman_train_step", [&] {
    cpu::ElmanTrainStep<scalar_t> s{};
    s.M = M, s.T_ = T, s.B = B, s.I = I, s.H = H, s.O = O, s.K = K;
    s.act = parse_activation(activation);
    s.loss_kind = loss_kind;
    s.loss_scale = static_cast<scalar_t>(loss_scale);
    s.opt = opt;
    s.x = x.const_data_ptr<scalar_t>();
    s.class_target = loss_kind == Loss::CrossEntropy ? target.const_data_ptr<int64_t>() : nullptr;
    s.value_target = loss_kind == Loss::SquaredError ? target.const_data_ptr<scalar_t>() : nullptr;
    for (int p = 0; p < kTrainParams; ++p) {
      s.params[p] = params[p].mutable_data_ptr<scalar_t>();
      for (size_t k = 0; k < 2; ++k) s.slots[k][p] = k < slots ? state[k * kTrainParams + p].mutable_data_ptr<scalar_t>() : nullptr;
    }
    s.lr = hyper<scalar_t>("lr", lr, x, M, true);
    s.cosine = lr_min.has_value();
    s.lr_min = hyper<scalar_t>("lr_min", lr_min, x, M, false);
    s.cosine_factor = cosine_factor;
    s.momentum = hyper<scalar_t>("momentum", momentum, x, M, opt == Optimizer::Momentum);
    s.beta1 = hyper<scalar_t>("beta1", beta1, x, M, opt == Optimizer::Adam);
    s.beta2 = hyper<scalar_t>("beta2", beta2, x, M, opt == Optimizer::Adam);
    s.clip = hyper<scalar_t>("clip", clip, x, M, false);
    s.has_clip = clip.has_value();
    s.safeguard = safeguard;
    s.eps = static_cast<scalar_t>(eps);
    s.step = step;
    s.loss = loss_out.mutable_data_ptr<scalar_t>();
    s.norm = norm_out.mutable_data_ptr<scalar_t>();
    s.clipped = clipped.mutable_data_ptr<bool>();
    s.fallback = fallback.mutable_data_ptr<bool>();
    s.delta_sq = delta_sq.mutable_data_ptr<scalar_t>();
    s.v_sq = v_sq.mutable_data_ptr<scalar_t>();
    const auto kernel = cpu::elman_train_step_kernel<scalar_t>(cpu::selected_isa());
    // One tile per model, all its rows: a model never spans threads, so its result does not
    // depend on the thread count or on the models beside it. Work: the forward, v_t and ∂W_hh GEMMs.
    const RecurrenceShape shape{M, T, B, H};
    for_each_tile(make_tiles(M, B, B), shape.recurrent_work(3), [&](BatchTile tile) { kernel(s, tile.model); });
  });
  return {loss_out, norm_out, clipped, fallback, delta_sq, v_sq};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnlab, m) {
  m.def(
      "elman_train_step(Tensor x, Tensor target, Tensor(a!)[] params, Tensor(b!)[] state, Tensor lr, Tensor? lr_min, "
      "float cosine_factor, Tensor? momentum, Tensor? beta1, Tensor? beta2, Tensor? clip, str activation, str loss, "
      "float loss_scale, str optimizer, bool safeguard, float eps, int step, int readout_steps) -> "
      "(Tensor loss, Tensor norm, Tensor clipped, Tensor fallback, Tensor delta_sq, Tensor v_sq)");
}

TORCH_LIBRARY_IMPL(rnnlab, CPU, m) { m.impl("elman_train_step", &elman_train_step_cpu); }

TORCH_LIBRARY_IMPL(rnnlab, Autograd, m) { register_no_derivative(m, {"elman_train_step"}); }

}  // namespace rnnlab
