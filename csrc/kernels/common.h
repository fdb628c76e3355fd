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

// A read-only [M, T, B, H] sequence whose rows (H values each) are contiguous but may lie anywhere:
// row (m, t, b) starts at data + m·m_stride + t·t_stride + b·b_stride. The backward kernels read the
// loss gradients ∂⁺L/∂h_t (and the LSTM's ∂⁺L/∂c_t) through it, so that a gradient broadcast over
// models, steps or batch rows — that of a sum or a mean: stride 0 there — reaches them without a
// dense copy. A dense tensor's strides are T·B·H, B·H and H. A null data pointer means "all zero".
template <typename T>
struct SeqRows {
  const T* data;
  int64_t m_stride, t_stride, b_stride;
  const T* row(int64_t m, int64_t t, int64_t b) const { return data + m * m_stride + t * t_stride + b * b_stride; }
};

// A contiguous range of batch rows of one model: the unit of parallel work. Rows of a model
// are independent, so tiles never synchronize with each other.
struct BatchTile {
  int64_t model;
  int64_t row_begin, row_end;
};

}  // namespace rnnlab
