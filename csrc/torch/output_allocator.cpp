// The output cache of output_allocator.h: a c10::Allocator whose freed blocks wait in a list for
// the next allocation of the same byte size.
#include "torch/output_allocator.h"

#include <ATen/EmptyTensor.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <cstddef>
#include <deque>
#include <iterator>
#include <mutex>
#include <unordered_map>

namespace rnnlab {
namespace {

// Smaller blocks come from glibc's heap, which reuses them without page faults.
constexpr size_t kMinCachedBytes = size_t{256} << 10;
// Enough for the outputs of a few drop-in layers at the target sizes (an LSTM layer at H = 200,
// B = 40, T = 100 allocates 32 MB of them per pass: hs, cs, gates, grad_xp), little against a
// training run.
constexpr size_t kMaxCachedBytes = size_t{128} << 20;

class OutputCache final : public c10::Allocator {
 public:
  // Never destroyed: a tensor may outlive every static object and still free its block here.
  static OutputCache& instance() {
    static auto* cache = new OutputCache();
    return *cache;
  }

  c10::DataPtr allocate(size_t nbytes) override {
    if (nbytes < kMinCachedBytes) return c10::GetDefaultCPUAllocator()->allocate(nbytes);
    void* data = take(nbytes);
    if (data == nullptr) data = c10::alloc_cpu(nbytes);
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      live_bytes_[data] = nbytes;
    }
    // the context is the data pointer itself (a "simple" DataPtr), as the default allocator's:
    // torch's copy-on-write clones (Tensor._lazy_clone) accept only those
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

 private:
  struct Block {
    void* data;
    size_t bytes;
  };

  // The most recently freed block of exactly nbytes (its pages the likeliest in cache), or null.
  void* take(size_t nbytes) {
    const std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = free_.rbegin(); it != free_.rend(); ++it) {
      if (it->bytes != nbytes) continue;
      void* data = it->data;
      cached_bytes_ -= nbytes;
      free_.erase(std::next(it).base());
      return data;
    }
    return nullptr;
  }

  static void release(void* data) { instance().keep(data); }

  void keep(void* data) {
    const std::lock_guard<std::mutex> lock(mutex_);
    const auto live = live_bytes_.find(data);
    free_.push_back({data, live->second});
    cached_bytes_ += live->second;
    live_bytes_.erase(live);
    while (cached_bytes_ > kMaxCachedBytes) {
      c10::free_cpu(free_.front().data);
      cached_bytes_ -= free_.front().bytes;
      free_.pop_front();
    }
  }

  std::mutex mutex_;
  std::unordered_map<void*, size_t> live_bytes_;  // the byte size of each block a tensor holds
  std::deque<Block> free_;                         // least recently freed first
  size_t cached_bytes_ = 0;
};

}  // namespace

at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  if (!options.device().is_cpu()) return at::empty(sizes, options);
  return at::detail::empty_generic(sizes, &OutputCache::instance(), c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   c10::typeMetaToScalarType(options.dtype()), c10::MemoryFormat::Contiguous);
}

}  // namespace rnnlab
