"""Depthwise convolution for few pixels: vectorised over channels, one output pixel at a time.

With few pixels per channel (batch 1 at 4 x 4 or 8 x 8: 16 or 64) the
channel-major stencils (``_stencil``, ``_parity``) run loops of 16-64
centres per channel -- too short for LLVM's vector body -- and pay a job's
fixed cost per channel (5x round 2's NHWC kernel on CIFAR's 4 x 4 layers,
docs/performance.md).  Here the centred input is transposed once to
``[pixel, channel]`` (the whole tensor is a few KB) and every loop runs over
the channels, as round 2's NHWC kernel did:

    acc[ch] = sum over the taps (a, b) inside the image of w'[a * k + b, ch] * (x[ch, pixel] - zx)

(padding holds ``zx``, which contributes ``w' * 0``: the skipped taps).
int32 is exact: the loader's accumulator bound; the bias is added in int64.
"""
import numba
import numpy as np
from numba.extending import register_jitable

from ._options import JIT
from ._requant import requantize_channels


@numba.njit(**dict(JIT, parallel=False))      # one worker: a few microseconds of work
def depthwise_few_pixels(x, wt, bias, multiplier, shift, in_zero_point, kernel, stride, top, left,
                         zero_point, lo, hi, double, out):
    """x int8 [C, N, H, W] -> out int8 [C, N, Ho, Wo]; wt: w' as int32 [kernel * kernel, C]."""
    c, n, h, wd = x.shape
    _, _, ho, wo = out.shape
    planes = x.reshape(c, n * h * wd)
    xt = np.empty((n * h * wd, c), np.int32)          # centred, [pixel, channel]
    for ch in range(c):
        for p in range(n * h * wd):
            xt[p, ch] = np.int32(planes[ch, p]) - in_zero_point
    acc = np.empty(c, np.int32)
    result = np.empty(c, np.int8)
    for img in range(n):
        for i in range(ho):
            for j in range(wo):
                acc[:] = 0
                for a in range(kernel):
                    row = i * stride + a - top
                    for b in range(kernel):
                        col = j * stride + b - left
                        if 0 <= row < h and 0 <= col < wd:
                            add_products(acc, wt[a * kernel + b], xt[(img * h + row) * wd + col])
                requantize_channels(acc, bias, multiplier, shift, zero_point, lo, hi, double, result)
                for ch in range(c):
                    out[ch, img, i, j] = result[ch]


@register_jitable
def add_products(acc, w, x):
    """acc[ch] += w[ch] * x[ch]: one tap for every channel (vectorises)."""
    for ch in range(acc.shape[0]):
        acc[ch] += w[ch] * x[ch]
