"""Ternary 1x1 convolution for few pixels: masked additions over output channels.

The row-sum kernel (pointwise_ternary.py) vectorises over the pixels of a
block.  With few pixels -- batch 1 at 4 x 4 or 8 x 8 resolution has 16 or 64
-- its inner loops are too short for LLVM's vector body and most of the
time goes to loop remainders and per-row overhead (docs/performance.md).
This kernel vectorises over the *output channels* instead, one pixel at a
time:

    part[o] += (x[c, p] & plus[c, o]) - (x[c, p] & minus[c, o])     for all o

where ``plus[c, o]`` is all ones (int16 -1) when ``t[o, c] = +1`` and 0
otherwise, ``minus`` likewise for ``t = -1``.  A bitwise AND selects the
input or 0; there is still no multiplication (on AVX-512 this is what a
masked ``vpaddw`` / ``vpsubw`` does).  It does not skip zero weights, so it
does more additions than the row sums, but in long, fully vectorised loops.

Exactness is the row kernel's argument: ``part`` (int16) sums at most
``INT16_EXACT_TERMS`` = 255 terms of magnitude <= 128; ``acc`` (int32) is bounded by the
loader's accumulator bound; the folded bias is added in int64.
"""
import numba
import numpy as np
from numba import prange

from ._layer_cache import cached
from ._options import JIT
from ._requant import requantize_channels

#: int8 terms (|x| <= 128) an int16 partial sum holds exactly: 255 * 128 < 2**15; both ternary
#: kernels sum this many input channels (or rows) in int16 before adding to the int32 total
INT16_EXACT_TERMS = 255


def masks(layer):
    """(plus, minus): int16 [Cin, Cout], -1 where ``t[o, c]`` is +1 (plus) or -1 (minus), else 0."""
    def build():
        t = np.ascontiguousarray(layer.weights.T)      # C order: plus[c] is a contiguous row
        return -(t == 1).astype(np.int16), -(t == -1).astype(np.int16)
    return cached(layer, ("fast.pointwise_ternary.masks",), build, layer.weights)


@numba.njit(**JIT)
def pointwise_ternary_masked(x, plus, minus, bias, multiplier, shift, zero_point, lo, hi, double, workers,
                             residual, table, out):
    """x: int8 [Cin, pixels] -> out: int8 [Cout, pixels]; worker w computes pixels w, w + workers, ...

    With a non-empty ``table``, out is the fused residual add (see pointwise_ternary.py).
    """
    cin, pixels = x.shape
    cout = out.shape[0]
    fused = table.shape[0] > 0
    for worker in prange(workers):
        part = np.empty(cout, np.int16)     # one chunk of input channels
        acc = np.empty(cout, np.int32)      # all of them
        y = np.empty(cout, np.int8)         # the requantized pixel
        for p in range(worker, pixels, workers):
            for o in range(cout):
                acc[o] = 0
            for c0 in range(0, cin, INT16_EXACT_TERMS):
                for o in range(cout):
                    part[o] = 0
                for c in range(c0, min(c0 + INT16_EXACT_TERMS, cin)):
                    xc = np.int16(x[c, p])
                    # int16 throughout (casts keep Numba from widening to int64); unsigned o indexes
                    # the masks in place, as in pointwise_ternary.add_rows (no row view per (pixel,
                    # channel); measured within noise of the views here, docs/performance.md)
                    for o in range(np.uint64(cout)):
                        part[o] = np.int16(part[o] + np.int16(np.int16(xc & plus[c, o]) - np.int16(xc & minus[c, o])))
                for o in range(cout):
                    acc[o] += part[o]
            requantize_channels(acc, bias, multiplier, shift, zero_point, lo, hi, double, y)
            for o in range(cout):
                out[o, p] = table[(np.int32(residual[o, p]) + 128) * 256 + (np.int32(y[o]) + 128)] if fused else y[o]
