// The part of a fused training step's op glue that every cell shares (kernels/cpu/train_step.h):
// the checks that name each bad argument, the outputs, and filling the kernel's TrainStep fields.
// A cell's op file (e.g. elman_train_step_ops.cpp) adds only its parameter shapes, its own
// options and the kernel call. Definitions are in train_step_glue.cpp.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "kernels/cpu/omega_of_norms.h"
#include "kernels/cpu/train_step.h"
#include "torch/tiles.h"

namespace rnnlab {

// One parameter as the op's schema documents it, e.g. {"params[1] (weight_hh)", {M, H, H}, "[M, H, H]"}.
struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::string text;
};

// The sizes and choices of a call once its arguments passed the checks.
struct TrainStepCall {
  int64_t M, T, B, I, H, O, K;
  cpu::Loss loss;
  cpu::Optimizer opt;
  size_t slots;  // optimizer state tensors per parameter: 0 (SGD), 1 (momentum), 2 (Adam)
};

// What every fused step returns: loss, norm [M], clipped, fallback [M] (bool), delta_sq, v_sq [M, T, B],
// omega [M] (Ω of SPEC §2.5 from delta_sq and v_sq, as the omega_from_norms op computes it).
using TrainStepOutputs = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// x [M, T, B, I] (checked here), then H and O as the cell's op read them from its parameters.
// Checks readout_steps, params against `specs`, the optimizer state, the target for the loss,
// loss_scale and step; raises a ValueError/TypeError naming the argument otherwise.
TrainStepCall check_train_step(const at::Tensor& x, const at::Tensor& target, at::TensorList params,
                               at::TensorList state, const std::vector<ParamSpec>& specs, int64_t H, int64_t O,
                               c10::string_view loss, double loss_scale, c10::string_view optimizer, int64_t step,
                               int64_t readout_steps);

// check_train_step for a cell whose parameters are weight_ih [M, G·H, I], weight_hh [M, G·H, H],
// bias [M, G·H], the cell's own `vectors` of H entries each ([M, H]: the GRU's bias_hn), weight_out
// [M, O, H] and bias_out [M, O], with G = `gates` blocks of H rows and H weight_hh's column count;
// x is checked here too.
TrainStepCall check_recurrent_train_step(const at::Tensor& x, const at::Tensor& target, at::TensorList params,
                                         at::TensorList state, int64_t gates, const std::vector<std::string>& vectors,
                                         c10::string_view loss, double loss_scale, c10::string_view optimizer,
                                         int64_t step, int64_t readout_steps);

// Uninitialized outputs for a checked call (the kernels write every entry of every model).
TrainStepOutputs train_step_outputs(const TrainStepCall& c, const at::Tensor& x);

// Fills the cell-independent fields of `s` for a checked call, pointing into the outputs.
template <typename T>
void fill_train_step(cpu::TrainStep<T>& s, const TrainStepCall& c, const at::Tensor& x, const at::Tensor& target,
                     at::TensorList params, at::TensorList state, const at::Tensor& lr,
                     const std::optional<at::Tensor>& lr_min, double cosine_factor,
                     const std::optional<at::Tensor>& momentum, const std::optional<at::Tensor>& beta1,
                     const std::optional<at::Tensor>& beta2, const std::optional<at::Tensor>& clip, double loss_scale,
                     bool safeguard, double eps, int64_t step, TrainStepOutputs& out);

// Whether a call takes the lanes layout (one model per vector lane, kernels/cpu/train_step_lanes.h)
// rather than the row layout (each model vectorized over H): the lanes for H ≤ the cell's measured
// max_hidden, a choice by the shape alone, never by M, so a model's bits do not depend on the
// population it trains in. RNNLAB_TRAIN_LAYOUT=rows|lanes forces one layout for every cell
// (tests and benchmarks of both). The lanes layout gathers a group's inputs with 32-bit offsets
// between its models' x, so an x of more than 2^31 / lanes entries per model (≈ 10^8) takes the
// row layout whatever H.
bool use_lanes_layout(const TrainStepCall& c, int64_t lanes, int64_t max_hidden);

// Ω of the models m0 … m1−1 into omega, from the norms their update wrote: in the same tile as
// the update, so the call keeps one parallel region (a second op would add one, and its call).
template <typename T>
void models_omega(const cpu::TrainStep<T>& s, int64_t m0, int64_t m1, T* omega) {
  const int64_t n = s.T_ * s.B;
  for (int64_t m = m0; m < m1; ++m) {
    cpu::omega_of_norms(s.delta_sq + m * n, s.v_sq + m * n, n, s.B, omega + m, static_cast<T*>(nullptr));
  }
}

// Runs the row layout: `update(m)` for every model m, one tile per model (all its rows), then its
// Ω. A model never spans threads, so its result does not depend on the thread count or on the
// models beside it. `work`: the call's multiply-adds.
template <typename T, class Update>
void run_rows(const cpu::TrainStep<T>& s, int64_t work, T* omega, Update update) {
  for_each_tile(make_tiles(s.M, s.B, s.B), work, [&](BatchTile tile) {
    update(tile.model);
    models_omega(s, tile.model, tile.model + 1, omega);
  });
}

// Runs a lanes kernel on every group of models, one tile per group, then the group's Ω: a group
// never spans threads, so a model's result does not depend on the thread count.
template <typename Step>
void run_lanes(const cpu::LanesKernel<Step>& kernel, const Step& s, int64_t work, decltype(s.delta_sq) omega) {
  std::vector<int64_t> groups;
  for (int64_t m0 = 0; m0 < s.M; m0 += kernel.lanes) groups.push_back(m0);
  for_each_tile(groups, work, [&](int64_t m0) {
    kernel.run(s, m0);
    models_omega(s, m0, std::min(m0 + kernel.lanes, s.M), omega);
  });
}

// Runs a checked call of a cell with both layouts, after fill_train_step: the lanes layout where
// use_lanes_layout picks it and `lanes_allowed`, the row layout otherwise; then Ω into the outputs.
// `gemms`: the H × H products per step and row (forward, v_t and ∂W_hh over G gate blocks: 3·G),
// the work estimate that decides whether the call is worth a second thread.
template <typename Step, typename RowKernel>
void run_train_step(const TrainStepCall& c, const Step& s, int64_t gemms, const cpu::LanesKernel<Step>& lanes,
                    RowKernel row_kernel, bool lanes_allowed, TrainStepOutputs& out) {
  using T = std::remove_pointer_t<decltype(s.delta_sq)>;
  T* omega = std::get<6>(out).mutable_data_ptr<T>();
  const int64_t work = RecurrenceShape{c.M, c.T, c.B, c.H}.recurrent_work(gemms);
  if (lanes_allowed && use_lanes_layout(c, lanes.lanes, lanes.max_hidden)) {
    run_lanes(lanes, s, work, omega);
  } else {
    run_rows(s, work, omega, [&](int64_t m) { row_kernel(s, m); });
  }
}

// The op's C++ parameters for RNNLAB_TRAIN_STEP_ARGS, in the schema's order.
#define RNNLAB_TRAIN_STEP_PARAMS                                                                           \
  const at::Tensor& x, const at::Tensor& target, at::TensorList params, at::TensorList state,             \
      const at::Tensor& lr, const std::optional<at::Tensor>& lr_min, double cosine_factor,                 \
      const std::optional<at::Tensor>& momentum, const std::optional<at::Tensor>& beta1,                   \
      const std::optional<at::Tensor>& beta2, const std::optional<at::Tensor>& clip, c10::string_view loss, \
      double loss_scale, c10::string_view optimizer, bool safeguard, double eps, int64_t step,             \
      int64_t readout_steps

// The op's shared arguments after the call's checks, as fill_train_step takes them.
#define RNNLAB_FILL_TRAIN_STEP_ARGS \
  x, target, params, state, lr, lr_min, cosine_factor, momentum, beta1, beta2, clip, loss_scale, safeguard, eps, step

// The schema's arguments and returns that every cell's fused step shares, to append after
// "<cell>_train_step(": the cell's own options follow them.
#define RNNLAB_TRAIN_STEP_ARGS                                                                              \
  "Tensor x, Tensor target, Tensor(a!)[] params, Tensor(b!)[] state, Tensor lr, Tensor? lr_min, "         \
  "float cosine_factor, Tensor? momentum, Tensor? beta1, Tensor? beta2, Tensor? clip, str loss, "          \
  "float loss_scale, str optimizer, bool safeguard, float eps, int step, int readout_steps"
#define RNNLAB_TRAIN_STEP_RETURNS \
  "(Tensor loss, Tensor norm, Tensor clipped, Tensor fallback, Tensor delta_sq, Tensor v_sq, Tensor omega)"

}  // namespace rnnlab
