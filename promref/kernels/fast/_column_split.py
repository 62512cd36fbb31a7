"""Stride-2 3 x 3 stencils over even and odd columns, for wide planes of even width (the ImageNet stem).

At stride 2 output (i, j) reads input rows ``2i - top + a`` and columns
``2j - left + b`` (a, b in 0..2, padding ``top``/``left`` 0 or 1).  With
``(dj, parity) = divmod(b - left, 2)``, tap column b is column ``j + dj`` of
the columns of that parity.  So each input channel is split once into its
even and its odd columns, ``E[r, m] = x[r, 2m] - zx`` and ``O[r, m] = x[r, 2m + 1] - zx``
(W/2 values a row, one long loop: ``_parity.split_pairs``, as W is even no pair
crosses a row), and output (i, j) is centre ``(img * H + 2i - top + 1) * W/2 + j``
of those planes, every tap at the constant offset

    plane (E or O by the parity of b) [centre + (a - 1) * W/2 + dj]

ANDed with a mask that zeroes taps outside the image (``tap_geometry``).  The
sums run over output rows only, one loop of Wo centres each, straight into the
output's order: no junk centre is summed and nothing is gathered.  The row
stencil of ``_stencil`` sums every column of the centre rows and keeps half;
``_parity`` (for small planes, where a loop per row is too short) keeps half of
its centres too.  Exact as in ``_stencil``: ``|w'|, |x - zx| <= 255`` and the
loader's bound on the sums over input channels.
"""
import numpy as np
from numba.extending import register_jitable

from ._stencil import ROW_BY_ROW, store_taps, tap_tuples


def fits(kernel, stride, padding, w):
    """True for the stencils this module computes: 3 x 3, stride 2, padding 0 or 1, even W of at least ROW_BY_ROW."""
    return kernel == 3 and stride == 2 and all(p in (0, 1) for p in padding) and w % 2 == 0 and w >= ROW_BY_ROW


@register_jitable
def margin(w):
    """Zeros before and after each split plane: every tap offset is within +-(W/2 + 1)."""
    return w // 2 + 1


def tap_geometry(k, h, w, top, left):
    """(planes int64 [9]: 0 = E, 1 = O; offsets int64 [9]; masks int16 [9, k * H * W/2]) of taps (a, b).

    masks[t, q] is -1 where tap t of centre q (of the split planes of k images) is inside its image, else 0.
    """
    half = w // 2
    r, m = np.divmod(np.arange(h * half), half)
    planes, offsets = np.empty(9, np.int64), np.empty(9, np.int64)
    masks = np.empty((9, h * half), np.int16)
    for a in range(3):
        for b in range(3):
            dj, parity = divmod(b - left, 2)
            t = 3 * a + b
            planes[t], offsets[t] = parity, (a - 1) * half + dj
            inside = (0 <= r + a - 1) & (r + a - 1 < h) & (0 <= m + dj) & (m + dj < half)
            masks[t] = -inside.astype(np.int16)
    return planes, offsets, np.tile(masks, (1, k))


@register_jitable
def output_rows(split, row0, planes, offsets, masks, pad, w9, k, h, w, ho, wo, top, acc, accumulate):
    """acc[(img * ho + i) * wo + j] (+)= the nine masked taps of output (img, i, j), for the k images.

    ``split`` int16 [rows, pad + k * H * W/2 + pad]: rows ``row0`` and ``row0 + 1`` are the E and O
    planes of one input channel.
    """
    half = w // 2
    for img in range(k):
        for i in range(ho):
            first = (img * h + 2 * i - top + 1) * half     # the centre of output (img, i, 0)
            rows, taps = tap_tuples(row0, planes, offsets, pad + first)
            store_taps(split, rows, taps, masks, np.uint64(first), w9, wo, acc, np.uint64((img * ho + i) * wo),
                       accumulate)
