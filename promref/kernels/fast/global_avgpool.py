"""Global average pool (docs/spec.md, "global_avgpool"), channel-major input.

Per channel and image, sum the raw int8 values of the contiguous H x W run
of that channel's plane (vectorises), then take the integer mean with
``arith.global_average`` (half away from zero).  No requantization: the output
keeps the input's scale and zero point.  The sums are int64: int32 would do
for any H x W < 2**24, but the loader allows larger images.  The output
[N, C] is the same in both layouts.
"""
import numba
import numpy as np
from numba import prange

from ... import arith
from ._layout import to_channel_major
from ._options import JIT, workers_for


@numba.njit(**JIT)
def _global_avgpool(x, workers, out):
    """x: int8 [C, N, pixels] -> out: int8 [N, C]; jobs are channels."""
    c, n, pixels = x.shape
    for worker in prange(workers):
        for ch in range(worker, c, workers):
            for img in range(n):
                run = x[ch, img]
                total = np.int64(0)
                for p in range(pixels):
                    total += run[p]
                out[img, ch] = arith.global_average(total, pixels)


def global_avgpool_cm(x, layer, in_zero_point, rounding):
    """int8 [C, N, H, W] -> int8 [N, C]; ``in_zero_point`` and ``rounding`` are not used."""
    c, n, h, w = x.shape
    out = np.empty((n, c), np.int8)
    _global_avgpool(np.ascontiguousarray(x).reshape(c, n, h * w), workers_for(c, x.size), out)
    return out


def global_avgpool(x, layer, in_zero_point, rounding):
    """int8 [N, H, W, C] -> int8 [N, C]."""
    return global_avgpool_cm(to_channel_major(x), layer, in_zero_point, rounding)
