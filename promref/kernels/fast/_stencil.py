"""3 x 3 stencils over compact channel planes: centred copies, border masks, flat tap sums.

A 3 x 3 convolution with padding of at most 1 on each side reads, for an
output pixel, the 3 x 3 window around a *centre* input pixel (stride s:
``(s * i - top + 1, s * j - left + 1)``).  In a channel plane of a chunk of
images (C order, ``W`` values per row) the nine taps of centre q are the
constant offsets ``(a - 1) * W + (b - 1)`` -- except where the window leaves
the image: there the neighbour at that offset belongs to another row or
image and must count as padding, i.e. 0 after centring.  So the chunk is
copied, centred (``x - zx``), into an int16 buffer with ``W + 1`` zeros
before and after it (one contiguous loop, ``fill_centred``), and each tap is
ANDed with a mask that is all ones where the tap lies inside the image:

    acc[q] = sum_ab w'[a, b] * (plane[q + (a - 1) * W + (b - 1)] & mask_ab[q])

One long loop over the chunk that vectorises (``masked_taps_3x3``), with no
per-row work: padded planes need two short loops per row, which dominated
the 8 x 8 and 4 x 4 planes (docs/performance.md).  At stride 1 with padding
1 the centres *are* the output pixels and ``acc`` is requantized straight
into the output plane; otherwise only the centre rows are summed and
``gather_outputs`` picks the output pixels.  The masks repeat with every
image, so one array (``tap_masks``) serves every chunk.

Each tap is an array view indexed by the loop counter alone: with an index
like ``first + q`` Numba adds a negative-index test that stops LLVM from
vectorising (and unsigned ``np.uintp`` indices were 4x slower still).
"""
import numpy as np
from numba.extending import register_jitable

#: centres per chunk to aim at: the int16 plane and the int32 ``acc`` stay in L1/L2
CHUNK_CENTRES = 4096


def fits(kernel, padding):
    """True for the stencils this module computes: 3 x 3, every padding 0 or 1."""
    return kernel == 3 and all(p in (0, 1) for p in padding)


def chunk_images(h, w):
    """How many H x W images one chunk holds at most (at least 1)."""
    return max(1, CHUNK_CENTRES // (h * w))


def tap_masks(k, h, w):
    """int16 [9, k * h * w]: -1 where tap (a, b) of centre q is inside its image, else 0."""
    i, j = np.divmod(np.arange(h * w), w)
    masks = np.empty((9, h * w), np.int16)
    for a in range(3):
        for b in range(3):
            inside = (0 <= i + a - 1) & (i + a - 1 < h) & (0 <= j + b - 1) & (j + b - 1 < w)
            masks[3 * a + b] = -inside.astype(np.int16)
    return np.tile(masks, (1, k))


@register_jitable
def fill_centred(x, zero_point, count, margin, plane):
    """plane[margin + q] = x[q] - zero_point for q < count (the margins stay 0)."""
    dst = plane[margin:margin + count]
    for q in range(count):
        dst[q] = np.int16(x[q]) - np.int16(zero_point)


@register_jitable
def masked_taps_3x3(plane, masks, w9, w, first, count, acc, accumulate):
    """acc[first + q] (+)= sum_t w9[t] * (plane[w + 1 + first + q + off_t] & masks[t, first + q]), q < count.

    ``off_t = (a - 1) * w + (b - 1)``; ``|w'| <= 255`` and ``|x - zx| <= 255``, so every
    product and the nine-term sum fit int32 (sums over input channels: the loader's bound).
    """
    # one view per tap, indexed by q alone: the loop vectorises
    p = (plane[first:], plane[first + 1:], plane[first + 2:], plane[first + w:], plane[first + w + 1:],
         plane[first + w + 2:], plane[first + 2 * w:], plane[first + 2 * w + 1:], plane[first + 2 * w + 2:])
    m = (masks[0][first:], masks[1][first:], masks[2][first:], masks[3][first:], masks[5][first:],
         masks[6][first:], masks[7][first:], masks[8][first:])
    store_taps(p, m, w9, count, acc[first:], accumulate)


@register_jitable
def store_taps(p, m, w9, count, out, accumulate):
    """out[q] (+)= tap_sum(p, m, w9, q) for q < count."""
    if accumulate:                  # two loops, not a test inside one: each vectorises
        for q in range(count):
            out[q] += tap_sum(p, m, w9, q)
    else:
        for q in range(count):
            out[q] = tap_sum(p, m, w9, q)


@register_jitable
def tap_sum(p, m, w9, q):
    """The nine masked products of centre q (the centre tap is always inside: no mask)."""
    return ((w9[0] * np.int32(np.int16(p[0][q] & m[0][q])) + w9[1] * np.int32(np.int16(p[1][q] & m[1][q]))
             + w9[2] * np.int32(np.int16(p[2][q] & m[2][q])))
            + (w9[3] * np.int32(np.int16(p[3][q] & m[3][q])) + w9[4] * np.int32(p[4][q])
               + w9[5] * np.int32(np.int16(p[5][q] & m[4][q])))
            + (w9[6] * np.int32(np.int16(p[6][q] & m[5][q])) + w9[7] * np.int32(np.int16(p[7][q] & m[6][q]))
               + w9[8] * np.int32(np.int16(p[8][q] & m[7][q]))))


#: rows at least this wide are summed one centre row at a time at stride 2 (a call per
#: row costs ~0.1 us of array views); narrower planes are summed whole and gathered
ROW_BY_ROW = 64


@register_jitable
def taps_for_outputs(plane, masks, w9, k, h, w, ho, stride, top, acc, accumulate):
    """``masked_taps_3x3`` for the centres the output needs: at stride 1, or for narrow planes,
    every centre in one loop; else the centre rows ``stride * i - top + 1`` of each image."""
    if stride == 1 or w < ROW_BY_ROW:
        masked_taps_3x3(plane, masks, w9, w, 0, k * h * w, acc, accumulate)
        return
    for img in range(k):
        for i in range(ho):
            masked_taps_3x3(plane, masks, w9, w, (img * h + stride * i - top + 1) * w, w, acc, accumulate)


@register_jitable
def gather_outputs(acc, k, h, w, ho, wo, stride, top, left, out):
    """out[(img * ho + i) * wo + j] = acc[centre of output (img, i, j)] for the k images."""
    for img in range(k):
        for i in range(ho):
            src = (img * h + stride * i - top + 1) * w - left + 1
            dst = (img * ho + i) * wo
            for j in range(wo):
                out[dst + j] = acc[src + stride * j]
