"""Compile options, pixel blocks and thread counts shared by the Numba kernels.

Importing this module installs the kernels' on-disk cache locators
(``_disk_cache``) before any kernel is compiled.
"""
import numba
import numpy as np

from . import _disk_cache  # noqa: F401 - installs the cache locators first

#: options of every kernel.  No fastmath: it would license reassociations and
#: assumptions (no wrap, no NaN...) that we do not want near integer code;
#: integer sums are reordered freely anyway because they are exact.
JIT = dict(parallel=True, cache=True, fastmath=False, nogil=True)

#: pixels per block in the int8 1x1 kernel (and the least in the ternary one).  The inner loops run over the pixels
#: of a block: long loops keep LLVM in its unrolled vector body (a short loop
#: spends much of its time in the remainder code) and amortise the
#: per-output-channel work, while the block's input rows (Cin x BLOCK bytes,
#: at most 480 KB) stay in L2.  Measured on the CIFAR MobileNetV2
#: (docs/performance.md): 512 beats 192 by ~1.25x, 256 by ~1.1x.  A multiple of LANES.
BLOCK = 512

#: the ternary 1x1 kernel's block is as long as its input rows allow: the rows of one block
#: (Cin x block bytes) take at most ROW_BYTES, between BLOCK and MAX_BLOCK pixels.  Its
#: per-row work (the views of four rows, LLVM's run-time alias checks) is paid once per
#: block, so long blocks amortise it; 512 KB of rows still fit the L2 of the CPUs measured
#: (1 MB on Zen 4, 2 MB on Emerald Rapids).  Measured against a fixed 512 on the ternary
#: layers (docs/performance.md): 1.34-1.37x (CIFAR b64) and 1.35x (ImageNet b16);
#: 256 KB gave 1.24x, 1 MB 1.34-1.43x.
ROW_BYTES = 1 << 19
MAX_BLOCK = 4096

#: blocks shorter than BLOCK (small tensors) are rounded up to a multiple of this
#: (one 512-bit register of int16)
LANES = 32

#: the least work (additions or multiply-accumulates) worth a second worker:
#: waking a sleeping thread costs tens of microseconds, as much as a small
#: call takes; without this floor batch 1 ran slower on 2 threads than on 1
MIN_WORK = 1 << 20


def pixel_block(block, pixels):
    """The pixel block a 1x1 kernel uses for a tensor of ``pixels`` pixels.

    ``block`` must be a positive multiple of LANES; small tensors (batch 1)
    get a block no longer than their pixels rounded up to LANES, so that the
    per-worker scratch rows stay small.
    """
    if not (isinstance(block, (int, np.integer)) and block > 0 and block % LANES == 0):
        raise ValueError(f"block must be a positive multiple of {LANES} pixels, got {block!r}")
    return int(min(block, max(LANES, -(-pixels // LANES) * LANES)))


def rows_block(cin):
    """The ternary kernel's pixel block for ``cin`` input rows (see ROW_BYTES): a multiple of LANES."""
    return int(min(MAX_BLOCK, max(BLOCK, ROW_BYTES // max(1, cin) // LANES * LANES)))


def workers_for(jobs, work):
    """How many parallel workers to start for ``jobs`` independent jobs of ``work`` operations in all.

    (Asked here, not inside the kernels: ``numba.get_num_threads`` in jitted
    code would stop Numba from caching the compiled kernel.)  The result only
    changes the speed, never a value: each output is computed by one job.
    """
    return max(1, min(numba.get_num_threads(), jobs, work // MIN_WORK))


def channel_group(pixels, channels, block=BLOCK, max_group=256, min_group=16):
    """How many output channels one job of a 1x1 kernel computes.

    Small enough that there are jobs for every thread when there are few pixel
    blocks (deep layers at batch 1 have 7x7 = 49 pixels), at most
    ``max_group``; a multiple of 8 when ``channels`` is (even shares).
    """
    blocks = -(-pixels // block)
    groups = max(-(-4 * numba.get_num_threads() // blocks), -(-channels // max_group))
    group = -(-channels // max(1, min(groups, channels // min_group)))
    if channels % 8 == 0:
        group = -(-group // 8) * 8
    return min(group, channels)


def output_size(size, kernel, stride, pad_before, pad_after):
    """Spatial output size of a valid convolution over the padded input."""
    return (size + pad_before + pad_after - kernel) // stride + 1
