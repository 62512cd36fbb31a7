"""Global average pool (docs/spec.md, "global_avgpool").

Per image, sum the raw int8 values of each channel over H x W (channels
innermost: contiguous, vectorises), then take the integer mean with
``arith.global_average`` (half away from zero).  No requantization: the output
keeps the input's scale and zero point.  The sums are int64: int32 would do
for any H x W < 2**24, but the loader allows larger images.
"""
import numba
import numpy as np
from numba import prange

from ... import arith
from ._common import JIT, workers_for


@numba.njit(**JIT)
def _global_avgpool(x, workers, out):
    """x: int8 [N, pixels, C] -> out: int8 [N, C]; jobs are images."""
    n, pixels, c = x.shape
    for worker in prange(workers):
        total = np.empty(c, np.int64)
        for img in range(worker, n, workers):
            for ch in range(c):
                total[ch] = 0
            for p in range(pixels):
                for ch in range(c):
                    total[ch] += x[img, p, ch]
            for ch in range(c):
                out[img, ch] = arith.global_average(total[ch], pixels)


def global_avgpool(x, layer, in_zero_point, rounding):
    """int8 [N, H, W, C] -> int8 [N, C]; ``in_zero_point`` and ``rounding`` are not used."""
    n, h, w, c = x.shape
    out = np.empty((n, c), np.int8)
    _global_avgpool(np.ascontiguousarray(x).reshape(n, h * w, c), workers_for(n, x.size), out)
    return out
