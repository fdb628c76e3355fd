// Where the CPU ops allocate their large outputs (states, gates and their gradients, [M, T, B, ·]).
//
// A drop-in's forward+backward pass allocates these afresh every pass, each ≥ 1 MiB at the target
// sizes, and frees them when autograd is done with them. glibc then returns such blocks to the
// kernel (they are mmapped, or trimmed from the top of the heap), so the next pass's kernels first
// touch fresh pages: ≈ 1 µs of page fault per 4 KiB page inside the kernel that writes them first
// (perf: 38 % of an rnnlab.RNN pass's page faults at H = 48, B = 24 were in the backward kernel,
// writing grad_xp). Here a freed output goes back to a small cache instead, and the next output of
// the same byte size reuses it: its pages are mapped, and often still in cache.
#pragma once

#include <ATen/ATen.h>

namespace rnnlab {

// An uninitialized contiguous tensor like at::empty(sizes, options). On the CPU, at least
// kMinCachedBytes large, its storage is a block of the output cache when one of the same size is
// free; the cache holds at most kMaxCachedBytes of free blocks (the least recently freed go back
// to the system first). Other devices and small sizes use the default allocator.
at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options);

}  // namespace rnnlab
