"""Keep freed memory in the process, so that a training update touches no fresh pages.

Every update of a population allocates and frees the same tensors again: its batch ([M, T, B, I]
inputs and the draws they are made of), the fused step's ‖δ_t‖² and ‖v_t‖² [M, T, B], the VEG
bookkeeping. At M = 256 these are megabytes, and glibc's defaults hand such blocks back to the
kernel when they are freed (blocks over 128 KiB are mapped and unmapped one by one; free space at
the top of the heap over 128 KiB is trimmed), so the next update takes them again page by page:
measured on the 2-vCPU Intel Xeon, 170 page faults per update for Elman T = 25, H = 8 and
190–540 for LSTM T = 100, H = 16 (M = 256), none of it work. With
:func:`retain_freed_memory` the same updates take none once the heap has grown to their working
size (tests/test_memory.py), and the heap keeps at most ``trim_bytes`` of freed memory at its top.

This is a setting of the whole process's allocator, so the library never makes it on its own:
the ``rnnlab`` command (every subcommand but ``bench``, whose figures are those of a user's process
with glibc's defaults, for rnnlab and its peers alike) and the sweep engine's Ray workers,
processes that rnnlab owns, call it at start; a script that trains populations in its own
process may call it too.
"""
from __future__ import annotations

import ctypes
import ctypes.util

# mallopt(3) parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: blocks under this size come from the heap and are reused (glibc's largest dynamic threshold)
MMAP_BYTES = 32 << 20
#: the most freed memory the top of the heap keeps
TRIM_BYTES = 256 << 20


def retain_freed_memory(trim_bytes: int = TRIM_BYTES, mmap_bytes: int = MMAP_BYTES) -> bool:
    """Make glibc's malloc serve blocks under ``mmap_bytes`` from the heap and keep up to
    ``trim_bytes`` of freed memory there for reuse. Returns False where the C library is not
    glibc (the call then changes nothing).

    Raises:
        ValueError: a size out of mallopt's range.
    """
    if not 0 <= mmap_bytes <= MMAP_BYTES:
        raise ValueError(f"mmap_bytes must be in [0, {MMAP_BYTES}] (glibc's maximum), got {mmap_bytes}")
    if not 0 <= trim_bytes < 2**31:
        raise ValueError(f"trim_bytes must be in [0, 2**31), got {trim_bytes}")
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # another C library: its mallopt (if any) differs
        return False
    libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success (0 e.g. for an mmap threshold over glibc's 32 MiB maximum)
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_bytes)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim_bytes))
