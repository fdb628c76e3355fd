// ATen glue for the diagonal linear recurrence ops: schemas, input checks, the (model, rows,
// columns) tiling, and the reduction of the kernels' per-tile partial sums. Math in csrc/kernels.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "kernels/cpu/diag.h"
#include "torch/checks.h"
#include "torch/no_derivative.h"
#include "torch/tiles.h"

namespace rnnlab {
namespace {

void check_diag_dtype(const char* name, const at::Tensor& t) {
  const auto s = t.scalar_type();
  TORCH_CHECK_TYPE(s == at::kFloat || s == at::kDouble || s == at::kComplexFloat || s == at::kComplexDouble, name,
                   " must be float32, float64, complex64 or complex128, got ", s);
  TORCH_CHECK_VALUE(t.is_contiguous(), name, " must be contiguous");
}

// Checks u (or hs) [M, T, B, N], lam [M, N], h0 [M, B, N].
cpu::DiagShape check_diag(const at::Tensor& u, const at::Tensor& lam, const at::Tensor& h0, const char* u_name) {
  check_diag_dtype(u_name, u);
  check_dim(u_name, u, 4, "[M, T, B, N]");
  const int64_t M = u.size(0), T = u.size(1), B = u.size(2), N = u.size(3);
  check_like("lam", lam, u, {M, N}, "[M, N]");
  check_like("h0", h0, u, {M, B, N}, "[M, B, N]");
  return {M, T, B, N * (u.is_complex() ? 2 : 1), u.is_complex(), 1, 1};
}

// Tiles of (model, batch rows, columns) so that every thread has work even when M is small:
// rows are split first (each row slot costs one partial copy of grad_λ and of the statistics),
// columns only when there are too few rows, in pieces of at least 64 real columns. Sets s.R, s.C.
std::vector<cpu::DiagTile> plan_tiles(cpu::DiagShape& s) {
  std::vector<cpu::DiagTile> tiles;
  if (s.M == 0 || s.T == 0 || s.B == 0 || s.Nr == 0) return tiles;
  const int64_t threads = at::get_num_threads();
  const int64_t want = (threads + s.M - 1) / s.M;  // pieces per model
  const int64_t rows = (s.B + std::min(s.B, want) - 1) / std::min(s.B, want);
  s.R = (s.B + rows - 1) / rows;
  const int64_t col_pieces = std::max<int64_t>(1, std::min((want + s.R - 1) / s.R, s.Nr / 64));
  const int64_t cols = ((s.Nr + col_pieces - 1) / col_pieces + 15) / 16 * 16;  // even and vector-aligned
  s.C = (s.Nr + cols - 1) / cols;
  for (int64_t m = 0; m < s.M; ++m)
    for (int64_t r = 0; r < s.R; ++r)
      for (int64_t c = 0; c < s.C; ++c)
        tiles.push_back({m, r * rows, std::min(s.B, (r + 1) * rows), c * cols, std::min(s.Nr, (c + 1) * cols), r, c});
  return tiles;
}

template <typename T>
const T* real_ptr(const at::Tensor& t) { return static_cast<const T*>(t.const_data_ptr()); }
template <typename T>
T* real_ptr(at::Tensor& t) { return static_cast<T*>(t.mutable_data_ptr()); }

// Buffers for the kernels' partial sums: every entry is written when there are tiles, so they need
// zeroing only when there are none (then they hold the value of an empty sum).
at::Tensor partial(at::IntArrayRef sizes, const at::TensorOptions& options, bool written) {
  return written ? at::empty(sizes, options) : at::zeros(sizes, options);
}

// [R, M, T, Nr] per-slot sums of squared lanes -> [M, T, N] mean over the B batch rows of |·|²
// (NaN when B = 0, as torch.mean of nothing).
at::Tensor mean_abs_sq(at::Tensor part, const cpu::DiagShape& s) {
  at::Tensor total;
  if (s.complex) total = part.unflatten(-1, {s.Nr / 2, 2}).sum({0, 4});
  else total = s.R == 1 ? part.select(0, 0) : part.sum(0);
  return total.div_(static_cast<double>(s.B));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> diag_forward_cpu(const at::Tensor& u, const at::Tensor& lam,
                                                                const at::Tensor& h0, bool stats) {
  cpu::DiagShape s = check_diag(u, lam, h0, "u");
  const auto tiles = plan_tiles(s);
  const auto real = u.options().dtype(c10::toRealValueType(u.scalar_type()));
  const int64_t N = u.size(3);
  auto hs = at::empty_like(u, at::MemoryFormat::Contiguous);
  auto h_part = partial({stats ? s.R : 0, s.M, s.T, s.Nr}, real, !tiles.empty());
  auto s_part = partial({stats ? s.R : 0, s.M, s.T, s.Nr}, real, !tiles.empty());
  AT_DISPATCH_FLOATING_TYPES(c10::toRealValueType(u.scalar_type()), "diag_forward", [&] {
    const auto& k = cpu::diag_kernels<scalar_t>(cpu::selected_isa());
    for_each_tile(tiles, s.M * s.T * s.B * s.Nr, [&](const cpu::DiagTile& tile) {
      k.forward(s, tile, real_ptr<scalar_t>(u), real_ptr<scalar_t>(lam), real_ptr<scalar_t>(h0), real_ptr<scalar_t>(hs),
                stats ? real_ptr<scalar_t>(h_part) : nullptr, stats ? real_ptr<scalar_t>(s_part) : nullptr);
    });
  });
  if (!stats) return {hs, at::empty({s.M, 0, N}, real), at::empty({s.M, 0, N}, real)};
  return {hs, mean_abs_sq(h_part, s), mean_abs_sq(s_part, s)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> diag_backward_cpu(
    const at::Tensor& grad_hs, const at::Tensor& hs, const at::Tensor& h0, const at::Tensor& lam) {
  cpu::DiagShape s = check_diag(hs, lam, h0, "hs");
  check_like("grad_hs", grad_hs, hs, hs.sizes(), "[M, T, B, N]");
  const auto tiles = plan_tiles(s);
  const auto real = hs.options().dtype(c10::toRealValueType(hs.scalar_type()));
  auto grad_u = at::empty_like(hs, at::MemoryFormat::Contiguous);
  auto grad_h0 = at::zeros_like(h0, at::MemoryFormat::Contiguous);  // stays 0 when T = 0
  auto lam_p = partial({s.R, s.M, s.Nr}, real, !tiles.empty());
  auto lam_q = partial({s.complex ? s.R : 0, s.M, s.Nr}, real, !tiles.empty());
  auto dsq_part = partial({s.C, s.M, s.T, s.B}, real, !tiles.empty());
  auto vsq_part = partial({s.C, s.M, s.T, s.B}, real, !tiles.empty());
  AT_DISPATCH_FLOATING_TYPES(c10::toRealValueType(hs.scalar_type()), "diag_backward", [&] {
    const auto& k = cpu::diag_kernels<scalar_t>(cpu::selected_isa());
    for_each_tile(tiles, s.M * s.T * s.B * s.Nr, [&](const cpu::DiagTile& tile) {
      k.backward(s, tile, real_ptr<scalar_t>(grad_hs), real_ptr<scalar_t>(hs), real_ptr<scalar_t>(h0),
                 real_ptr<scalar_t>(lam), real_ptr<scalar_t>(grad_u), real_ptr<scalar_t>(grad_h0),
                 real_ptr<scalar_t>(lam_p), s.complex ? real_ptr<scalar_t>(lam_q) : nullptr,
                 real_ptr<scalar_t>(dsq_part), real_ptr<scalar_t>(vsq_part));
    });
  });
  if (tiles.empty()) grad_u.zero_();
  // grad_λ = Σ conj(h_{t-1}) δ_t: re = Σ (h_re δ_re + h_im δ_im), im = Σ (h_re δ_im − h_im δ_re).
  at::Tensor grad_lam = lam_p.sum(0);
  if (s.complex) {
    const auto p = grad_lam.unflatten(-1, {s.Nr / 2, 2}), q = lam_q.sum(0).unflatten(-1, {s.Nr / 2, 2});
    grad_lam = at::complex(p.select(-1, 0) + p.select(-1, 1), q.select(-1, 0) - q.select(-1, 1));
  }
  auto slots_sum = [&](const at::Tensor& t) { return s.C == 1 ? t.select(0, 0) : t.sum(0); };
  return {grad_u, grad_lam, grad_h0, slots_sum(dsq_part), slots_sum(vsq_part)};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnlab, m) {
  m.def("diag_forward(Tensor u, Tensor lam, Tensor h0, bool stats) -> (Tensor hs, Tensor h_sq, Tensor s_sq)");
  m.def(
      "diag_backward(Tensor grad_hs, Tensor hs, Tensor h0, Tensor lam) -> "
      "(Tensor grad_u, Tensor grad_lam, Tensor grad_h0, Tensor delta_sq, Tensor v_sq)");
}

TORCH_LIBRARY_IMPL(rnnlab, CPU, m) {
  m.impl("diag_forward", &diag_forward_cpu);
  m.impl("diag_backward", &diag_backward_cpu);
}

TORCH_LIBRARY_IMPL(rnnlab, Autograd, m) { register_no_derivative(m, {"diag_forward", "diag_backward"}); }

}  // namespace rnnlab
