"""Keep the memory a training step frees, so the next step does not page-fault it in anew.

A width-1.0 training step at batch 128 allocates and frees dozens of activation-sized
temporaries of 6-50 MB.  glibc's ``malloc`` serves every block above its mmap threshold
(at most 32 MB, 128 KiB to start) with a fresh ``mmap`` and returns it to the kernel on
``free``, so every step touches every page of those blocks for the first time: a page
fault and a page of zeroes each.  Measured (2-core Intel Xeon, one thread): a 50 MB
element-wise pass took 31 ms with its output freshly mapped and 10 ms into reused memory;
a whole float step went from 44.5 to 55.5 images/s.

:func:`keep_freed_memory` tells glibc to serve large blocks from its heap and never trim
it: the process keeps its peak footprint, and reuses it.  Only *where* arrays live changes,
never a computed bit (tests/test_train_memory.py checks a step's results with and without).
It is process-wide, so only the ``promref train`` command calls it, never the library.
"""
import ctypes
import sys

# mallopt parameters, glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4

_TOP_PAD_BYTES = 64 << 20   # grow the heap in steps of 64 MiB: fewer brk calls


def keep_freed_memory():
    """Configure glibc malloc to keep and reuse freed memory -> True, or False where the C
    library is not glibc (nothing is changed there)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc's alone: musl's mallopt accepts these and ignores them
    except (OSError, AttributeError):  # not glibc (musl has no gnu_get_libc_version)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    settings = ((_M_MMAP_MAX, 0),                  # large blocks from the heap, not fresh mmaps
                (_M_TRIM_THRESHOLD, 2 ** 31 - 1),  # never give the heap's top back to the kernel
                (_M_TOP_PAD, _TOP_PAD_BYTES))
    return all(mallopt(param, value) == 1 for param, value in settings)
