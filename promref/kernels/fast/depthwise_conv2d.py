"""int8 depthwise convolution (docs/spec.md, "depthwise_conv2d").

One filter per channel, so channels are independent: the kernel loops over
output pixels and, innermost, over channels -- contiguous in NHWC for the
input, the weights ([kh, kw, C]) and the output, so the multiply-accumulate
``acc[c] += w'[a, b, c] * (x[.., c] - zx)`` vectorises.  Taps that fall into
the padding are skipped: padding holds ``zx``, which contributes 0.  int32
is exact: every partial sum is below the accumulator bound (< 2**31) that
the loader proves.  Requantization is fused per output pixel.

Output pixels whose 3 x 3 window lies inside the image (all but the border)
take a faster path: the nine taps of a channel are summed in a register, with
the input zero point folded into the bias,
``bias_in[c] = bias[c] - zx * sum_ab w'[a, b, c]`` -- one pass over ``acc``
instead of nine read-modify-writes.
Its sums are the same exact integers in another order.
"""
import numba
import numpy as np
from numba import prange
from numba.extending import register_jitable

from ._common import JIT, cached, is_double, output_size, requant_arrays, requantize_channels, workers_for


def prepare(layer):
    """(w' = w - zw as int32 [kh, kw, C], bias int64 [C], sum_ab w'[a, b, c] as int64 [C])."""
    def build():
        w = layer.weights.astype(np.int32) - layer.weight_zero_point
        return w, layer.bias.astype(np.int64), w.astype(np.int64).sum(axis=(0, 1))
    return cached(layer, ("fast.depthwise_conv2d", layer.weight_zero_point), build, layer.weights, layer.bias)


@register_jitable
def interior_3x3(x, img, row, col, w, acc):
    """acc[c] = sum_ab w'[a, b, c] * x[img, row + a, col + b, c] for every c (the window is inside the image).

    ``|sum w' * x| <= 9 * 255 * 128`` fits int32 easily; the caller adds the
    folded bias (in int64) when it requantizes.
    """
    # one 1-D channel vector per tap: the loop below indexes them by ch alone, which
    # LLVM vectorises (no signed index arithmetic inside the loop)
    x00, x01, x02 = x[img, row, col], x[img, row, col + 1], x[img, row, col + 2]
    x10, x11, x12 = x[img, row + 1, col], x[img, row + 1, col + 1], x[img, row + 1, col + 2]
    x20, x21, x22 = x[img, row + 2, col], x[img, row + 2, col + 1], x[img, row + 2, col + 2]
    w00, w01, w02, w10, w11, w12, w20, w21, w22 = w[0, 0], w[0, 1], w[0, 2], w[1, 0], w[1, 1], w[1, 2], \
        w[2, 0], w[2, 1], w[2, 2]
    for ch in range(acc.shape[0]):
        acc[ch] = ((w00[ch] * np.int32(x00[ch]) + w01[ch] * np.int32(x01[ch]) + w02[ch] * np.int32(x02[ch]))
               + (w10[ch] * np.int32(x10[ch]) + w11[ch] * np.int32(x11[ch]) + w12[ch] * np.int32(x12[ch]))
               + (w20[ch] * np.int32(x20[ch]) + w21[ch] * np.int32(x21[ch]) + w22[ch] * np.int32(x22[ch])))


@numba.njit(**JIT)
def _depthwise(x, w, bias, bias_in, multiplier, shift, in_zero_point, stride, top, left,
               zero_point, lo, hi, double, workers, out):
    """x: int8 [N, H, W, C] -> out: int8 [N, Ho, Wo, C]; jobs are (image, output row) pairs."""
    n, h, wd, c = x.shape
    kh, kw, _ = w.shape
    _, ho, wo, _ = out.shape
    jobs = n * ho
    for worker in prange(workers):
        acc = np.empty(c, np.int32)
        for job in range(worker, jobs, workers):
            img = job // ho
            i = job % ho
            for j in range(wo):
                row, col = i * stride - top, j * stride - left
                if kh == 3 and kw == 3 and row >= 0 and row + 3 <= h and col >= 0 and col + 3 <= wd:
                    interior_3x3(x, img, row, col, w, acc)
                    requantize_channels(acc, bias_in, multiplier, shift, zero_point, lo, hi, double, out[img, i, j])
                    continue
                for ch in range(c):
                    acc[ch] = 0
                for a in range(kh):
                    row = i * stride + a - top
                    if row < 0 or row >= h:
                        continue          # padding row: contributes nothing
                    for b in range(kw):
                        col = j * stride + b - left
                        if col < 0 or col >= wd:
                            continue
                        for ch in range(c):
                            acc[ch] += w[a, b, ch] * (np.int32(x[img, row, col, ch]) - in_zero_point)
                requantize_channels(acc, bias, multiplier, shift, zero_point, lo, hi, double, out[img, i, j])


def depthwise_conv2d(x, layer, in_zero_point, rounding):
    """int8 [N, H, W, C] -> int8 [N, Ho, Wo, C]."""
    w, bias, w_sum = prepare(layer)
    multiplier, shift = requant_arrays(layer)
    n, h, wd, c = x.shape
    top, bottom, left, right = layer.padding
    ho = output_size(h, layer.kernel, layer.stride, top, bottom)
    wo = output_size(wd, layer.kernel, layer.stride, left, right)
    out = np.empty((n, ho, wo, c), np.int8)
    bias_in = bias - int(in_zero_point) * w_sum         # the interior pixels' folded bias
    _depthwise(np.ascontiguousarray(x), w, bias, bias_in, multiplier, shift, int(in_zero_point), int(layer.stride),
               int(top), int(left), int(layer.out_zero_point), int(layer.out_min), int(layer.out_max),
               is_double(rounding), workers_for(n * ho, out.size * w.shape[0] * w.shape[1]), out)
    return out
