// The trainer's per-update records on the CPU, one op call each instead of many small ATen calls:
// * veg_flags_add: the VEG flags of SPEC §3.3 (python/rnnlab/train/veg.py, VegCounter.add),
// * interval_sums_add: the sums behind the logged interval means and the run's totals
//   (python/rnnlab/train/trainer.py, _Accumulator.add).
// Their torch expressions in those files are the definitions (and what other devices run); these
// loops compute the same float64 values bit for bit: every value takes the same IEEE operations in
// the same order (one division and one square root per ratio, one addition per sum and update),
// and the medians are selections, not arithmetic (tests/test_veg.py compares both on NaN, ±inf,
// zero norms, compacted populations and refresh updates).
//
// Between two fused training steps the ≈ 50 small calls cost about twice what they cost in a loop
// of their own (their code and data are out of the caches): ≈ 200 µs of a 670 µs update of 32
// Elman models at H = 8 (docs/sweeps.md, "The trainer around the fused step"). The loops run on the
// calling thread: a parallel region would cost more than the work (M·B ratios).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "torch/checks.h"
#include "torch/no_derivative.h"

namespace rnnlab {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// torch.nanmedian of `values`: the lower of the two middle non-NaN values, NaN when there are
// none (torch.median agrees where no value is NaN). Reorders `values`.
double lower_nanmedian(std::vector<double>& values) {
  const auto end = std::remove_if(values.begin(), values.end(), [](double v) { return std::isnan(v); });
  const auto n = end - values.begin();
  if (n == 0) return kNaN;
  const auto mid = values.begin() + (n - 1) / 2;
  std::nth_element(values.begin(), mid, end);
  return *mid;
}

// A float64 [M]-like state tensor the op updates in place.
void check_state(const char* name, const at::Tensor& t, at::IntArrayRef sizes, const char* shape) {
  TORCH_CHECK_TYPE(t.scalar_type() == at::kDouble, name, " must be float64, got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.is_cpu() && t.is_contiguous(), name, " must be a contiguous CPU tensor");
  TORCH_CHECK_VALUE(t.sizes() == sizes, name, " must have shape ", shape, " = ", sizes, ", got ", t.sizes());
}

// idx: the int64 [m] indices (distinct, in [0, M)) of the models the update trained.
std::vector<int64_t> checked_indices(const at::Tensor& idx, int64_t M) {
  TORCH_CHECK_TYPE(idx.scalar_type() == at::kLong, "idx must be int64, got ", idx.scalar_type());
  TORCH_CHECK_VALUE(idx.dim() == 1 && idx.is_cpu(), "idx must be a 1-D CPU tensor, got ", idx.sizes());
  const auto c = idx.contiguous();
  std::vector<int64_t> out(c.const_data_ptr<int64_t>(), c.const_data_ptr<int64_t>() + c.numel());
  for (int64_t m : out) TORCH_CHECK_VALUE(m >= 0 && m < M, "idx must be in [0, ", M, "), got ", m);
  return out;
}

// Per-model values of one update, read as float64 (exactly) whatever their dtype (float32/64 or
// bool) and strides, without an ATen conversion call.
std::vector<double> as_doubles(const char* name, const at::Tensor& t, int64_t m) {
  TORCH_CHECK_VALUE(t.dim() == 1 && t.size(0) == m && t.is_cpu(), name, " must be a CPU tensor of shape [m] = [", m,
                    "], got ", t.sizes());
  std::vector<double> out(m);
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBool, t.scalar_type(), "as_doubles", [&] {
    const scalar_t* p = t.const_data_ptr<scalar_t>();
    for (int64_t j = 0; j < m; ++j) out[j] = static_cast<double>(p[j * t.stride(0)]);
  });
  return out;
}

void veg_flags_add(const at::Tensor& idx, const at::Tensor& delta_sq, const at::Tensor& norm, const at::Tensor& steps,
                   const at::Tensor& vanishing, const at::Tensor& exploding, const at::Tensor& norms,
                   const at::Tensor& reference, int64_t update, double eps_vanish, double eps_explode, double jump,
                   int64_t refresh) {
  TORCH_CHECK_VALUE(norms.dim() == 2 && norms.size(1) >= 1, "norms must have shape [M, window], got ", norms.sizes());
  const int64_t M = norms.size(0), W = norms.size(1);
  check_state("norms", norms, {M, W}, "[M, window]");
  check_state("steps", steps, {M}, "[M]");
  check_state("vanishing", vanishing, {M}, "[M]");
  check_state("exploding", exploding, {M}, "[M]");
  check_state("reference", reference, {M}, "[M]");
  const auto models = checked_indices(idx, M);
  const int64_t m = static_cast<int64_t>(models.size());
  check_float("delta_sq", delta_sq);
  TORCH_CHECK_VALUE(delta_sq.dim() == 3 && delta_sq.size(0) == m && delta_sq.size(1) >= 1 && delta_sq.is_cpu(),
                    "delta_sq must be a CPU tensor of shape [m, T, B] with m = ", m, " and T >= 1, got ",
                    delta_sq.sizes());
  TORCH_CHECK_VALUE(update >= 0, "update must be >= 0, got ", update);
  TORCH_CHECK_VALUE(refresh >= 1, "refresh must be >= 1, got ", refresh);
  const auto norm_d = as_doubles("norm", norm, m);
  const int64_t T = delta_sq.size(1), B = delta_sq.size(2);
  double* ref = reference.mutable_data_ptr<double>();
  double* window = norms.mutable_data_ptr<double>();
  std::vector<double> buffer;
  if (update % refresh == 0) {  // the window's median, before this update's norm joins it
    for (int64_t i = 0; i < M; ++i) {
      buffer.assign(window + i * W, window + (i + 1) * W);
      ref[i] = lower_nanmedian(buffer);
    }
  }
  double *n_steps = steps.mutable_data_ptr<double>(), *n_vanishing = vanishing.mutable_data_ptr<double>();
  double* n_exploding = exploding.mutable_data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES(delta_sq.scalar_type(), "veg_flags_add", [&] {
    const scalar_t* d = delta_sq.const_data_ptr<scalar_t>();
    for (int64_t j = 0; j < m; ++j) {
      const scalar_t* first = d + j * T * B;
      const scalar_t* last = first + (T - 1) * B;
      // R_1 = sqrt(‖δ_1‖² / ‖δ_T‖²) per sample; no ratio (NaN) where ‖δ_T‖ = 0 or either is NaN
      buffer.resize(B);
      double largest = -std::numeric_limits<double>::infinity();
      for (int64_t b = 0; b < B; ++b) {
        const double l = double(last[b]);
        buffer[b] = l > 0 ? std::sqrt(double(first[b]) / l) : kNaN;
        if (!std::isnan(buffer[b])) largest = std::max(largest, buffer[b]);
      }
      const double median = lower_nanmedian(buffer);
      const int64_t i = models[j];
      const double g = norm_d[j];
      const bool finite = std::isfinite(g);
      const bool jumped = finite && g > jump * ref[i];
      n_steps[i] += 1.0;
      n_vanishing[i] += median < eps_vanish ? 1.0 : 0.0;
      n_exploding[i] += largest > eps_explode || jumped ? 1.0 : 0.0;
      window[i * W + update % W] = finite ? g : kNaN;
    }
  });
}

// sums: the float64 [M] running sums loss, norm, omega, count, norm_total, norm_count, clipped,
// fallbacks (in _Accumulator's order); norm_max [M] the largest finite norm so far.
void interval_sums_add(const at::Tensor& idx, const at::Tensor& loss, const at::Tensor& norm, const at::Tensor& omega,
                       const at::Tensor& clipped, const at::Tensor& fallback, at::TensorList sums,
                       const at::Tensor& norm_max) {
  TORCH_CHECK_VALUE(sums.size() == 8,
                    "sums must be [loss, norm, omega, count, norm_total, norm_count, clipped, fallbacks], got ",
                    sums.size(), " tensors");
  TORCH_CHECK_VALUE(norm_max.dim() == 1, "norm_max must have shape [M], got ", norm_max.sizes());
  const int64_t M = norm_max.size(0);
  check_state("norm_max", norm_max, {M}, "[M]");
  for (const auto& s : sums) check_state("sums[i]", s, {M}, "[M]");
  const auto models = checked_indices(idx, M);
  const int64_t m = static_cast<int64_t>(models.size());
  // A norm is read in its own dtype: a non-finite one counts as 0 (where(finite, norm, 0)).
  const auto loss_d = as_doubles("loss", loss, m), norm_d = as_doubles("norm", norm, m);
  const auto omega_d = as_doubles("omega", omega, m), clipped_d = as_doubles("clipped", clipped, m);
  const auto fallback_d = as_doubles("fallback", fallback, m);
  double* s[8];
  for (size_t k = 0; k < 8; ++k) s[k] = sums[k].mutable_data_ptr<double>();
  double* largest = norm_max.mutable_data_ptr<double>();
  for (int64_t j = 0; j < m; ++j) {
    const int64_t i = models[j];
    const bool finite = std::isfinite(norm_d[j]);
    const double safe = finite ? norm_d[j] : 0.0;
    s[0][i] += loss_d[j];
    s[1][i] += safe;
    s[2][i] += omega_d[j];
    s[3][i] += 1.0;
    s[4][i] += safe;
    s[5][i] += finite ? 1.0 : 0.0;
    s[6][i] += clipped_d[j];
    s[7][i] += fallback_d[j];
    largest[i] = std::isnan(largest[i]) ? largest[i] : std::max(largest[i], safe);  // torch.maximum keeps NaN
  }
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnlab, m) {
  m.def("veg_flags_add(Tensor idx, Tensor delta_sq, Tensor norm, Tensor(a!) steps, Tensor(b!) vanishing, "
        "Tensor(c!) exploding, Tensor(d!) norms, Tensor(e!) reference, int update, float eps_vanish, "
        "float eps_explode, float jump, int refresh) -> ()");
  m.def("interval_sums_add(Tensor idx, Tensor loss, Tensor norm, Tensor omega, Tensor clipped, Tensor fallback, "
        "Tensor(a!)[] sums, Tensor(b!) norm_max) -> ()");
}

TORCH_LIBRARY_IMPL(rnnlab, CPU, m) {
  m.impl("veg_flags_add", &veg_flags_add);
  m.impl("interval_sums_add", &interval_sums_add);
}

TORCH_LIBRARY_IMPL(rnnlab, Autograd, m) { register_no_derivative(m, {"veg_flags_add", "interval_sums_add"}); }

}  // namespace rnnlab
