// The counter-based random streams of python/rnnlab/tasks/rng.py, one pass per draw on the CPU.
//
// rng.py defines every draw with ~20 elementwise int64 torch passes (so that CUDA gives the same
// numbers); these ops compute the same 32-bit words with uint32 arithmetic in one pass, parallel
// over the [M, n] draw and compiled per ISA like the kernels. They are bit-identical to the torch
// definitions, which tests/test_rng.py checks:
// * the hash is integer arithmetic, and a 24-bit word times 2⁻²⁴ is exact in float32 and float64;
// * the only rounded float operation here is the product 2π·u of normal's angle, one IEEE
//   multiplication as in torch (no sums, so nothing the compiler could contract into an FMA);
// * normal's log1p, cos, sqrt and products run as torch's own kernels: its vectorized log1p and
//   cos (SLEEF) differ from libm's in the last ulp.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cpu/isa.h"

namespace rnnlab {
namespace {

#define RNNLAB_INLINE __attribute__((always_inline)) inline

constexpr uint32_t kGolden = 0x9E3779B9u;
constexpr int64_t kMaxWords = int64_t{1} << 32;  // element indices are 32-bit counters
constexpr int64_t kMaxHigh = int64_t{1} << 24;   // randint scales a 24-bit word
constexpr int64_t kGrain = int64_t{1} << 14;     // words per parallel chunk
constexpr int64_t kNormalBlock = int64_t{1} << 14;  // normal draws per block: 2 × 128 KiB of float64, in L2
constexpr double kTwoPi = 2.0 * 3.141592653589793;  // 2.0 * math.pi, as Python forms it

// Wellons' lowbias32 (rng.mix32).
RNNLAB_INLINE uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  return x ^ (x >> 16);
}

struct StreamKey {
  uint32_t k0, k1;
};

// Word j of a model's stream (rng.bits).
RNNLAB_INLINE uint32_t word(StreamKey key, uint32_t j) { return mix32(mix32(j ^ key.k0) ^ key.k1); }

// U[0, 1) from the top 24 bits of a word (rng.uniform): exact in float32 and float64.
template <typename T>
RNNLAB_INLINE T unit(uint32_t w) {
  return static_cast<T>(w >> 8) * static_cast<T>(1.0 / (1 << 24));
}

// ---- row fillers: words j0 … j1−1 of model m, written at out + m·n ----------------------------
// One stream per model, each word mapped to an output value by Map (inlined into the ISA loops).
template <typename Out, class Map>
struct WordRows {
  const StreamKey* keys;
  int64_t n;
  Out* out;
  Map map;
  RNNLAB_INLINE void operator()(int64_t m, int64_t j0, int64_t j1) const {
    const StreamKey key = keys[m];
    Out* row = out + m * n;
    for (int64_t j = j0; j < j1; ++j) row[j] = map(word(key, static_cast<uint32_t>(j)));
  }
};

struct AsWord {  // rng.bits
  RNNLAB_INLINE int64_t operator()(uint32_t w) const { return w; }
};

template <typename T>
struct AsUnit {  // rng.uniform
  RNNLAB_INLINE T operator()(uint32_t w) const { return unit<T>(w); }
};

struct AsRandint {  // ⌊u·high⌋ = (w₂₄ · high) >> 24 (rng.randint)
  uint64_t high;
  RNNLAB_INLINE int64_t operator()(uint32_t w) const { return static_cast<int64_t>((uint64_t{w >> 8} * high) >> 24); }
};

template <typename Out, class Map>
WordRows<Out, Map> word_rows(const std::vector<StreamKey>& keys, int64_t n, Out* out, Map map) {
  return {keys.data(), n, out, map};
}

// The arguments of normal's log1p (−u₁) and cos (2π·u₂) for one block of the flat [M, n] draw:
// flat word i = m·n + j goes to log1p_arg[i − first], cos_arg[i − first].
struct BoxMullerRows {
  const StreamKey* radius_keys;
  const StreamKey* angle_keys;
  int64_t n;
  int64_t first;
  double* log1p_arg;
  double* cos_arg;
  RNNLAB_INLINE void operator()(int64_t m, int64_t j0, int64_t j1) const {
    const StreamKey radius = radius_keys[m], angle = angle_keys[m];
    double* a = log1p_arg + (m * n - first);
    double* b = cos_arg + (m * n - first);
    for (int64_t j = j0; j < j1; ++j) {
      a[j] = -unit<double>(word(radius, static_cast<uint32_t>(j)));
      b[j] = kTwoPi * unit<double>(word(angle, static_cast<uint32_t>(j)));
    }
  }
};

// Flat words [begin, end) of an [M, n] draw, split into row segments.
template <class Rows>
RNNLAB_INLINE void fill_range(const Rows& rows, int64_t begin, int64_t end) {
  const int64_t n = rows.n;
  for (int64_t m = begin / n; m * n < end; ++m) rows(m, std::max(begin - m * n, int64_t{0}), std::min(end - m * n, n));
}

// The same loops compiled for each ISA: the row fillers inline into these and vectorize.
#if defined(__x86_64__)
template <class Rows>
__attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma,bmi2"))) void fill_avx512(const Rows& rows, int64_t b, int64_t e) {
  fill_range(rows, b, e);
}
template <class Rows>
__attribute__((target("avx2,fma"))) void fill_avx2(const Rows& rows, int64_t b, int64_t e) {
  fill_range(rows, b, e);
}
#endif
template <class Rows>
void fill_portable(const Rows& rows, int64_t b, int64_t e) {
  fill_range(rows, b, e);
}

template <class Rows>
using FillKernel = void (*)(const Rows&, int64_t, int64_t);

template <class Rows>
FillKernel<Rows> fill_kernel() {
#if defined(__x86_64__)
  switch (cpu::selected_isa()) {
    case cpu::Isa::Avx512: return &fill_avx512<Rows>;
    case cpu::Isa::Avx2: return &fill_avx2<Rows>;
    case cpu::Isa::Portable: break;
  }
#endif
  return &fill_portable<Rows>;
}

template <class Rows>
void fill(const Rows& rows, int64_t M) {
  if (M * rows.n == 0) return;
  const auto kernel = fill_kernel<Rows>();
  at::parallel_for(0, M * rows.n, kGrain, [&](int64_t b, int64_t e) { kernel(rows, b, e); });
}

// ---- input checks -----------------------------------------------------------------------------
// The [M, 2] int64 keys as 32-bit word pairs (any strides).
std::vector<StreamKey> read_keys(const char* name, const at::Tensor& keys) {
  TORCH_CHECK_TYPE(keys.scalar_type() == at::kLong, name, " must be int64, got ", keys.scalar_type());
  TORCH_CHECK_VALUE(keys.dim() == 2 && keys.size(1) == 2, name, " must have shape [M, 2], got ", keys.sizes());
  const auto acc = keys.accessor<int64_t, 2>();
  std::vector<StreamKey> out(keys.size(0));
  for (int64_t m = 0; m < keys.size(0); ++m) {
    for (int64_t w = 0; w < 2; ++w)
      TORCH_CHECK_VALUE(0 <= acc[m][w] && acc[m][w] < kMaxWords, name, " words must be in [0, 2**32), got ", acc[m][w],
                        " at [", m, ", ", w, "] (make keys with rng.seed_keys / rng.derive)");
    out[m] = {static_cast<uint32_t>(acc[m][0]), static_cast<uint32_t>(acc[m][1])};
  }
  return out;
}

void check_count(int64_t n) {
  TORCH_CHECK_VALUE(0 <= n && n < kMaxWords, "n (elements per model) must be in [0, 2**32), got ", n);
}

at::TensorOptions cpu_options(at::ScalarType dtype) { return at::TensorOptions().dtype(dtype).device(at::kCPU); }

// ---- ops --------------------------------------------------------------------------------------
at::Tensor random_bits_cpu(const at::Tensor& keys, int64_t n) {
  const auto k = read_keys("keys", keys);
  check_count(n);
  const int64_t M = keys.size(0);
  auto out = at::empty({M, n}, cpu_options(at::kLong));
  fill(word_rows(k, n, out.mutable_data_ptr<int64_t>(), AsWord{}), M);
  return out;
}

at::Tensor random_uniform_cpu(const at::Tensor& keys, int64_t n, at::ScalarType dtype) {
  const auto k = read_keys("keys", keys);
  check_count(n);
  TORCH_CHECK_TYPE(dtype == at::kFloat || dtype == at::kDouble, "dtype must be float32 or float64, got ", dtype);
  const int64_t M = keys.size(0);
  auto out = at::empty({M, n}, cpu_options(dtype));
  if (dtype == at::kFloat)
    fill(word_rows(k, n, out.mutable_data_ptr<float>(), AsUnit<float>{}), M);
  else
    fill(word_rows(k, n, out.mutable_data_ptr<double>(), AsUnit<double>{}), M);
  return out;
}

at::Tensor random_randint_cpu(const at::Tensor& keys, int64_t n, int64_t high) {
  const auto k = read_keys("keys", keys);
  check_count(n);
  TORCH_CHECK_VALUE(1 <= high && high <= kMaxHigh, "high must be in [1, 2**24], got ", high);
  const int64_t M = keys.size(0);
  auto out = at::empty({M, n}, cpu_options(at::kLong));
  fill(word_rows(k, n, out.mutable_data_ptr<int64_t>(), AsRandint{static_cast<uint64_t>(high)}), M);
  return out;
}

at::Tensor random_normal_cpu(const at::Tensor& radius_keys, const at::Tensor& angle_keys, int64_t n,
                             at::ScalarType dtype) {
  const auto radius = read_keys("radius_keys", radius_keys);
  const auto angle = read_keys("angle_keys", angle_keys);
  TORCH_CHECK_VALUE(radius.size() == angle.size(), "radius_keys and angle_keys must have the same M, got ",
                    radius.size(), " and ", angle.size());
  check_count(n);
  TORCH_CHECK_TYPE(at::isFloatingType(dtype), "dtype must be a floating dtype, got ", dtype);
  const int64_t M = radius_keys.size(0);
  auto out = at::empty({M, n}, cpu_options(dtype));
  auto flat = out.view({-1});
  const auto kernel = fill_kernel<BoxMullerRows>();
  // sqrt(−2·log1p(−u₁))·cos(2π·u₂) in float64 with torch's own kernels (rng.normal), block by
  // block inside one parallel region: six passes over the whole [M, n] float64 draw were
  // memory-bound, and each was a parallel region of its own. Torch's ops inside the region run
  // on the calling thread, and its log1p and cos compute every element alone, so the blocking
  // changes no bit (tests/test_rng.py).
  // The caller's thread-local state (inference mode, grad mode, …) goes with the blocks: the
  // worker threads run torch ops, and under inference mode `out` is an inference tensor that
  // only an inference-mode thread may write.
  const at::ThreadLocalState caller_state;
  at::parallel_for(0, M * n, kNormalBlock, [&](int64_t begin, int64_t end) {
    const at::ThreadLocalStateGuard state_guard(caller_state);
    auto r = at::empty({std::min(kNormalBlock, end - begin)}, cpu_options(at::kDouble));
    auto c = at::empty_like(r);
    for (int64_t first = begin; first < end; first += kNormalBlock) {
      const int64_t len = std::min(kNormalBlock, end - first);
      kernel(BoxMullerRows{radius.data(), angle.data(), n, first, r.mutable_data_ptr<double>(),
                           c.mutable_data_ptr<double>()},
             first, first + len);
      auto rb = r.narrow(0, 0, len), cb = c.narrow(0, 0, len);
      flat.narrow(0, first, len).copy_(rb.log1p_().mul_(-2.0).sqrt_().mul_(cb.cos_()));
    }
  });
  return out;
}

at::Tensor random_derive_cpu(const at::Tensor& keys, at::IntArrayRef tags) {
  const auto k = read_keys("keys", keys);
  std::vector<uint32_t> words, mixed;  // tag word t and mix32(t ^ golden), per tag
  for (int64_t t : tags) {
    TORCH_CHECK_VALUE(0 <= t && t < kMaxWords, "tag words must be in [0, 2**32), got ", t);
    words.push_back(static_cast<uint32_t>(t));
    mixed.push_back(mix32(static_cast<uint32_t>(t) ^ kGolden));
  }
  const int64_t M = keys.size(0);
  auto out = at::empty({M, 2}, cpu_options(at::kLong));
  int64_t* o = out.mutable_data_ptr<int64_t>();
  for (int64_t m = 0; m < M; ++m) {  // M·(tags) hashes: less work than one parallel dispatch
    uint32_t k0 = k[m].k0, k1 = k[m].k1;
    for (size_t i = 0; i < words.size(); ++i) {
      k0 = mix32(k0 ^ mixed[i]);
      k1 = mix32(k1 ^ k0 ^ words[i]);
    }
    o[2 * m] = k0;
    o[2 * m + 1] = k1;
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnlab, m) {
  m.def("random_bits(Tensor keys, int n) -> Tensor");
  m.def("random_uniform(Tensor keys, int n, ScalarType dtype) -> Tensor");
  m.def("random_randint(Tensor keys, int n, int high) -> Tensor");
  m.def("random_normal(Tensor radius_keys, Tensor angle_keys, int n, ScalarType dtype) -> Tensor");
  m.def("random_derive(Tensor keys, int[] tags) -> Tensor");
}

TORCH_LIBRARY_IMPL(rnnlab, CPU, m) {
  m.impl("random_bits", &random_bits_cpu);
  m.impl("random_uniform", &random_uniform_cpu);
  m.impl("random_randint", &random_randint_cpu);
  m.impl("random_normal", &random_normal_cpu);
  m.impl("random_derive", &random_derive_cpu);
}

}  // namespace rnnlab
