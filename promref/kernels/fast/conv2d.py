"""int8 convolution (docs/spec.md, "conv2d"), channel-major: the stem 3x3 and int8 1x1 convs.

With ``w' = w - zw`` the reference computes
``acc[o, n, i, j] = bias[o] + sum_{a, b, c} w'[o, a, b, c] * (xpad[c, n, s*i+a, s*j+b] - zx)``.
Four kernels, all exact in int32 (every partial sum of the terms is below
the accumulator bound, which the loader proves to be < 2**31):

* 1x1, stride 1 (the int8 scheme's expand, project and last convs): the
  pixel blocks of the ternary kernel (each copied first when the tensor has
  several: ``_row_sums.copy_block``) with multiply-accumulate.  The input
  zero point is folded into the bias, ``bias'[o] = bias[o] - zx * sum_c w'[o, c]``,
  so the inner loop is ``acc[q] += w'[o, c] * x[c, p0 + q]`` over contiguous
  pixels of raw int8 inputs (``|w' * x| <= |w'| * 128`` keeps the raw sums
  within the bound).  A 1x1 kernel has no padding.  It can fuse the residual
  add that follows it, as the ternary kernel does.
* 3 x 3, stride 2, padding 0 or 1, even W of at least 64 (the ImageNet stem):
  each input channel of a chunk is split into its even and odd columns, and
  every output row is one loop of Wo masked taps over those planes
  (``_column_split``): no centre is summed that the output does not need.
* other 3 x 3 with padding 0 or 1 (the CIFAR stem): for a chunk of images, each input
  channel is copied, centred, into an int16 plane and every output channel
  is 3 x 9 masked flat tap loops over those planes (``_stencil``),
  requantized straight into its output plane.
* anything else: a direct loop that skips the taps falling into the
  padding, which is exact: padding holds ``zx`` and contributes
  ``w' * (zx - zx) = 0``.
"""
import numba
import numpy as np
from numba import prange
from numba.extending import register_jitable

from . import _column_split, _parity, _stencil
from ._layer_cache import cached
from ._layout import to_channel_major, to_nhwc
from ._options import BLOCK, JIT, channel_group, output_size, pixel_block, workers_for
from ._requant import is_double, requant_arrays, requantize, requantize_into, store_channel
from ._row_sums import copies_blocks, copy_block
from .pointwise_ternary import NO_RESIDUAL, NO_TABLE

#: output channels per job of the 3 x 3 kernel (each job fills its own input planes)
OUT_GROUP = 8


def is_1x1(layer):
    """True for the layers of the pixel-block kernel: 1x1 kernel, stride 1."""
    return layer.kernel == 1 and layer.stride == 1


def prepare(layer, in_zero_point):
    """(w' int32 [Cout, Cin, kh * kw], bias int64 [Cout]); a 1x1 stride-1 layer's bias is folded with zx."""
    def build():
        w = np.ascontiguousarray(layer.weights.transpose(0, 3, 1, 2)).reshape(
            layer.out_channels, layer.in_channels, -1).astype(np.int32) - layer.weight_zero_point
        bias = layer.bias.astype(np.int64)
        if is_1x1(layer):
            bias = bias - in_zero_point * w.astype(np.int64).sum(axis=(1, 2))
        return w, bias
    key = ("fast.conv2d", in_zero_point if is_1x1(layer) else None, layer.weight_zero_point)
    return cached(layer, key, build, layer.weights, layer.bias)


@register_jitable
def multiply_accumulate(x, weights, p0, count, acc):
    """acc[q] = sum_c weights[c] * x[c, p0 + q], four input channels per pass over ``acc``.

    ``x`` indexed in place with unsigned pixel indices, as in ``_row_sums.add_rows``.
    """
    base, n = np.uint64(p0), np.uint64(count)
    for q in range(n):
        acc[q] = 0
    cin = weights.shape[0]
    c = 0
    while c + 4 <= cin:
        w0, w1, w2, w3 = weights[c], weights[c + 1], weights[c + 2], weights[c + 3]
        for q in range(n):
            acc[q] += (w0 * x[c, base + q] + w1 * x[c + 1, base + q]) + (w2 * x[c + 2, base + q]
                                                                         + w3 * x[c + 3, base + q])
        c += 4
    for c in range(c, cin):
        w0 = weights[c]
        for q in range(n):
            acc[q] += w0 * x[c, base + q]


@register_jitable
def block_outputs(x, p0, w, bias, multiplier, shift, zero_point, lo, hi, double, residual, table,
                  o0, o1, out0, count, acc, y, out):
    """Output channels o0 <= o < o1 of the pixels ``out0 .. out0 + count`` of ``out``, read from the pixels
    ``p0 .. p0 + count`` of ``x`` (the input, or the block's copy with ``p0`` = 0)."""
    for o in range(o0, o1):
        multiply_accumulate(x, w[o], p0, count, acc)
        store_channel(acc, bias[o], multiplier[o], shift[o], zero_point, lo, hi, double,
                      residual, table, y, out, o, out0, count)


@numba.njit(**JIT)
def _conv1x1(x, w, bias, multiplier, shift, zero_point, lo, hi, double, block, group, copying, workers,
             residual, table, out):
    """x: int8 [Cin, pixels] -> out: int8 [Cout, pixels]; jobs, block copies and fusion as in the ternary
    kernel (``_row_sums``)."""
    pixels = x.shape[1]
    cout = out.shape[0]
    groups = (cout + group - 1) // group
    jobs = (pixels + block - 1) // block * groups
    for worker in prange(workers):
        acc = np.empty(block, np.int32)           # one output channel of the block
        y = np.empty(block, np.int8)              # its requantized values, when fused
        rows_of_block = np.empty((x.shape[0] if copying else 0, block), np.int8)
        for job in range(worker, jobs, workers):
            p0 = job // groups * block
            o0 = job % groups * group
            count = min(block, pixels - p0)
            o1 = min(o0 + group, cout)
            if copying:
                copy_block(x, p0, count, rows_of_block)
                block_outputs(rows_of_block, 0, w, bias, multiplier, shift, zero_point, lo, hi, double,
                              residual, table, o0, o1, p0, count, acc, y, out)
            else:
                block_outputs(x, p0, w, bias, multiplier, shift, zero_point, lo, hi, double,
                              residual, table, o0, o1, p0, count, acc, y, out)


@numba.njit(**JIT)
def _conv3x3(x, w, bias, multiplier, shift, in_zero_point, stride, top, left, chunk, masks,
             zero_point, lo, hi, double, workers, out):
    """x: int8 [Cin, N, H, W] -> out: int8 [Cout, N, Ho, Wo]; jobs are (chunk of images, OUT_GROUP outputs)."""
    cin, n, h, wd = x.shape
    cout, _, ho, wo = out.shape
    same = stride == 1 and ho == h and wo == wd    # the centres are the outputs (padding 1 all round)
    chunks, groups = (n + chunk - 1) // chunk, (cout + OUT_GROUP - 1) // OUT_GROUP
    planes, outs = x.reshape(cin, n * h * wd), out.reshape(cout, n * ho * wo)
    for worker in prange(workers):
        plane = np.zeros((cin, chunk * h * wd + 2 * (wd + 1)), np.int16)   # row c: input channel c
        acc = np.empty(chunk * h * wd, np.int32)
        picked = np.empty(chunk * ho * wo, np.int32)
        for job in range(worker, chunks * groups, workers):
            n0 = job // groups * chunk
            k = min(chunk, n - n0)
            for c in range(cin):
                _stencil.fill_centred(planes, c, n0 * h * wd, in_zero_point, k * h * wd, wd + 1, plane, c)
            for o in range(job % groups * OUT_GROUP, min(job % groups * OUT_GROUP + OUT_GROUP, cout)):
                for c in range(cin):
                    _stencil.taps_for_outputs(plane, c, masks, w[o, c], k, h, wd, ho, stride, top, acc, c > 0)
                if not same:
                    _stencil.gather_outputs(acc, k, h, wd, ho, wo, stride, top, left, picked)
                requantize_into(acc if same else picked, bias[o], multiplier[o], shift[o], zero_point, lo, hi, double,
                                outs, o, n0 * ho * wo, k * ho * wo)


@numba.njit(**JIT)
def _conv3x3_columns(x, w, bias, multiplier, shift, in_zero_point, top, chunk, planes_of, offsets, masks,
                     zero_point, lo, hi, double, workers, out):
    """Stride 2, even W (``_column_split``): x int8 [Cin, N, H, W] -> out int8 [Cout, N, Ho, Wo].

    Jobs as in ``_conv3x3``.
    """
    cin, n, h, wd = x.shape
    cout, _, ho, wo = out.shape
    chunks, groups = (n + chunk - 1) // chunk, (cout + OUT_GROUP - 1) // OUT_GROUP
    pad = _column_split.margin(wd)
    planes, outs = x.reshape(cin, n * h * wd), out.reshape(cout, n * ho * wo)
    for worker in prange(workers):
        split = np.zeros((2 * cin, chunk * h * wd // 2 + 2 * pad), np.int16)   # rows 2c, 2c + 1: channel c
        acc = np.empty(chunk * ho * wo, np.int32)
        for job in range(worker, chunks * groups, workers):
            n0 = job // groups * chunk
            k = min(chunk, n - n0)
            for c in range(cin):
                _parity.split_pairs(planes, c, n0 * h * wd, in_zero_point, k * h * wd // 2, pad, split, 2 * c)
            for o in range(job % groups * OUT_GROUP, min(job % groups * OUT_GROUP + OUT_GROUP, cout)):
                for c in range(cin):
                    _column_split.output_rows(split, 2 * c, planes_of, offsets, masks, pad, w[o, c], k, h, wd, ho, wo,
                                              top, acc, c > 0)
                requantize_into(acc, bias[o], multiplier[o], shift[o], zero_point, lo, hi, double,
                                outs, o, n0 * ho * wo, k * ho * wo)


@numba.njit(**JIT)
def _conv_direct(x, w, kernel, bias, multiplier, shift, in_zero_point, stride, top, left,
                 zero_point, lo, hi, double, workers, out):
    """Any kernel, stride and padding: x int8 [Cin, N, H, W] -> out int8 [Cout, N, Ho, Wo]; jobs are outputs."""
    cin, n, h, wd = x.shape
    cout, _, ho, wo = out.shape
    for worker in prange(workers):
        for o in range(worker, cout, workers):
            for img in range(n):
                for i in range(ho):
                    for j in range(wo):
                        acc = np.int64(0)
                        for a in range(kernel):
                            row = i * stride + a - top
                            for b in range(kernel):
                                col = j * stride + b - left
                                if 0 <= row < h and 0 <= col < wd:     # a padding tap adds w' * 0
                                    for c in range(cin):
                                        acc += w[o, c, a * kernel + b] * \
                                            (np.int64(x[c, img, row, col]) - in_zero_point)
                        out[o, img, i, j] = requantize(acc + bias[o], multiplier[o], shift[o],
                                                       zero_point, lo, hi, double)


def conv2d_cm(x, layer, in_zero_point, rounding, block=None, residual=None, table=None):
    """int8 [Cin, N, H, W] -> int8 [Cout, N, Ho, Wo] (channel-major).

    ``block``: pixels per job of the 1x1 kernel (None: BLOCK); ``residual``/``table``: the fused
    residual add of a 1x1 stride-1 layer (see ``pointwise_ternary_cm``).
    """
    multiplier, shift = requant_arrays(layer)
    w, bias = prepare(layer, in_zero_point)
    cin, n, h, wd = x.shape
    cout = layer.out_channels
    x = np.ascontiguousarray(x)
    output = (int(layer.out_zero_point), int(layer.out_min), int(layer.out_max), is_double(rounding))
    if is_1x1(layer):
        pixels = n * h * wd
        block = pixel_block(BLOCK if block is None else block, pixels)
        group = channel_group(pixels, cout, block)
        fused = (NO_RESIDUAL, NO_TABLE) if table is None else (residual.reshape(cout, pixels), table)
        out = np.empty((cout, pixels), np.int8)
        _conv1x1(x.reshape(cin, pixels), w.reshape(cout, cin), bias, multiplier, shift, *output, block, group,
                 copies_blocks(pixels, block), workers_for(-(-pixels // block) * -(-cout // group), pixels * cin * cout), *fused, out)
        return out.reshape(cout, n, h, wd)
    if table is not None:
        raise ValueError("only a 1x1, stride-1 conv2d fuses a residual add")
    top, bottom, left, right = layer.padding
    ho = output_size(h, layer.kernel, layer.stride, top, bottom)
    wo = output_size(wd, layer.kernel, layer.stride, left, right)
    out = np.empty((cout, n, ho, wo), np.int8)
    geometry = (int(in_zero_point), int(layer.stride), int(top), int(left))
    if _column_split.fits(layer.kernel, layer.stride, layer.padding, wd):
        most = _stencil.chunk_images(h, wd)                  # every chunk uses a prefix of the same masks
        geometry = cached(layer, ("fast.conv2d.columns", h, wd), lambda: _column_split.tap_geometry(
            most, h, wd, top, left), layer.weights)
        _conv3x3_columns(x, w, bias, multiplier, shift, int(in_zero_point), int(top), min(n, most), *geometry,
                         *output, workers_for(-(-n // most) * -(-cout // OUT_GROUP), 9 * out.size * cin), out)
    elif _stencil.fits(layer.kernel, layer.padding):
        most = _stencil.chunk_images(h, wd)
        masks = cached(layer, ("fast.conv2d.masks", h, wd), lambda: _stencil.tap_masks(most, h, wd), layer.weights)
        _conv3x3(x, w, bias, multiplier, shift, *geometry, min(n, most), masks, *output,
                 workers_for(-(-n // most) * -(-cout // OUT_GROUP), 9 * x.size * cout), out)
    else:
        _conv_direct(x, w, int(layer.kernel), bias, multiplier, shift, *geometry, *output,
                     workers_for(cout, out.size * w.shape[1] * w.shape[2]), out)
    return out


def conv2d(x, layer, in_zero_point, rounding, block=None):
    """int8 [N, H, W, Cin] -> int8 [N, Ho, Wo, Cout]: ``conv2d_cm`` between NHWC conversions."""
    return to_nhwc(conv2d_cm(to_channel_major(x), layer, in_zero_point, rounding, block))
