"""int8 convolution (docs/spec.md, "conv2d"): the stem 3x3 and int8 1x1 convs.

With ``w' = w - zw`` the reference computes
``acc[n, i, j, o] = bias[o] + sum_{a, b, c} w'[o, a, b, c] * (xpad[n, s*i+a, s*j+b, c] - zx)``.
Two kernels, both exact in int32 (every partial sum of the terms is below the
accumulator bound, which the loader proves to be < 2**31):

* 1x1, stride 1 (the int8 scheme's expand, project and last convs): the
  blocked layout of the ternary kernel with multiply-accumulate.  The input
  zero point is folded into the bias, ``bias'[o] = bias[o] - zx * sum_c w'[o, c]``,
  so the inner loop is ``acc[q] += w'[o, c] * xt[c, q]`` over contiguous
  pixels of raw int8 inputs (``|w' * x| <= |w'| * 128`` keeps the raw sums
  within the bound).  A 1x1 kernel has no padding.
* anything else (the stem: 3x3, stride 1 or 2, 3 input channels): a direct
  loop over output pixels.  Taps that fall into the padding are skipped,
  which is exact: padding holds ``zx`` and contributes ``w' * (zx - zx) = 0``.
  The weights are stored [kh, kw, Cin, Cout] so the innermost loop runs over
  contiguous output channels and vectorises.
"""
import numba
import numpy as np
from numba import prange
from numba.extending import register_jitable

from ._common import (BLOCK, JIT, cached, channel_group, is_double, lanes_for, load_block, output_size,
                      pixel_block, requant_arrays, requantize_channels, requantize_row, store_block, workers_for)


# ------------------------------------------------------------- 1x1, stride 1


def prepare_1x1(layer, in_zero_point):
    """(w' int32 [Cout, Cin], folded bias int64 [Cout]), cached per zero points."""
    def build():
        w = layer.weights.reshape(layer.out_channels, layer.in_channels).astype(np.int32) - layer.weight_zero_point
        bias = layer.bias.astype(np.int64) - in_zero_point * w.astype(np.int64).sum(axis=1)
        return w, bias
    key = ("fast.conv2d.1x1", in_zero_point, layer.weight_zero_point)
    return cached(layer, key, build, layer.weights, layer.bias)


@register_jitable
def multiply_accumulate(xt, weights, acc, lanes):
    """acc[q] = sum_c weights[c] * xt[c, q], four input channels per pass over ``acc``."""
    for q in range(lanes):
        acc[q] = 0
    cin = weights.shape[0]
    c = 0
    while c + 4 <= cin:
        w0, w1, w2, w3 = weights[c], weights[c + 1], weights[c + 2], weights[c + 3]
        r0, r1, r2, r3 = xt[c], xt[c + 1], xt[c + 2], xt[c + 3]
        for q in range(lanes):
            acc[q] += (w0 * r0[q] + w1 * r1[q]) + (w2 * r2[q] + w3 * r3[q])
        c += 4
    for c in range(c, cin):
        w0, r0 = weights[c], xt[c]
        for q in range(lanes):
            acc[q] += w0 * r0[q]


@numba.njit(**JIT)
def _conv1x1(x, w, bias, multiplier, shift, zero_point, lo, hi, double, block, group, workers, out):
    """x: int8 [pixels, Cin] -> out: int8 [pixels, Cout]; jobs as in the ternary kernel."""
    pixels, cin = x.shape
    cout = out.shape[1]
    groups = (cout + group - 1) // group
    jobs = (pixels + block - 1) // block * groups
    for worker in prange(workers):
        xt = np.empty((cin, block), np.int8)      # the input block, channel-major
        scratch = np.empty(cin * block // 8, np.uint64)  # load_block's reordered words
        acc = np.empty(block, np.int32)           # one output channel of the block
        yt = np.empty((group, block), np.int8)    # the output block, channel-major
        for job in range(worker, jobs, workers):
            p0 = job // groups * block
            o0 = job % groups * group
            o1 = min(o0 + group, cout)
            count = min(block, pixels - p0)
            lanes = lanes_for(count)
            load_block(x, p0, count, xt, scratch)
            for o in range(o0, o1):
                multiply_accumulate(xt, w[o], acc, lanes)
                requantize_row(acc, bias[o], multiplier[o], shift[o], zero_point, lo, hi, double,
                               yt[o - o0], lanes)
            store_block(yt, p0, count, o0, o1, out)


# ------------------------------------------------------------- general k x k


def prepare_direct(layer):
    """(w' int32 [kh, kw, Cin, Cout], bias int64 [Cout]): output channels innermost."""
    def build():
        w = layer.weights.astype(np.int32) - layer.weight_zero_point
        return np.ascontiguousarray(w.transpose(1, 2, 3, 0)), layer.bias.astype(np.int64)
    return cached(layer, ("fast.conv2d.direct", layer.weight_zero_point), build, layer.weights, layer.bias)


@numba.njit(**JIT)
def _conv_direct(x, w, bias, multiplier, shift, in_zero_point, stride, top, left,
                 zero_point, lo, hi, double, workers, out):
    """x: int8 [N, H, W, Cin] -> out: int8 [N, Ho, Wo, Cout]; a job is one output row."""
    n, h, wd, cin = x.shape
    kh, kw, _, cout = w.shape
    _, ho, wo, _ = out.shape
    jobs = n * ho
    for worker in prange(workers):
        acc = np.empty(cout, np.int32)
        for job in range(worker, jobs, workers):
            img = job // ho
            i = job % ho
            for j in range(wo):
                for o in range(cout):
                    acc[o] = 0
                for a in range(kh):
                    row = i * stride + a - top
                    if row < 0 or row >= h:
                        continue                  # a padding row adds w' * 0
                    for b in range(kw):
                        col = j * stride + b - left
                        if col < 0 or col >= wd:
                            continue
                        for c in range(cin):
                            xc = np.int32(x[img, row, col, c]) - in_zero_point
                            for o in range(cout):
                                acc[o] += w[a, b, c, o] * xc
                requantize_channels(acc, bias, multiplier, shift, zero_point, lo, hi, double, out[img, i, j])


def conv2d(x, layer, in_zero_point, rounding, block=BLOCK):
    """int8 [N, H, W, Cin] -> int8 [N, Ho, Wo, Cout].  ``block``: pixels per job of the 1x1 kernel."""
    multiplier, shift = requant_arrays(layer)
    n, h, wd, cin = x.shape
    cout = layer.out_channels
    x = np.ascontiguousarray(x)
    output = (int(layer.out_zero_point), int(layer.out_min), int(layer.out_max), is_double(rounding))
    if layer.kernel == 1 and layer.stride == 1:
        w, bias = prepare_1x1(layer, in_zero_point)
        pixels = n * h * wd
        block = pixel_block(block, pixels)
        group = channel_group(pixels, cout, block)
        out = np.empty((pixels, cout), np.int8)
        _conv1x1(x.reshape(pixels, cin), w, bias, multiplier, shift, *output,
                 block, group, workers_for(-(-pixels // block) * -(-cout // group), pixels * cin * cout), out)
        return out.reshape(n, h, wd, cout)
    w, bias = prepare_direct(layer)
    top, bottom, left, right = layer.padding
    ho = output_size(h, layer.kernel, layer.stride, top, bottom)
    wo = output_size(wd, layer.kernel, layer.stride, left, right)
    out = np.empty((n, ho, wo, cout), np.int8)
    _conv_direct(x, w, bias, multiplier, shift, int(in_zero_point), int(layer.stride), int(top), int(left),
                 *output, workers_for(n * ho, out.size * w.shape[0] * w.shape[1] * cin), out)
    return out
