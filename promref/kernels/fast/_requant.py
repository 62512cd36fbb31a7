"""Requantization inside the compiled kernels: promref.arith, fused into the kernels' epilogues.

Everything arithmetic comes from :mod:`promref.arith` (``scale_single``,
``scale_double``, ``clamp`` are ``register_jitable``), so the fast kernels
round exactly like the reference: the only freedom a kernel has is the
*order* of exact integer additions, which cannot change a result.
"""
import numpy as np
from numba.extending import register_jitable

from ... import arith
from ._layer_cache import cached


def requant_arrays(layer):
    """(multiplier, shift) as int64 [Cout]: the arith functions want int64 operands."""
    return cached(layer, ("fast.requant",), lambda: (layer.multiplier.astype(np.int64), layer.shift.astype(np.int64)),
                  layer.multiplier, layer.shift)


def is_double(rounding):
    """'double' -> True, 'single' -> False; anything else is an error (as in arith)."""
    return arith.rounding_rule(rounding, modes_only=True) is arith.scale_double


@register_jitable
def scale(acc, multiplier, shift, double):
    """``arith.scale_double`` or ``arith.scale_single`` of int64 values.

    ``double`` is the same for a whole call, so in a loop LLVM moves the test
    out of the loop (loop unswitching) and each copy of the loop vectorises.
    """
    if double:
        return arith.scale_double(acc, multiplier, shift)
    return arith.scale_single(acc, multiplier, shift)


@register_jitable
def requantize(acc, multiplier, shift, zero_point, lo, hi, double):
    """One int64 accumulator -> its int8 output value (as int64), like arith.requantize."""
    return arith.clamp(zero_point + scale(acc, multiplier, shift, double), lo, hi)


@register_jitable
def requantize_channels(acc, bias, multiplier, shift, zero_point, lo, hi, double, out):
    """out[c] = requantize(acc[c] + bias[c]) with per-channel multiplier and shift."""
    for c in range(out.shape[0]):
        out[c] = requantize(np.int64(acc[c]) + bias[c], multiplier[c], shift[c], zero_point, lo, hi, double)


@register_jitable
def requantize_row(acc, bias, multiplier, shift, zero_point, lo, hi, double, out, count):
    """out[q] = requantize(acc[q] + bias) for q < count: one output channel's run of pixels."""
    for q in range(count):
        out[q] = requantize(np.int64(acc[q]) + bias, multiplier, shift, zero_point, lo, hi, double)


@register_jitable
def requantize_into(acc, bias, multiplier, shift, zero_point, lo, hi, double, out, row, p0, count):
    """out[row, p0 + q] = requantize(acc[q] + bias) for q < count, in place (no row view).

    Unsigned pixel indices, as in ``pointwise_ternary.add_rows``: no view to count
    references to, no wrap-around test in the vector loop.
    """
    base = np.uint64(p0)
    for q in range(np.uint64(count)):
        out[row, base + q] = requantize(np.int64(acc[q]) + bias, multiplier, shift, zero_point, lo, hi, double)


@register_jitable
def add_residual_into(y, residual, table, out, row, p0, count):
    """out[row, p0 + q] = table[(residual[row, p0 + q] + 128) * 256 + y[q] + 128] for q < count: the fused
    residual add, in place.

    ``table`` is the add's 256 x 256 result table (``add.residual_table``), so the fused add
    is the add kernel's own arithmetic, looked up.
    """
    base = np.uint64(p0)
    for q in range(np.uint64(count)):
        out[row, base + q] = table[(np.int32(residual[row, base + q]) + 128) * 256 + (np.int32(y[q]) + 128)]


@register_jitable
def store_channel(total, bias, multiplier, shift, zero_point, lo, hi, double, residual, table, y, out, o, p0, count):
    """out[o, p0 + q] = requantize(total[q] + bias), or its residual add when ``table`` is not empty."""
    if table.shape[0] == 0:
        requantize_into(total, bias, multiplier, shift, zero_point, lo, hi, double, out, o, p0, count)
    else:
        requantize_row(total, bias, multiplier, shift, zero_point, lo, hi, double, y, count)
        add_residual_into(y, residual, table, out, o, p0, count)
