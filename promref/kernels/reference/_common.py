"""Helpers shared by the reference kernels."""
import numpy as np

from ... import arith


def pad_with_zero_point(x, padding, zero_point):
    """Pad NHWC int8 ``x`` spatially with its zero point (the real value 0).

    padding: (top, bottom, left, right).  Returns int64 [N, H+t+b, W+l+r, C].
    """
    top, bottom, left, right = padding
    return np.pad(x.astype(np.int64), ((0, 0), (top, bottom), (left, right), (0, 0)),
                  constant_values=zero_point)


def output_size(size, kernel, stride, pad_before, pad_after):
    """Spatial output size of a valid convolution over the padded input."""
    return (size + pad_before + pad_after - kernel) // stride + 1


def requantize_output(acc, layer, rounding):
    """Requantize an accumulator (bias included) to the layer's int8 output, per channel on the last axis."""
    return arith.requantize(acc, layer.multiplier, layer.shift, layer.out_zero_point,
                            layer.out_min, layer.out_max, rounding)
