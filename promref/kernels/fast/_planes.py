"""3 x 3 stencils over channel planes: zero-padded scratch planes and flat tap sums.

A 3 x 3 convolution with padding of at most 1 on each side reads, for an
output pixel, the 3 x 3 window around a *centre* input pixel.  The input
values of one channel, centred (``x - zx``, so that padding is exactly 0),
are copied into an int16 scratch where every row is followed by one zero
(it is the right padding of that row and the left padding of the next) and
every image by one zero row (the bottom padding of that image and the top of
the next).  With ``R = W + 1`` values per row, the nine taps of *any* centre
are then the constant offsets ``(a - 1) * R + (b - 1)``: one long loop over
the flat scratch,

    acc[q] = sum_ab w[a, b] * plane[q + (a - 1) * R + (b - 1)]

computes every centre of a chunk of images at once -- no borders, no short
rows, and it vectorises (``taps_3x3``).  The zeros between rows and images
give a few junk centres (1/W and 1/H more), which ``gather_centres`` skips
when it picks the output pixels (stride 1 or 2) out of ``acc``.

Layout of a chunk of K images, H x W each (``LEAD`` = 1 leading zero, so the
first centre's (-1, -1) tap is in the array): image k's row i starts at
``LEAD + (k * (H + 1) + 1 + i) * R``.  ``acc[(k * (H + 1) + i) * R + j]``
is the centre (k, i, j).
"""
import numpy as np
from numba.extending import register_jitable

LEAD = 1

#: centres per chunk to aim at: the scratch (int16) and ``acc`` (int32) stay in L1/L2
CHUNK_CENTRES = 4096


def fits(kernel, padding):
    """True for the stencils this module computes: 3 x 3, every padding 0 or 1."""
    return kernel == 3 and all(p in (0, 1) for p in padding)


def chunk_images(n, h, w):
    """How many images of H x W one chunk holds (at least 1)."""
    return max(1, min(n, CHUNK_CENTRES // ((h + 1) * (w + 1))))


def plane_size(k, h, w):
    """Length of the int16 scratch of a chunk of k images."""
    return LEAD + (k * (h + 1) + 1) * (w + 1)


@register_jitable
def centres(k, h, w):
    """Number of flat centres (junk included) of a chunk of k images."""
    return (k * (h + 1) - 2) * (w + 1) + w


@register_jitable
def fill_plane(x, zero_point, k, h, w, plane):
    """plane[image k, row i, column j] = x[(k * h + i) * w + j] - zero_point, for a chunk of k images.

    x: int8, the chunk's values of one channel (C order, k * h * w of them);
    plane: int16 scratch of ``plane_size``, zero wherever this never writes.
    """
    r = w + 1
    for img in range(k):
        for i in range(h):
            src = x[(img * h + i) * w:(img * h + i + 1) * w]
            start = LEAD + (img * (h + 1) + 1 + i) * r
            dst = plane[start:start + w]
            for j in range(w):
                dst[j] = np.int16(src[j]) - np.int16(zero_point)


@register_jitable
def taps_3x3(plane, w9, r, count, acc, accumulate):
    """acc[q] (+)= sum_t w9[t] * plane[LEAD + r + q + off_t] for q < count: every centre of a chunk.

    w9: the nine int32 weights in (a, b) order; ``off_t = (a - 1) * r + (b - 1)``.
    ``|w'| <= 255``, ``|x - zx| <= 255``: each product and the nine-term sum fit int32
    (and the running sum over input channels is bounded by the loader's proof).
    """
    c0 = LEAD + r
    p00, p01, p02 = plane[c0 - r - 1:], plane[c0 - r:], plane[c0 - r + 1:]
    p10, p11, p12 = plane[c0 - 1:], plane[c0:], plane[c0 + 1:]
    p20, p21, p22 = plane[c0 + r - 1:], plane[c0 + r:], plane[c0 + r + 1:]
    w00, w01, w02, w10, w11, w12, w20, w21, w22 = w9[0], w9[1], w9[2], w9[3], w9[4], w9[5], w9[6], w9[7], w9[8]
    for q in range(count):
        s = ((w00 * np.int32(p00[q]) + w01 * np.int32(p01[q]) + w02 * np.int32(p02[q]))
             + (w10 * np.int32(p10[q]) + w11 * np.int32(p11[q]) + w12 * np.int32(p12[q]))
             + (w20 * np.int32(p20[q]) + w21 * np.int32(p21[q]) + w22 * np.int32(p22[q])))
        if accumulate:
            acc[q] += s
        else:
            acc[q] = s


@register_jitable
def gather_centres(acc, k, h, w, ho, wo, stride, top, left, out):
    """out[(img * ho + i) * wo + j] = acc[centre of output pixel (img, i, j)].

    The centre of output (i, j) is input pixel ``(stride * i - top + 1, stride * j - left + 1)``.
    """
    r = w + 1
    for img in range(k):
        for i in range(ho):
            src = acc[(img * (h + 1) + stride * i - top + 1) * r - left + 1:]
            dst = out[(img * ho + i) * wo:(img * ho + i + 1) * wo]
            if stride == 1:
                for j in range(wo):
                    dst[j] = src[j]
            else:
                for j in range(wo):
                    dst[j] = src[stride * j]
