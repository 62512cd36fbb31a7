"""Residual add with its own requantization (docs/spec.md, "add"), TFLite's
quantized ADD structure::

    ra = scale((a - za) << L, Ma, sa);  rb = scale((b - zb) << L, Mb, sb)
    y  = clamp(zy + scale(ra + rb, My, sy), lo, hi)

Elementwise, so the tensors are processed as flat arrays in chunks of
``CHUNK`` elements, one chunk per job.  The loop body is int64 arithmetic
from promref.arith; the rounding-mode test in it is loop-invariant, so LLVM
moves it out of the loop and the loop vectorises.
"""
import numba
import numpy as np
from numba import prange

from ._common import JIT, is_double, requantize, scale, workers_for

#: elements per job: large enough to amortise scheduling, small enough to balance threads
CHUNK = 1 << 14


@numba.njit(**JIT)
def _add(a, b, za, zb, left_shift, ma, sa, mb, sb, my, sy, zero_point, lo, hi, double, workers, out):
    """a, b: int8 [size] -> out: int8 [size]."""
    size = a.shape[0]
    jobs = (size + CHUNK - 1) // CHUNK
    for worker in prange(workers):
        for job in range(worker, jobs, workers):
            for i in range(job * CHUNK, min(job * CHUNK + CHUNK, size)):
                ra = scale((np.int64(a[i]) - za) << left_shift, ma, sa, double)
                rb = scale((np.int64(b[i]) - zb) << left_shift, mb, sb, double)
                out[i] = requantize(ra + rb, my, sy, zero_point, lo, hi, double)


def add(a, b, layer, zero_point_a, zero_point_b, rounding):
    """int8 a, b [N, H, W, C] -> int8 [N, H, W, C]."""
    m = [int(v) for v in layer.multiplier]
    s = [int(v) for v in layer.shift]
    out = np.empty(a.shape, np.int8)
    size = a.size
    _add(np.ascontiguousarray(a).reshape(size), np.ascontiguousarray(b).reshape(size),
         int(zero_point_a), int(zero_point_b), int(layer.left_shift), m[0], s[0], m[1], s[1], m[2], s[2],
         int(layer.out_zero_point), int(layer.out_min), int(layer.out_max), is_double(rounding),
         workers_for(-(-size // CHUNK)), out.reshape(size))
    return out
