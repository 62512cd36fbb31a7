"""int8 depthwise convolution (docs/spec.md, "depthwise_conv2d"), channel-major.

One filter per channel, so channels are independent: a job is one channel
of a chunk of images, a contiguous run of that channel's plane in the
channel-major layout (``_layout``).  With ``w' = w - zw``:

* 3 x 3 with padding 0 or 1 (every MobileNetV2 depthwise layer): the chunk
  is copied, centred (``x - zx``), into an int16 buffer, the nine taps --
  masked to 0 where they leave the image -- are summed for every centre in
  one flat loop, and the output pixels (stride 1 or 2) are requantized in one
  run straight into the output plane (``_stencil``).  Padding holds ``zx``
  in the reference, which contributes ``w' * 0``: exactly the masked zeros.
  At stride 2 with even H and W (every stride-2 MobileNetV2 layer) the same
  masked taps run over the input's parity planes instead, at half the centres
  instead of all of them (``_parity``).
* at most FEW_PIXELS pixels in and out per channel (batch 1, deep layers): any kernel,
  vectorised over channels (``_depthwise_pixels``);
* any other kernel or padding: a direct loop that skips the taps falling
  into the padding (same argument), for completeness.

int32 is exact: every partial sum is below the accumulator bound (< 2**31)
that the loader proves.
"""
import numba
import numpy as np
from numba import prange

from . import _depthwise_pixels, _parity, _stencil
from ._layer_cache import cached
from ._layout import to_channel_major, to_nhwc
from ._options import JIT, output_size, workers_for
from ._requant import is_double, requant_arrays, requantize, requantize_into


#: at most this many pixels read and written per channel (N * H * W + N * Ho * Wo) run
#: ``_depthwise_pixels`` (vectorised over channels), which pays for transposing both.  Measured
#: on batch 1, round 3, fifth step (docs/performance.md): 4 x 4 stride 1 (32) 3.6x faster than
#: the stencil, 8 x 8 -> 4 x 4 stride 2 (80) 1.65x, 7 x 7 stride 1 (98) 1.2x; 8 x 8 stride 1 (128)
#: ties or loses (0.85-1.0x), 14 x 14 -> 7 x 7 (245) runs at half the parity kernel's speed
FEW_PIXELS = 98


def prepare(layer):
    """(w' = w - zw as int32 [C, kh * kw], bias int64 [C])."""
    def build():
        w = layer.weights.astype(np.int32) - layer.weight_zero_point
        c = w.shape[2]
        return np.ascontiguousarray(w.reshape(-1, c).T), layer.bias.astype(np.int64)
    return cached(layer, ("fast.depthwise_conv2d", layer.weight_zero_point), build, layer.weights, layer.bias)


@numba.njit(**JIT)
def _depthwise_3x3(x, w, bias, multiplier, shift, in_zero_point, stride, top, left, chunk, masks,
                   zero_point, lo, hi, double, workers, out):
    """x: int8 [C, N, H, W] -> out: int8 [C, N, Ho, Wo]; jobs are (channel, chunk of images) pairs."""
    c, n, h, wd = x.shape
    _, _, ho, wo = out.shape
    same = stride == 1 and ho == h and wo == wd    # the centres are the outputs (padding 1 all round)
    chunks = (n + chunk - 1) // chunk
    planes, outs = x.reshape(c, n * h * wd), out.reshape(c, n * ho * wo)
    for worker in prange(workers):
        plane = np.zeros((1, chunk * h * wd + 2 * (wd + 1)), np.int16)
        acc = np.empty(chunk * h * wd, np.int32)
        picked = np.empty(chunk * ho * wo, np.int32)
        for job in range(worker, c * chunks, workers):
            ch = job // chunks
            n0 = job % chunks * chunk
            k = min(chunk, n - n0)
            _stencil.fill_centred(planes, ch, n0 * h * wd, in_zero_point, k * h * wd, wd + 1, plane, 0)
            _stencil.taps_for_outputs(plane, 0, masks, w[ch], k, h, wd, ho, stride, top, acc, False)
            if not same:
                _stencil.gather_outputs(acc, k, h, wd, ho, wo, stride, top, left, picked)
            requantize_into(acc if same else picked, bias[ch], multiplier[ch], shift[ch], zero_point, lo, hi, double,
                            outs, ch, n0 * ho * wo, k * ho * wo)


@numba.njit(**JIT)
def _depthwise_3x3_stride2(x, w, bias, multiplier, shift, in_zero_point, chunk, planes_of, offsets, masks,
                           zero_point, lo, hi, double, workers, out):
    """Stride 2, even H and W: x int8 [C, N, H, W] -> out int8 [C, N, Ho, Wo] over parity planes
    (``_parity``); jobs are (channel, chunk of images) pairs."""
    c, n, h, wd = x.shape
    _, _, ho, wo = out.shape
    chunks, pad = (n + chunk - 1) // chunk, _parity.margin(wd)
    planes, outs = x.reshape(c, n * h * wd), out.reshape(c, n * ho * wo)
    rows, taps = _stencil.tap_tuples(0, planes_of, offsets, pad)
    for worker in prange(workers):
        split = np.zeros((2, chunk * h * wd // 2 + 2 * pad), np.int16)
        acc = np.empty(chunk * h * wd // 2, np.int32)
        picked = np.empty(chunk * ho * wo, np.int32)
        for job in range(worker, c * chunks, workers):
            ch = job // chunks
            n0 = job % chunks * chunk
            k = min(chunk, n - n0)
            _parity.split_pairs(planes, ch, n0 * h * wd, in_zero_point, k * h * wd // 2, pad, split, 0)
            _stencil.store_taps(split, rows, taps, masks, np.uint64(0), w[ch], k * h * wd // 2, acc, np.uint64(0),
                                False)
            _parity.gather_rows(acc, k, h, wd, ho, wo, picked)
            requantize_into(picked, bias[ch], multiplier[ch], shift[ch], zero_point, lo, hi, double,
                            outs, ch, n0 * ho * wo, k * ho * wo)


@numba.njit(**JIT)
def _depthwise_direct(x, w, kernel, bias, multiplier, shift, in_zero_point, stride, top, left,
                      zero_point, lo, hi, double, workers, out):
    """Any kernel and padding: x int8 [C, N, H, W] -> out int8 [C, N, Ho, Wo]; jobs are channels."""
    c, n, h, wd = x.shape
    _, _, ho, wo = out.shape
    for worker in prange(workers):
        for ch in range(worker, c, workers):
            for img in range(n):
                for i in range(ho):
                    for j in range(wo):
                        acc = np.int64(0)
                        for a in range(kernel):
                            row = i * stride + a - top
                            for b in range(kernel):
                                col = j * stride + b - left
                                if 0 <= row < h and 0 <= col < wd:   # padding contributes w' * 0
                                    acc += w[ch, a * kernel + b] * (np.int64(x[ch, img, row, col]) - in_zero_point)
                        out[ch, img, i, j] = requantize(acc + bias[ch], multiplier[ch], shift[ch],
                                                        zero_point, lo, hi, double)


def depthwise_conv2d_cm(x, layer, in_zero_point, rounding, few_pixels=FEW_PIXELS):
    """int8 [C, N, H, W] -> int8 [C, N, Ho, Wo] (channel-major).

    ``few_pixels``: the most pixels in and out per channel that run vectorised over channels (the
    tests move it to force either path; no value changes a result, only the speed).
    """
    w, bias = prepare(layer)
    multiplier, shift = requant_arrays(layer)
    c, n, h, wd = x.shape
    top, bottom, left, right = layer.padding
    ho = output_size(h, layer.kernel, layer.stride, top, bottom)
    wo = output_size(wd, layer.kernel, layer.stride, left, right)
    out = np.empty((c, n, ho, wo), np.int8)
    x = np.ascontiguousarray(x)
    output = (int(layer.out_zero_point), int(layer.out_min), int(layer.out_max), is_double(rounding))
    geometry = (int(in_zero_point), int(layer.stride), int(top), int(left))
    if n * (h * wd + ho * wo) <= few_pixels:
        sources = cached(layer, ("fast.depthwise_conv2d.sources", n, h, wd),
                         lambda: _depthwise_pixels.tap_sources(n, h, wd, layer.kernel, *geometry[1:], ho, wo),
                         layer.weights)
        wt = cached(layer, ("fast.depthwise_conv2d.by_tap", layer.weight_zero_point),
                    lambda: _depthwise_pixels.by_tap(w, sources.shape[1]), layer.weights)
        _depthwise_pixels.depthwise_few_pixels(x, wt, sources, bias, multiplier, shift, *geometry[:1], *output, out)
    elif _parity.fits(layer.kernel, layer.stride, layer.padding, h, wd):
        most = _parity.chunk_images(h, wd)                 # every chunk uses a prefix of the same masks
        taps = cached(layer, ("fast.depthwise_conv2d.parity", h, wd, top, left),
                      lambda: _parity.tap_geometry(most, h, wd, top, left), layer.weights)
        _depthwise_3x3_stride2(x, w, bias, multiplier, shift, int(in_zero_point), min(n, most), *taps, *output,
                               workers_for(c * -(-n // most), 9 * out.size), out)
    elif _stencil.fits(layer.kernel, layer.padding):
        most = _stencil.chunk_images(h, wd)                # every chunk uses a prefix of the same masks
        masks = cached(layer, ("fast.depthwise_conv2d.masks", h, wd), lambda: _stencil.tap_masks(most, h, wd),
                       layer.weights)
        _depthwise_3x3(x, w, bias, multiplier, shift, *geometry, min(n, most), masks, *output,
                       workers_for(c * -(-n // most), 9 * x.size), out)
    else:
        _depthwise_direct(x, w, int(layer.kernel), bias, multiplier, shift, *geometry, *output,
                          workers_for(c, out.size * w.shape[1]), out)
    return out


def depthwise_conv2d(x, layer, in_zero_point, rounding, few_pixels=FEW_PIXELS):
    """int8 [N, H, W, C] -> int8 [N, Ho, Wo, C]: ``depthwise_conv2d_cm`` between NHWC conversions."""
    return to_nhwc(depthwise_conv2d_cm(to_channel_major(x), layer, in_zero_point, rounding, few_pixels))
