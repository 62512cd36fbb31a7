"""Requantization inside the compiled kernels: promref.arith, fused into the kernels' epilogues.

Everything arithmetic comes from :mod:`promref.arith` (``scale_single``,
``scale_double``, ``clamp`` are ``register_jitable``), so the fast kernels
round exactly like the reference.  A kernel's only freedoms cannot change a result:

* the *order* of exact integer additions;
* the *width* of a value the loader proves to fit a narrower type: the accumulator and a
  left-shifted accumulator fit int32 (``validate.accumulator_bound``,
  ``validate.check_scale_input``), the multiplier is in [0, 2**31 - 1].  Computed with
  32-bit wrap-around and handed to arith as sign-extended int32, they let LLVM multiply
  with ``vpmuldq`` (one instruction) instead of ``vpmullq`` (three): 1.2x on this epilogue.
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
    """One int64 accumulator -> its int8 output value (as int64), like arith.requantize.

    The multiplier goes in as an int32 (the format keeps it in [0, 2**31 - 1]): see the module docstring.
    """
    return arith.clamp(zero_point + scale(acc, np.int64(np.int32(multiplier)), shift, double), lo, hi)


@register_jitable
def requantize_accumulator(partial, bias, multiplier, shift, zero_point, lo, hi, double):
    """``requantize(partial + bias)``: one output value of a weighted layer, in 32-bit steps.

    * A kernel's partial sum and folded bias may each lie outside int32 (the folded bias
      absorbs ``-zx * sum(w)``), but their sum is the accumulator ``bias + sum w' (x - zx)``,
      which the loader proves to fit (``validate.accumulator_bound`` counts the bias): the
      sum wrapped to 32 bits is exact.
    * In double rounding a positive shift scales the accumulator up before the doubling
      high multiply; it is applied here, in int32 (``validate.check_scale_input``).
    * The scaled value fits int32 too (the loader proves ``|scale(acc)| <= 2**31 - 1``:
      docs/spec.md, "Order of the final additions"), and ``clamp(zp + s, lo, hi) =
      zp + clamp(s, lo - zp, hi - zp)`` keeps the last steps in int32 without overflow:
      16 lanes a register instead of 8 (single rounding: 0.29-0.31 -> 0.24 ns a value).
    """
    acc = np.int64(np.int32(np.int32(partial) + np.int32(bias)))
    m = np.int64(np.int32(multiplier))
    if double:
        # min(shift, 0), not shift - left: LLVM sees that arith's own left shift is then 0
        left = shift * (shift > 0)
        scaled = scale(np.int64(np.int32(acc << left)), m, min(shift, 0), double)
    else:
        scaled = scale(acc, m, shift, double)
    low, high = np.int32(lo - zero_point), np.int32(hi - zero_point)
    return np.int32(arith.clamp(np.int32(scaled), low, high) + np.int32(zero_point))


@register_jitable
def requantize_channels(acc, bias, multiplier, shift, zero_point, lo, hi, double, out):
    """out[c] = requantize(acc[c] + bias[c]) with per-channel multiplier and shift."""
    for c in range(out.shape[0]):
        out[c] = requantize_accumulator(acc[c], bias[c], multiplier[c], shift[c], zero_point, lo, hi, double)


@register_jitable
def requantize_row(acc, bias, multiplier, shift, zero_point, lo, hi, double, out, count):
    """out[q] = requantize(acc[q] + bias) for q < count: one output channel's run of pixels."""
    for q in range(count):
        out[q] = requantize_accumulator(acc[q], bias, multiplier, shift, zero_point, lo, hi, double)


@register_jitable
def requantize_into(acc, bias, multiplier, shift, zero_point, lo, hi, double, out, row, p0, count):
    """out[row, p0 + q] = requantize(acc[q] + bias) for q < count, in place (no row view).

    Unsigned pixel indices, as in ``pointwise_ternary.add_rows``: no view to count
    references to, no wrap-around test in the vector loop.
    """
    base = np.uint64(p0)
    for q in range(np.uint64(count)):
        out[row, base + q] = requantize_accumulator(acc[q], bias, multiplier, shift, zero_point, lo, hi, double)


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
