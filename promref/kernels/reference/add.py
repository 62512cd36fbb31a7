"""Residual add with its own requantization: see docs/spec.md, "add"."""
import numpy as np

from ... import arith


def add_centred_inputs(a, b, layer, zero_point_a, zero_point_b):
    """int8 a, b -> int64 ``((a - za) << L, (b - zb) << L)``, the two values the add rescales."""
    return ((a.astype(np.int64) - zero_point_a) << layer.left_shift,
            (b.astype(np.int64) - zero_point_b) << layer.left_shift)


def add_accumulate(a, b, layer, zero_point_a, zero_point_b, rounding):
    """int8 a, b [N, H, W, C] -> int64 ``ra + rb``, the sum the output requantizes.

    ``ra = scale((a - za) << L, Ma, sa)``, ``rb = scale((b - zb) << L, Mb, sb)``
    under ``rounding`` (a mode name or a rule, see :func:`promref.arith.rounding_rule`).
    """
    m = layer.multiplier.astype(np.int64)
    s = layer.shift.astype(np.int64)
    centred_a, centred_b = add_centred_inputs(a, b, layer, zero_point_a, zero_point_b)
    return arith.scale_by_mode(centred_a, m[0], s[0], rounding) + arith.scale_by_mode(centred_b, m[1], s[1], rounding)


def add(a, b, layer, zero_point_a, zero_point_b, rounding):
    """int8 a, b [N, H, W, C] -> int8 [N, H, W, C].

    Each input is centred, scaled up by 2**left_shift, brought to a common
    scale by its own multiplier/shift; the int32 sum is requantized to the
    output (TFLite's quantized ADD structure):

        ra = scale((a - za) << L, Ma, sa);  rb = scale((b - zb) << L, Mb, sb)
        y  = clamp(zy + scale(ra + rb, My, sy), lo, hi)
    """
    total = add_accumulate(a, b, layer, zero_point_a, zero_point_b, rounding)
    return arith.requantize(total, layer.multiplier.astype(np.int64)[2], layer.shift.astype(np.int64)[2],
                            layer.out_zero_point, layer.out_min, layer.out_max, rounding)
