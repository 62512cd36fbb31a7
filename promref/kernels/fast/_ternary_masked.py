"""Ternary 1x1 convolution for few pixels: masked additions over output channels.

The row-sum kernel (pointwise_ternary.py) vectorises over the pixels of a
block.  With few pixels -- batch 1 at 4 x 4 or 7 x 7 resolution has 16 or 49
-- its inner loops run LLVM's short vector epilogue at best, and most of the
time goes to each pass's fixed cost: alias checks, row loads, loop set-up
(docs/performance.md).
This kernel vectorises over the *output channels* instead:

    part[k, o] += x[c, p_k]   where t[o, c] = +1
    part[k, o] -= x[c, p_k]   where t[o, c] = -1        for all o

over the transposed weights ``signs[c, o] = t[o, c]`` (int16).  Two compares of each
loaded vector of ``signs`` (``> 0``, ``< 0``) give AVX-512 two lane masks, and the two
conditional updates become masked moves and additions (``select_add``); there is still
no multiplication.  It does not skip zero weights, so it does more additions
than the row sums, but in long, fully vectorised loops.

``signs`` (Cin x Cout int16: 0.8 MB for the 320 -> 1280 last conv; two 0/-1 masks,
the earlier form, took twice that) does not fit L1, so reading it is what costs: a
*tile* of TILE = 8 pixels shares each load of ``signs[c, o:o+32]``.  The eight pixels' values
are named scalars (``x0`` ... ``x7``) so that LLVM keeps them in registers for
the whole loop over ``o``.  Read from a scratch array they ran 10-20 % slower
(most likely reloaded every iteration: LLVM cannot prove they do not alias
``part``), and a tile of 16 ran about 10x slower (docs/performance.md).
The last tile of a call repeats the last pixel where it has fewer than TILE;
those copies are computed and dropped.

Exactness is the row kernel's argument: ``part`` (int16) sums at most
``INT16_EXACT_TERMS`` = 255 terms of magnitude <= 128; ``acc`` (int32) is bounded by the
loader's accumulator bound; the folded bias is added with 32-bit wrap-around, exact
(``_requant.requantize_accumulator`` says why).
"""
import numba
import numpy as np
from numba import prange
from numba.extending import register_jitable

from ._layer_cache import cached
from ._options import JIT
from ._requant import requantize_channels

#: int8 terms (|x| <= 128) an int16 partial sum holds exactly: 255 * 128 < 2**15; both ternary
#: kernels sum this many input channels (or rows) in int16 before adding to the int32 total
INT16_EXACT_TERMS = 255


def signs(layer):
    """int16 [Cin, Cout]: ``t[o, c]`` at ``[c, o]`` (C order: ``signs[c]`` is a contiguous row)."""
    def build():
        return np.ascontiguousarray(layer.weights.T).astype(np.int16)
    return cached(layer, ("fast.pointwise_ternary.signs",), build, layer.weights)


@register_jitable
def select_add(v, x, add, sub):
    """int16: v + x where ``add``, v - x where ``sub``, else v (never both).

    Written as two selects, LLVM turns the pair into a masked move and one addition
    (``vmovdqu16 {k}{z}``, ``vpsubw {k}``, ``vpaddw``): 3 instructions a pixel against
    the 4 of ``(x & plus) - (x & minus)``, 1.3x on these layers (docs/performance.md).
    """
    v = np.int16(v + x) if add else v
    return np.int16(v - x) if sub else v


#: pixels that share one pass over the masks (see the module docstring)
TILE = 8


@numba.njit(**JIT)
def pointwise_ternary_masked(x, signs, bias, multiplier, shift, zero_point, lo, hi, double, workers,
                             residual, table, out):
    """x: int8 [Cin, pixels] -> out: int8 [Cout, pixels]; worker w computes tiles w, w + workers, ...

    With a non-empty ``table``, out is the fused residual add (see pointwise_ternary.py).
    """
    cin, pixels = x.shape
    cout = out.shape[0]
    fused = table.shape[0] > 0
    zero = np.int16(0)
    for worker in prange(workers):
        part = np.empty((TILE, cout), np.int16)     # one chunk of input channels, per pixel of the tile
        acc = np.empty((TILE, cout), np.int32)      # all of them
        y = np.empty(cout, np.int8)                 # one requantized pixel
        for p0 in range(worker * TILE, pixels, workers * TILE):
            last = pixels - 1                       # a short last tile repeats the last pixel
            p1, p2, p3 = min(p0 + 1, last), min(p0 + 2, last), min(p0 + 3, last)
            p4, p5, p6, p7 = min(p0 + 4, last), min(p0 + 5, last), min(p0 + 6, last), min(p0 + 7, last)
            acc[:] = 0
            for c0 in range(0, cin, INT16_EXACT_TERMS):
                part[:] = 0
                for c in range(c0, min(c0 + INT16_EXACT_TERMS, cin)):
                    # int16 throughout (the casts keep Numba from widening to int64); the loop is
                    # written here, not in a helper: called, it ran 1.6x slower on Cout = 160
                    x0, x1, x2, x3 = np.int16(x[c, p0]), np.int16(x[c, p1]), np.int16(x[c, p2]), np.int16(x[c, p3])
                    x4, x5, x6, x7 = np.int16(x[c, p4]), np.int16(x[c, p5]), np.int16(x[c, p6]), np.int16(x[c, p7])
                    for o in range(np.uint64(cout)):        # unsigned: in place, as in add_rows
                        t = signs[c, o]
                        add, sub = t > zero, t < zero      # one vpcmpgtw each: k-masks
                        part[0, o] = select_add(part[0, o], x0, add, sub)
                        part[1, o] = select_add(part[1, o], x1, add, sub)
                        part[2, o] = select_add(part[2, o], x2, add, sub)
                        part[3, o] = select_add(part[3, o], x3, add, sub)
                        part[4, o] = select_add(part[4, o], x4, add, sub)
                        part[5, o] = select_add(part[5, o], x5, add, sub)
                        part[6, o] = select_add(part[6, o], x6, add, sub)
                        part[7, o] = select_add(part[7, o], x7, add, sub)
                acc += part
            for k in range(min(TILE, pixels - p0)):
                requantize_channels(acc[k], bias, multiplier, shift, zero_point, lo, hi, double, y)
                for o in range(cout):
                    out[o, p0 + k] = table[(np.int32(residual[o, p0 + k]) + 128) * 256 + (np.int32(y[o]) + 128)] \
                        if fused else y[o]
