"""int8 depthwise convolution (docs/spec.md, "depthwise_conv2d").

One filter per channel, so channels are independent: the kernel loops over
output pixels and, innermost, over channels -- contiguous in NHWC for the
input, the weights ([kh, kw, C]) and the output, so the multiply-accumulate
``acc[c] += w'[a, b, c] * (x[.., c] - zx)`` vectorises.  Taps that fall into
the padding are skipped: padding holds ``zx``, which contributes 0.  int32
is exact: every partial sum is below the accumulator bound (< 2**31) that
the loader proves.  Requantization is fused per output pixel.
"""
import numba
import numpy as np
from numba import prange

from ._common import JIT, cached, is_double, output_size, requant_arrays, requantize_channels, workers_for


def prepare(layer):
    """(w' = w - zw as int32 [kh, kw, C], bias int64 [C])."""
    def build():
        return layer.weights.astype(np.int32) - layer.weight_zero_point, layer.bias.astype(np.int64)
    return cached(layer, ("fast.depthwise_conv2d", layer.weight_zero_point), build, layer.weights, layer.bias)


@numba.njit(**JIT)
def _depthwise(x, w, bias, multiplier, shift, in_zero_point, stride, top, left,
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
    w, bias = prepare(layer)
    multiplier, shift = requant_arrays(layer)
    n, h, wd, c = x.shape
    top, bottom, left, right = layer.padding
    ho = output_size(h, layer.kernel, layer.stride, top, bottom)
    wo = output_size(wd, layer.kernel, layer.stride, left, right)
    out = np.empty((n, ho, wo, c), np.int8)
    _depthwise(np.ascontiguousarray(x), w, bias, multiplier, shift, int(in_zero_point), int(layer.stride),
               int(top), int(left), int(layer.out_zero_point), int(layer.out_min), int(layer.out_max),
               is_double(rounding), workers_for(n * ho), out)
    return out
