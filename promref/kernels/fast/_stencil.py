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

Every tap is indexed in place, ``plane[row, offset_t + q]``, with *unsigned*
(``np.uint64``) offsets and loop counter: a signed ``offset + q`` gets Numba's
negative-index test, which stops LLVM from vectorising, and an array view per tap
(the earlier form) costs a reference count and slice arithmetic -- ~0.5 us for
the seventeen views of a call, more than the taps of an 8 x 8 plane
(docs/performance.md).  Mixing signed and unsigned integers makes float64 in
Numba, so everything in an index is ``np.uint64``.
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
def fill_centred(src, row, start, zero_point, count, margin, plane, plane_row):
    """plane[plane_row, margin + q] = src[row, start + q] - zero_point for q < count (the margins stay 0)."""
    s0, p0, zx = np.uint64(start), np.uint64(margin), np.int16(zero_point)
    for q in range(np.uint64(count)):
        plane[plane_row, p0 + q] = np.int16(src[row, s0 + q]) - zx


@register_jitable
def masked_taps_3x3(plane, row, masks, w9, w, first, count, acc, accumulate):
    """acc[first + q] (+)= sum_t w9[t] * (plane[row, w + 1 + first + q + off_t] & masks[t, first + q]), q < count.

    ``off_t = (a - 1) * w + (b - 1)``; ``|w'| <= 255`` and ``|x - zx| <= 255``, so every
    product and the nine-term sum fit int32 (sums over input channels: the loader's bound).
    """
    r, f, wu, one, two = np.uint64(row), np.uint64(first), np.uint64(w), np.uint64(1), np.uint64(2)
    rows = (r, r, r, r, r, r, r, r, r)
    offsets = (f, f + one, f + two, f + wu, f + wu + one, f + wu + two, f + two * wu, f + two * wu + one,
               f + two * wu + two)
    store_taps(plane, rows, offsets, masks, f, w9, count, acc, f, accumulate)


@register_jitable
def tap_tuples(row0, rows, offsets, first):
    """The nine taps' (row, offset) in a plane array, as uint64 tuples: row0 + rows[t], first + offsets[t].

    ``offsets[t]`` may be negative; ``first + offsets[t]`` (the margins make it >= 0) is not.
    """
    r = np.uint64(row0)
    return ((r + np.uint64(rows[0]), r + np.uint64(rows[1]), r + np.uint64(rows[2]), r + np.uint64(rows[3]),
             r + np.uint64(rows[4]), r + np.uint64(rows[5]), r + np.uint64(rows[6]), r + np.uint64(rows[7]),
             r + np.uint64(rows[8])),
            (np.uint64(first + offsets[0]), np.uint64(first + offsets[1]), np.uint64(first + offsets[2]),
             np.uint64(first + offsets[3]), np.uint64(first + offsets[4]), np.uint64(first + offsets[5]),
             np.uint64(first + offsets[6]), np.uint64(first + offsets[7]), np.uint64(first + offsets[8])))


@register_jitable
def store_taps(src, rows, offsets, masks, mask0, w9, count, out, out0, accumulate):
    """out[out0 + q] (+)= tap_sum(src, rows, offsets, masks, mask0, w9, q) for q < count (all uint64)."""
    if accumulate:                  # two loops, not a test inside one: each vectorises
        for q in range(np.uint64(count)):
            out[out0 + q] += tap_sum(src, rows, offsets, masks, mask0, w9, q)
    else:
        for q in range(np.uint64(count)):
            out[out0 + q] = tap_sum(src, rows, offsets, masks, mask0, w9, q)


@register_jitable
def tap_sum(src, rows, offsets, masks, mask0, w9, q):
    """The nine masked products of centre q: tap t is src[rows[t], offsets[t] + q] & masks[t, mask0 + q].

    The centre tap (t = 4) is always inside its image: no mask.
    """
    m = mask0 + q
    return ((w9[0] * tap(src, rows[0], offsets[0] + q, masks[0, m])
             + w9[1] * tap(src, rows[1], offsets[1] + q, masks[1, m])
             + w9[2] * tap(src, rows[2], offsets[2] + q, masks[2, m]))
            + (w9[3] * tap(src, rows[3], offsets[3] + q, masks[3, m])
               + w9[4] * np.int32(src[rows[4], offsets[4] + q])
               + w9[5] * tap(src, rows[5], offsets[5] + q, masks[5, m]))
            + (w9[6] * tap(src, rows[6], offsets[6] + q, masks[6, m])
               + w9[7] * tap(src, rows[7], offsets[7] + q, masks[7, m])
               + w9[8] * tap(src, rows[8], offsets[8] + q, masks[8, m])))


@register_jitable
def tap(src, row, index, mask):
    """One masked tap as int32: src[row, index] & mask (mask 0 or -1)."""
    return np.int32(np.int16(src[row, index] & mask))


#: rows at least this wide are summed one centre row at a time at stride 2 (a call per
#: row has a fixed cost); narrower planes are summed whole and gathered
ROW_BY_ROW = 64


@register_jitable
def taps_for_outputs(plane, row, masks, w9, k, h, w, ho, stride, top, acc, accumulate):
    """``masked_taps_3x3`` of ``plane[row]`` for the centres the output needs: at stride 1, or for
    narrow planes, every centre in one loop; else the centre rows ``stride * i - top + 1`` of each image."""
    if stride == 1 or w < ROW_BY_ROW:
        masked_taps_3x3(plane, row, masks, w9, w, 0, k * h * w, acc, accumulate)
        return
    for img in range(k):
        for i in range(ho):
            masked_taps_3x3(plane, row, masks, w9, w, (img * h + stride * i - top + 1) * w, w, acc, accumulate)


@register_jitable
def gather_outputs(acc, k, h, w, ho, wo, stride, top, left, out):
    """out[(img * ho + i) * wo + j] = acc[centre of output (img, i, j)] for the k images."""
    for img in range(k):
        for i in range(ho):
            src = (img * h + stride * i - top + 1) * w - left + 1
            dst = (img * ho + i) * wo
            for j in range(wo):
                out[dst + j] = acc[src + stride * j]
