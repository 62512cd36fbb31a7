"""Stride-2 3 x 3 stencils over the input's four parity planes, for even H and W.

At stride 2 output (i, j) reads input rows ``2i - top + a`` and columns
``2j - left + b`` (a, b in 0..2, padding ``top``/``left`` 0 or 1).  With
``u = a - top``, tap row a is row ``i + u // 2`` of the rows of parity
``u mod 2``; likewise for columns.  So the stride-2 stencil is a stride-1
stencil over the four parity planes (even/odd rows x even/odd columns) of
H/2 x W/2 values each: only output-resolution work, where the stride-1
stencil (``_stencil``) computes all H x W centres and keeps a quarter.

The planes come from one long loop, with no per-row work (short rows did not
vectorise: a per-row split of 8 x 8 planes cost 4x the taps).  Split a
chunk's bytes into its even and odd bytes, ``E[p] = x[2p] - zx`` and
``O[p] = x[2p + 1] - zx`` (``split_pairs``): as W is even, ``E`` holds, for
each pair of rows t (rows 2t, 2t + 1 of an image, since H is even), W values:
the even columns of row 2t, then the even columns of row 2t + 1 -- two
parity planes side by side, pitch W -- and ``O`` the odd columns.  A centre
``q = (img * H/2 + i) * W + j`` then reads every tap at a constant offset

    plane (E or O by column parity) [q + di * W + (row parity) * W/2 + dj]

(di, dj in -1..1), ANDed with a mask that zeroes taps outside the image, as
in ``_stencil``.  Centres with ``j >= W/2`` are junk (half the centres:
still half the stride-1 work) and ``gather_rows`` drops them.
"""
import numpy as np
from numba.extending import register_jitable

#: input values per chunk to aim at (half as many centres): the masks, planes and ``acc`` stay
#: in L1/L2 (4096 measured ~1.2x faster than 8192 on the CIFAR 32 x 32 layer)
CHUNK_VALUES = 4096


def fits(kernel, stride, padding, h, w):
    """True for the stencils this module computes: 3 x 3, stride 2, padding 0 or 1, even H and W."""
    return kernel == 3 and stride == 2 and all(p in (0, 1) for p in padding) and h % 2 == 0 and w % 2 == 0


def chunk_images(h, w):
    """How many H x W images one chunk holds at most (at least 1)."""
    return max(1, CHUNK_VALUES // (h * w))


@register_jitable
def margin(w):
    """Zeros before and after the split planes: every tap offset is within +-(2 W + 1)."""
    return 2 * w + 2


def tap_geometry(k, h, w, top, left):
    """(planes int64 [9]: 0 = E, 1 = O; offsets int64 [9]; masks int16 [9, k * H/2 * W]) of taps (a, b).

    masks[t, q] is -1 where tap t of centre q is inside its image (and q is not junk), else 0.
    """
    i, j = np.divmod(np.arange(h // 2 * w), w)
    planes, offsets = np.empty(9, np.int64), np.empty(9, np.int64)
    masks = np.empty((9, h // 2 * w), np.int16)
    for a in range(3):
        for b in range(3):
            (di, r), (dj, c) = divmod(a - top, 2), divmod(b - left, 2)
            t = 3 * a + b
            planes[t], offsets[t] = c, di * w + r * (w // 2) + dj
            inside = (0 <= i + di) & (i + di < h // 2) & (0 <= j + dj) & (j + dj < w // 2) & (j < w // 2)
            masks[t] = -inside.astype(np.int16)
    return planes, offsets, np.tile(masks, (1, k))


@register_jitable
def split_pairs(src, row, start, zero_point, pairs, pad, split, split_row):
    """split[split_row, pad + p], split[split_row + 1, pad + p] = x[2p] - zx, x[2p + 1] - zx for p < pairs,
    where x[i] is src[row, start + i].

    One loop for both: LLVM vectorises the two stride-2 loads as one interleaved group.
    Unsigned in-place indices, no views (``_stencil``'s module docstring says why).
    """
    s0, p0, zx = np.uint64(start), np.uint64(pad), np.int16(zero_point)
    even, odd, one = np.uint64(split_row), np.uint64(split_row) + np.uint64(1), np.uint64(1)
    for p in range(np.uint64(pairs)):
        i = s0 + p + p                       # p + p, not 2 * p: measured 1.5-2x faster at 32-128 pairs
        split[even, p0 + p] = np.int16(src[row, i]) - zx
        split[odd, p0 + p] = np.int16(src[row, i + one]) - zx


@register_jitable
def gather_rows(acc, k, h, w, ho, wo, out):
    """out[(img * ho + i) * wo + j] = acc[(img * h/2 + i) * w + j]: the outputs among the centres."""
    for img in range(k):
        for i in range(ho):
            src, dst = np.uint64((img * (h // 2) + i) * w), np.uint64((img * ho + i) * wo)
            for j in range(np.uint64(wo)):
                out[dst + j] = acc[src + j]
