"""Residual add with its own requantization: see docs/spec.md, "add"."""
import numpy as np

from ... import arith


def add(a, b, layer, zero_point_a, zero_point_b, rounding):
    """int8 a, b [N, H, W, C] -> int8 [N, H, W, C].

    Each input is centred, scaled up by 2**left_shift, brought to a common
    scale by its own multiplier/shift; the int32 sum is requantized to the
    output (TFLite's quantized ADD structure):

        ra = scale((a - za) << L, Ma, sa);  rb = scale((b - zb) << L, Mb, sb)
        y  = clamp(zy + scale(ra + rb, My, sy), lo, hi)
    """
    m = layer.multiplier.astype(np.int64)
    s = layer.shift.astype(np.int64)
    ra = arith.scale_by_mode((a.astype(np.int64) - zero_point_a) << layer.left_shift, m[0], s[0], rounding)
    rb = arith.scale_by_mode((b.astype(np.int64) - zero_point_b) << layer.left_shift, m[1], s[1], rounding)
    return arith.requantize(ra + rb, m[2], s[2], layer.out_zero_point, layer.out_min, layer.out_max, rounding)
