"""Depthwise convolution for few pixels: vectorised over channels, one output pixel at a time.

With few pixels per channel (batch 1 at 4 x 4 or 7 x 7: 16 or 49) the
channel-major stencils (``_stencil``, ``_parity``) run loops of 16-64
centres per channel -- too short to amortise each loop's set-up and alias
checks -- and pay a job's fixed cost per channel (docs/performance.md).  Here the centred input is
transposed once to ``[pixel, channel]`` (the whole tensor is a few KB) and
every loop runs over the channels:

    acc[ch] = sum over the taps t of w'[t, ch] * xt[source[pixel, t], ch]

``source[pixel, t]`` is the input pixel under tap t of an output pixel, or
the extra row ``xt[pixels]``, which holds 0, where the tap falls into the
padding: padding holds ``zx``, whose centred value contributes ``w' * 0``.
So every output pixel sums the same number of taps, with no test in the
loop.  The taps go three per pass over ``acc`` (a 3 x 3 kernel: one kernel
row per pass); a kernel whose tap count is not a multiple of 3 gets extra
taps with weight 0 over the zero row.

int32 is exact: the loader's accumulator bound (the bias too: ``_requant.requantize_accumulator``).
"""
import numba
import numpy as np

from ._options import JIT
from ._requant import requantize_channels

#: taps summed per pass over the accumulators
TAPS_PER_PASS = 3


def tap_sources(n, h, w, kernel, stride, top, left, ho, wo):
    """int64 [n * ho * wo, taps]: the input pixel (``(img * h + row) * w + col``) under each tap of
    each output pixel, ``n * h * w`` (the zero row) outside the image; ``taps`` is ``kernel ** 2``
    rounded up to a multiple of TAPS_PER_PASS, the extra taps also on the zero row."""
    taps = -(-kernel * kernel // TAPS_PER_PASS) * TAPS_PER_PASS
    zero_row = n * h * w
    img, i, j = np.meshgrid(np.arange(n), np.arange(ho), np.arange(wo), indexing="ij")
    a, b = np.divmod(np.arange(kernel * kernel), kernel)
    row = i.reshape(-1, 1) * stride + a - top
    col = j.reshape(-1, 1) * stride + b - left
    inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
    sources = np.full((n * ho * wo, taps), zero_row, np.int64)
    sources[:, :kernel * kernel] = np.where(inside, (img.reshape(-1, 1) * h + row) * w + col, zero_row)
    return sources


def by_tap(w, taps):
    """w' as int32 [C, kernel ** 2] -> int32 [taps, C], the extra taps' rows 0."""
    out = np.zeros((taps, w.shape[0]), np.int32)
    out[:w.shape[1]] = w.T
    return out


@numba.njit(**dict(JIT, parallel=False))      # one worker: a few microseconds of work
def depthwise_few_pixels(x, wt, sources, bias, multiplier, shift, in_zero_point, zero_point, lo, hi, double, out):
    """x int8 [C, N, H, W] -> out int8 [C, N, Ho, Wo]; wt: w' as int32 [taps, C] (``by_tap``);
    sources: int64 [N * Ho * Wo, taps] (``tap_sources``)."""
    c = x.shape[0]
    pixels = x.size // c
    planes, outs = x.reshape(c, pixels), out.reshape(c, out.size // c)
    xt = np.zeros((pixels + 1, c), np.int32)          # centred, [pixel, channel]; row `pixels` stays 0
    for ch in range(c):
        for p in range(pixels):
            xt[p, ch] = np.int32(planes[ch, p]) - in_zero_point
    acc = np.empty(c, np.int32)
    result = np.empty(c, np.int8)
    for p in range(sources.shape[0]):
        acc[:] = 0
        for t in range(0, sources.shape[1], TAPS_PER_PASS):
            s0, s1, s2 = sources[p, t], sources[p, t + 1], sources[p, t + 2]
            for ch in range(np.uint64(c)):          # unsigned: in place, no row views (docs/performance.md)
                acc[ch] += (wt[t, ch] * xt[s0, ch] + wt[t + 1, ch] * xt[s1, ch]) + wt[t + 2, ch] * xt[s2, ch]
        requantize_channels(acc, bias, multiplier, shift, zero_point, lo, hi, double, result)
        for ch in range(c):
            outs[ch, p] = result[ch]
