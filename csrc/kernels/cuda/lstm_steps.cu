// The per-step path of the LSTM for hidden sizes whose w_hh does not fit on chip: the caller runs
// each step's recurrent product as a batched cuBLAS GEMM, and these kernels do the rest of the
// step in one fused pass (API in lstm.cuh; cell math in lstm_cell.cuh).
#include <algorithm>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/lstm.cuh"
#include "kernels/cuda/lstm_cell.cuh"

namespace rnnlab::cuda {

namespace {

constexpr int kPointwiseThreads = 256;
constexpr int kRowThreads = 128;  // one block per (model, batch row) in backward

template <typename T>
__global__ void forward_step_kernel(RecurrenceShape s, int64_t t, const T* __restrict__ xp, const T* __restrict__ rec,
                                    const T* __restrict__ c0, T* __restrict__ hs, T* __restrict__ cs,
                                    T* __restrict__ gates) {
  const int64_t n = s.M * s.B * s.H, H = s.H;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t mb = e / H, j = e % H, m = mb / s.B, b = mb % s.B;
    const int64_t row = (m * s.T + t) * s.B + b;  // [M, T, B] index of (m, t, b)
    T z[4], gate[4], c, h;
#pragma unroll
    for (int g = 0; g < 4; ++g) z[g] = xp[row * 4 * H + g * H + j] + rec[mb * 4 * H + g * H + j];
    const T c_prev = t > 0 ? cs[(row - s.B) * H + j] : c0[mb * H + j];
    lstm_cell_forward(z, c_prev, gate, c, h);
#pragma unroll
    for (int g = 0; g < 4; ++g) gates[row * 4 * H + g * H + j] = gate[g];
    cs[row * H + j] = c;
    hs[row * H + j] = h;
  }
}

// One block per (model, batch row): ‖v_t‖², then the cell backward of step t − 1 (or the initial
// state gradients at t = 0).
template <typename T>
__global__ void backward_step_kernel(RecurrenceShape s, int64_t t, const T* __restrict__ v,
                                     const T* __restrict__ grad_hs, const T* __restrict__ grad_cs,
                                     const T* __restrict__ cs, const T* __restrict__ gates, const T* __restrict__ c0,
                                     T* __restrict__ dc, T* __restrict__ grad_xp, T* __restrict__ grad_h0,
                                     T* __restrict__ grad_c0, T* __restrict__ delta_sq, T* __restrict__ v_sq) {
  const int64_t mb = blockIdx.x, m = mb / s.B, b = mb % s.B, H = s.H;
  const T* vrow = v ? v + mb * H : nullptr;
  T* dcrow = dc + mb * H;
  const int64_t x = t - 1;                              // the cell step processed here (t ≥ 1)
  const int64_t row = (m * s.T + x) * s.B + b;          // [M, T, B] index of (m, x, b)
  T a = T(0), sq = T(0);
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
    const T vv = vrow ? vrow[j] : T(0);
    a += vv * vv;
    if (t > 0) {
      const T d = grad_hs[row * H + j] + vv;
      sq += d * d;
      const T* gt = gates + row * 4 * H + j;
      const T gate[4] = {gt[0], gt[H], gt[2 * H], gt[3 * H]};
      const T c_prev = x > 0 ? cs[(row - s.B) * H + j] : c0[mb * H + j];
      const T e_in = dcrow[j] + (grad_cs ? grad_cs[row * H + j] : T(0));
      T dz[4];
      dcrow[j] = lstm_cell_backward(d, e_in, gate, cs[row * H + j], c_prev, dz);
#pragma unroll
      for (int g = 0; g < 4; ++g) grad_xp[row * 4 * H + g * H + j] = dz[g];
    } else {
      grad_h0[mb * H + j] = vv;
      grad_c0[mb * H + j] = dcrow[j];
    }
  }
  block_sum2(a, sq);
  if (threadIdx.x == 0) {
    if (vrow) v_sq[(m * s.T + t) * s.B + b] = a;
    if (t > 0) delta_sq[row] = sq;
  }
}

}  // namespace

template <typename T>
cudaError_t lstm_forward_step(const RecurrenceShape& s, int64_t t, const T* xp, const T* rec, const T* c0, T* hs,
                              T* cs, T* gates, cudaStream_t stream) {
  const int64_t n = s.M * s.B * s.H;
  if (n == 0) return cudaSuccess;
  const int64_t blocks = std::min<int64_t>((n + kPointwiseThreads - 1) / kPointwiseThreads, 1 << 16);
  return launch(&forward_step_kernel<T>, dim3(static_cast<unsigned>(blocks)), dim3(kPointwiseThreads), 0, stream, s, t,
                xp, rec, c0, hs, cs, gates);
}

template <typename T>
cudaError_t lstm_backward_step(const RecurrenceShape& s, int64_t t, const T* v, const T* grad_hs, const T* grad_cs,
                               const T* cs, const T* gates, const T* c0, T* dc, T* grad_xp, T* grad_h0, T* grad_c0,
                               T* delta_sq, T* v_sq, cudaStream_t stream) {
  const int64_t rows = s.M * s.B;
  if (rows == 0 || s.H == 0) return cudaSuccess;
  if (rows > 0x7fffffff || t < 0 || t > s.T || (v == nullptr) != (t == s.T)) return cudaErrorInvalidValue;
  return launch(&backward_step_kernel<T>, dim3(static_cast<unsigned>(rows)), dim3(kRowThreads), 0, stream, s, t, v,
                grad_hs, grad_cs, cs, gates, c0, dc, grad_xp, grad_h0, grad_c0, delta_sq, v_sq);
}

#define RNNLAB_INSTANTIATE(T)                                                                                        \
  template cudaError_t lstm_forward_step<T>(const RecurrenceShape&, int64_t, const T*, const T*, const T*, T*, T*,  \
                                            T*, cudaStream_t);                                                     \
  template cudaError_t lstm_backward_step<T>(const RecurrenceShape&, int64_t, const T*, const T*, const T*,         \
                                             const T*, const T*, const T*, T*, T*, T*, T*, T*, T*, cudaStream_t);
RNNLAB_INSTANTIATE(float)
RNNLAB_INSTANTIATE(double)
#undef RNNLAB_INSTANTIATE

}  // namespace rnnlab::cuda
