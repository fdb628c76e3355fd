// The per-step path of the Elman RNN for hidden sizes whose w_hh does not fit on chip: the caller
// runs each step's recurrent product as a batched cuBLAS GEMM, and these kernels do everything
// else of the step in one fused pass (API in elman.cuh). Math mirrors kernels/cpu/elman_impl.h.
#include "kernels/cuda/activations.cuh"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/elman.cuh"
#include "kernels/cuda/launch.cuh"

namespace rnnlab::cuda {

namespace {

constexpr int kPointwiseThreads = 256;
constexpr int kRowThreads = 128;  // one block per (model, batch row) in backward

template <typename T>
__global__ void forward_step_kernel(RecurrenceShape s, int64_t t, Activation act, const T* __restrict__ xp,
                                    const T* __restrict__ rec, T* __restrict__ hs) {
  const int64_t n = s.M * s.B * s.H;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t mb = e / s.H, j = e % s.H, m = mb / s.B, b = mb % s.B;
    const int64_t at = ((m * s.T + t) * s.B + b) * s.H + j;
    hs[at] = Phi<T>::f(act, xp[at] + rec[e]);
  }
}

// One block per (model, batch row). Pass 1 over the row: ‖v_t‖², and δ_{t-1}, ‖δ_{t-1}‖², u_{t-1}
// (or grad_h0); block sums; pass 2: the regularizer row κ_t v_t, which needs ‖v_t‖².
template <typename T>
__global__ void backward_step_kernel(RecurrenceShape s, int64_t t, Activation act, const T* __restrict__ v,
                                     const T* __restrict__ grad_hs, const T* __restrict__ hs, T* __restrict__ grad_xp,
                                     T* __restrict__ grad_h0, T* __restrict__ delta_sq, T* __restrict__ v_sq,
                                     T* __restrict__ reg_v) {
  const int64_t mb = blockIdx.x, m = mb / s.B, b = mb % s.B;
  const T* vrow = v ? v + mb * s.H : nullptr;
  const int64_t prev = t > 0 ? ((m * s.T + t - 1) * s.B + b) * s.H : 0;  // row of step t − 1
  T a = T(0), c = T(0);
  for (int64_t j = threadIdx.x; j < s.H; j += blockDim.x) {
    const T vv = vrow ? vrow[j] : T(0);
    a += vv * vv;
    if (t > 0) {
      const T d = grad_hs[prev + j] + vv;
      c += d * d;
      grad_xp[prev + j] = d * dphi_from_h(act, hs[prev + j]);
    } else {
      grad_h0[mb * s.H + j] = vv;
    }
  }
  block_sum2(a, c);
  const int64_t stat = (m * s.T + t) * s.B + b;  // [M, T, B] index of step t (meaningless for t = T)
  if (threadIdx.x == 0) {
    if (vrow) v_sq[stat] = a;
    if (t > 0) delta_sq[stat - s.B] = c;
  }
  if (reg_v && vrow) {  // κ_t = m_t (r_t − 1)/c_t, SPEC §2.5; delta_sq_t came from the previous call
    const T ct = delta_sq[stat];
    const T kappa = ct >= T(kOmegaBound) ? (a / ct - T(1)) / ct : T(0);
    T* out = reg_v + stat * s.H;
    for (int64_t j = threadIdx.x; j < s.H; j += blockDim.x) out[j] = kappa * vrow[j];
  }
}

}  // namespace

template <typename T>
cudaError_t elman_forward_step(const RecurrenceShape& s, int64_t t, Activation act, const T* xp, const T* rec, T* hs,
                               cudaStream_t stream) {
  const int64_t n = s.M * s.B * s.H;
  if (n == 0) return cudaSuccess;
  const int64_t blocks = std::min<int64_t>((n + kPointwiseThreads - 1) / kPointwiseThreads, 1 << 16);
  return launch(&forward_step_kernel<T>, dim3(static_cast<unsigned>(blocks)), dim3(kPointwiseThreads), 0, stream, s, t,
                act, xp, rec, hs);
}

template <typename T>
cudaError_t elman_backward_step(const RecurrenceShape& s, int64_t t, Activation act, const T* v, const T* grad_hs,
                                const T* hs, T* grad_xp, T* grad_h0, T* delta_sq, T* v_sq, T* reg_v,
                                cudaStream_t stream) {
  const int64_t rows = s.M * s.B;
  if (rows == 0 || s.H == 0) return cudaSuccess;
  if (rows > 0x7fffffff || t < 0 || t > s.T || (v == nullptr) != (t == s.T)) return cudaErrorInvalidValue;
  return launch(&backward_step_kernel<T>, dim3(static_cast<unsigned>(rows)), dim3(kRowThreads), 0, stream, s, t, act, v,
                grad_hs, hs, grad_xp, grad_h0, delta_sq, v_sq, reg_v);
}

template cudaError_t elman_forward_step<float>(const RecurrenceShape&, int64_t, Activation, const float*, const float*,
                                               float*, cudaStream_t);
template cudaError_t elman_forward_step<double>(const RecurrenceShape&, int64_t, Activation, const double*,
                                                const double*, double*, cudaStream_t);
template cudaError_t elman_backward_step<float>(const RecurrenceShape&, int64_t, Activation, const float*,
                                                const float*, const float*, float*, float*, float*, float*, float*,
                                                cudaStream_t);
template cudaError_t elman_backward_step<double>(const RecurrenceShape&, int64_t, Activation, const double*,
                                                 const double*, const double*, double*, double*, double*, double*,
                                                 double*, cudaStream_t);

}  // namespace rnnlab::cuda
