// ATen glue of the validation forward (kernels/cpu/evaluate.h): the ops rnnlab::elman_evaluate,
// lstm_evaluate and gru_evaluate, their parameter shapes, and one parallel region over blocks of
// sequences. A sequence's outputs do not depend on the block it runs in, so any split is exact.
#include <torch/library.h>

#include <string>
#include <vector>

#include "kernels/cpu/evaluate.h"
#include "torch/checks.h"
#include "torch/no_derivative.h"
#include "torch/recurrence_glue.h"
#include "torch/tiles.h"

namespace rnnlab {
namespace {

// A parameter of a cell as the checks name it.
struct EvalParam {
  const char* name;
  const char* shape;
};

std::vector<EvalParam> eval_params(cpu::EvalCell cell) {
  switch (cell) {
    case cpu::EvalCell::Elman:
      return {{"weight_ih", "[M, H, I]"}, {"weight_hh", "[M, H, H]"}, {"bias", "[M, H]"}, {"weight_out", "[M, O, H]"},
              {"bias_out", "[M, O]"}};
    case cpu::EvalCell::Lstm:
      return {{"weight_ih", "[M, 4H, I]"}, {"weight_hh", "[M, 4H, H]"}, {"bias", "[M, 4H]"},
              {"weight_out", "[M, O, H]"}, {"bias_out", "[M, O]"}};
    case cpu::EvalCell::Gru:
      return {{"weight_ih", "[M, 3H, I]"}, {"weight_hh", "[M, 3H, H]"}, {"bias", "[M, 3H]"}, {"bias_hn", "[M, H]"},
              {"weight_out", "[M, O, H]"}, {"bias_out", "[M, O]"}};
  }
  return {};
}

at::Tensor evaluate_cpu(cpu::EvalCell cell, const at::Tensor& x, at::TensorList params, int64_t readout_steps,
                        Activation act) {
  check_float("x", x);
  check_dim("x", x, 4, "[M, T, B, I]");
  TORCH_CHECK_VALUE(x.device().is_cpu(), "x must be on the CPU");
  const std::vector<EvalParam> specs = eval_params(cell);
  TORCH_CHECK_VALUE(params.size() == specs.size(), "params must hold ", specs.size(), " tensors (", specs.front().name,
                    ", …, ", specs.back().name, "), got ", params.size());
  const int64_t G = cell == cpu::EvalCell::Elman ? 1 : cell == cpu::EvalCell::Lstm ? 4 : 3;
  const size_t out = specs.size() - 2;
  auto name = [&](size_t p) { return "params[" + std::to_string(p) + "] (" + specs[p].name + ")"; };
  check_dim(name(1).c_str(), params[1], 3, specs[1].shape);
  check_dim(name(out).c_str(), params[out], 3, specs[out].shape);
  const int64_t M = x.size(0), T = x.size(1), B = x.size(2), I = x.size(3), H = params[1].size(2),
                O = params[out].size(1);
  TORCH_CHECK_VALUE(T >= 1 && B >= 1 && I >= 1, "x must have T, B, I >= 1, got ", x.sizes());
  TORCH_CHECK_VALUE(H >= 1 && O >= 1, "the hidden size H and the outputs O must be >= 1, got H = ", H, ", O = ", O);
  TORCH_CHECK_VALUE(1 <= readout_steps && readout_steps <= T, "readout_steps must be in [1, T = ", T, "], got ",
                    readout_steps);
  std::vector<std::vector<int64_t>> shapes = {{M, G * H, I}, {M, G * H, H}, {M, G * H}};
  if (cell == cpu::EvalCell::Gru) shapes.push_back({M, H});
  shapes.push_back({M, O, H});
  shapes.push_back({M, O});
  for (size_t p = 0; p < specs.size(); ++p) check_like(name(p).c_str(), params[p], x, shapes[p], specs[p].shape);

  at::Tensor y = at::empty({M, readout_steps, B, O}, x.options());
  if (M == 0) return y;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "evaluate", [&] {
    cpu::Evaluate<scalar_t> s{};
    s.M = M, s.T_ = T, s.B = B, s.I = I, s.H = H, s.O = O, s.K = readout_steps;
    s.cell = cell;
    s.act = act;
    s.x = x.const_data_ptr<scalar_t>();
    for (size_t p = 0; p < specs.size(); ++p) s.params[p] = params[p].const_data_ptr<scalar_t>();
    s.y = y.mutable_data_ptr<scalar_t>();
    const auto kernel = cpu::evaluate_kernel<scalar_t>(cpu::selected_isa());
    std::vector<BatchTile> blocks;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t b0 = 0; b0 < B; b0 += kernel.lanes) blocks.push_back({m, b0, std::min(B, b0 + kernel.lanes)});
    const int64_t work = M * T * B * G * H * (H + I);
    for_each_tile(blocks, work, [&](const BatchTile& b) { kernel.run(s, b.model, b.row_begin); });
  });
  return y;
}

at::Tensor elman_evaluate_cpu(const at::Tensor& x, at::TensorList params, int64_t readout_steps,
                              c10::string_view nonlinearity) {
  return evaluate_cpu(cpu::EvalCell::Elman, x, params, readout_steps, parse_activation(nonlinearity));
}

at::Tensor lstm_evaluate_cpu(const at::Tensor& x, at::TensorList params, int64_t readout_steps) {
  return evaluate_cpu(cpu::EvalCell::Lstm, x, params, readout_steps, Activation::Identity);
}

at::Tensor gru_evaluate_cpu(const at::Tensor& x, at::TensorList params, int64_t readout_steps) {
  return evaluate_cpu(cpu::EvalCell::Gru, x, params, readout_steps, Activation::Identity);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnlab, m) {
  // y [M, K, B, O] at the last K = readout_steps steps; params in the cell's record order
  m.def("elman_evaluate(Tensor x, Tensor[] params, int readout_steps, str nonlinearity=\"tanh\") -> Tensor");
  m.def("lstm_evaluate(Tensor x, Tensor[] params, int readout_steps) -> Tensor");
  m.def("gru_evaluate(Tensor x, Tensor[] params, int readout_steps) -> Tensor");
}

TORCH_LIBRARY_IMPL(rnnlab, CPU, m) {
  m.impl("elman_evaluate", &elman_evaluate_cpu);
  m.impl("lstm_evaluate", &lstm_evaluate_cpu);
  m.impl("gru_evaluate", &gru_evaluate_cpu);
}

TORCH_LIBRARY_IMPL(rnnlab, Autograd, m) { register_no_derivative(m, {"elman_evaluate", "lstm_evaluate", "gru_evaluate"}); }

}  // namespace rnnlab
