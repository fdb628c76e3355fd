// Definitions shared by every torch-free kernel (CPU and CUDA).
#pragma once

#include <cstdint>
#include <type_traits>

namespace rnnlab {

// φ of an Elman cell. The backward pass needs φ'(a) only through h = φ(a):
// tanh: 1 − h², relu: [h > 0], sigmoid: h(1 − h), identity: 1.
enum class Activation : int { Tanh = 0, Relu = 1, Sigmoid = 2, Identity = 3 };

// SPEC §2.5: steps with ‖δ_t‖² below this bound are masked out of Pascanu's Ω.
constexpr double kOmegaBound = 1e-20;

// Sizes of a population-first recurrence call (DESIGN §2): M models, T steps, B batch rows,
// H hidden units. Every tensor is dense and row-major in the order its shape is written.
struct RecurrenceShape {
  int64_t M, T, B, H;
  // multiply-adds of the recurrent GEMMs of one pass, for a cell with `gates` H x H blocks in W_hh
  int64_t recurrent_work(int64_t gates) const { return M * T * B * H * H * gates; }
};

// A contiguous range of batch rows of one model: the unit of parallel work. Rows of a model
// are independent, so tiles never synchronize with each other.
struct BatchTile {
  int64_t model;
  int64_t row_begin, row_end;
};

}  // namespace rnnlab
