// Parallel work split shared by the op glue: the unit of work is a tile that a kernel runs for the
// whole sequence (kernels/common.h BatchTile: one model's batch rows; the diagonal recurrence's
// cpu::DiagTile also splits columns), and every CPU kernel call goes through for_each_tile.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include "kernels/common.h"

namespace rnnlab {

// Splits (model, batch row) space into tiles so that every thread has work even when M is small
// (one nn.RNN layer is M = 1), keeping tiles a whole number of micro-kernel row blocks.
inline std::vector<BatchTile> make_tiles(int64_t M, int64_t B, int64_t row_block) {
  if (M == 0 || B == 0) return {};
  const int64_t threads = at::get_num_threads();
  const int64_t blocks = (B + row_block - 1) / row_block;
  const int64_t per_model = std::max<int64_t>(1, std::min<int64_t>(blocks, (threads + M - 1) / M));
  const int64_t rows = (blocks + per_model - 1) / per_model * row_block;
  std::vector<BatchTile> tiles;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t b = 0; b < B; b += rows) tiles.push_back({m, b, std::min(B, b + rows)});
  return tiles;
}

// Subnormal floats cost a microcode assist per operation on x86, and vanishing gradients produce
// them in bulk: a long tanh RNN's backward pass ran 10× slower. While a kernel runs, its thread
// flushes them to zero (FTZ and DAZ), as torch.set_flush_denormal(True) would, and restores the
// caller's setting afterwards. Values below ~1e-38 (float32) / ~1e-308 (float64) become 0.
class FlushDenormalsScope {
 public:
#if defined(__x86_64__)
  FlushDenormalsScope() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
  ~FlushDenormalsScope() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#endif
};

// Below this many multiply-adds per call a kernel runs on the calling thread: waking the other
// OpenMP threads costs tens of microseconds on a quiet machine (milliseconds on a busy 2-vCPU VM),
// more than such a call computes (an nn.RNN layer at T = 3, H = 3 ran 40x slower with 2 threads
// under load). About 50 µs of one core's work at these kernels' rates.
constexpr int64_t kMinParallelWork = int64_t{1} << 20;

// Runs f(tile) for every tile, in parallel when the call's `work` (its multiply-adds, summed over
// all tiles) is worth a parallel region, with denormals flushed: the one entry through which every
// CPU kernel of every cell is called. The tiles, and so the results, do not depend on the choice.
template <typename Tile, typename F>
void for_each_tile(const std::vector<Tile>& tiles, int64_t work, F f) {
  const int64_t n = static_cast<int64_t>(tiles.size());
  const int64_t grain = work < kMinParallelWork ? std::max<int64_t>(n, 1) : 1;
  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    const FlushDenormalsScope ftz;
    for (int64_t i = begin; i < end; ++i) f(tiles[i]);
  });
}

}  // namespace rnnlab
