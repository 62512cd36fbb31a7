"""Rounding rules of promref and of its peers, as *comparison rules*.

promref's arithmetic has exactly two rounding modes, ``"single"`` and
``"double"`` (promref.arith is their one definition).  Other runtimes round
the same ``acc * M * 2**(shift - 31)`` differently; this module writes those
rules down so the conformance suite can show which cases tell them apart and
so :func:`measure` can count how often they disagree on real activations.
None of the extra rules is a promref mode: models never name them.

Every rule maps int64 arrays ``(acc, multiplier, shift)`` (broadcastable;
multiplier in [0, 2**31 - 1], shift in [-31, 30]) to the int64 scaled value,
before the zero point and the clamp.
"""
import numpy as np

from .. import arith


def scale_half_even(acc, multiplier, shift):
    """``acc * M * 2**(shift - 31)`` rounded to nearest, ties to even, computed exactly.

    What ONNX ``QuantizeLinear``/``QLinearConv`` and PyTorch specify (``round``
    half to even), evaluated without any float error.
    """
    acc = np.asarray(acc, np.int64)
    n = 31 - np.asarray(shift, np.int64)                 # total right shift, 1..62
    product = acc * np.asarray(multiplier, np.int64)     # |product| < 2**62: exact
    q = product >> n                                     # floor
    remainder = product - (q << n)                       # in [0, 2**n)
    half = np.left_shift(np.int64(1), n - 1)
    up = (remainder > half) | ((remainder == half) & ((q & 1) == 1))
    return q + up


def scale_half_away(acc, multiplier, shift):
    """One rounding, ties away from zero (C ``round()``; a common hand-written variant)."""
    acc = np.asarray(acc, np.int64)
    n = 31 - np.asarray(shift, np.int64)
    product = acc * np.asarray(multiplier, np.int64)
    half = np.left_shift(np.int64(1), n - 1)
    magnitude = (np.abs(product) + half) >> n
    return np.where(product < 0, -magnitude, magnitude)


def scale_tosa_double(acc, multiplier, shift):
    """TOSA ``apply_scale_32(value, M, 31 - shift, double_round=True)``.

    One half-up rounding with a correction of ``+-2**30`` (sign of the *value*)
    when the total shift exceeds 31.  Not the same as TFLite's double rounding.
    """
    acc = np.asarray(acc, np.int64)
    n = 31 - np.asarray(shift, np.int64)
    rnd = np.left_shift(np.int64(1), n - 1) + (n > 31) * np.where(acc >= 0, 1 << 30, -(1 << 30))
    return (acc * np.asarray(multiplier, np.int64) + rnd) >> n


def scale_float32_half_even(acc, multiplier, shift):
    """ONNX Runtime / PyTorch style: ``nearbyint(float32(acc) * float32(scale))``.

    The scale is the float32 nearest to ``M * 2**(shift - 31)``; the product is
    rounded to float32, then to an integer with ties to even.
    """
    scale = arith.multiplier_to_real(multiplier, shift).astype(np.float32)
    product = np.asarray(acc, np.int64).astype(np.float32) * scale
    return np.rint(product).astype(np.int64)


#: rule name -> (scale function, who uses it)
RULES = {
    "single": (arith.scale_single,
               "promref 'single' (default): one rounding, ties up; TFLite TFLITE_SINGLE_ROUNDING, "
               "TOSA apply_scale_32 double_round=false, CMSIS-NN single rounding"),
    "double": (arith.scale_double,
               "promref 'double': SaturatingRoundingDoublingHighMul (ties up) + RoundingDivideByPOT (ties "
               "away from zero); TFLite reference kernels (default build), gemmlowp, CMSIS-NN default"),
    "half_even": (scale_half_even,
                  "exact round-half-to-even of the same rational: ONNX QuantizeLinear / QLinear* rounding"),
    "float32_half_even": (scale_float32_half_even,
                          "float32 scale, nearbyint (ties to even): ONNX Runtime MLAS, PyTorch fbgemm"),
    "tosa_double": (scale_tosa_double,
                    "TOSA apply_scale_32 double_round=true (half up plus +-2**30 when the shift > 31)"),
    "half_away": (scale_half_away, "one rounding, ties away from zero (C round())"),
}


def rule(name):
    """The scale function of the rule called ``name``: a rounding rule that
    :func:`promref.arith.rounding_rule` accepts, so the reference kernels and
    the engine (``engine.run(..., rounding=rule(name))``) run under it."""
    if not isinstance(name, str) or name not in RULES:
        raise ValueError(f"unknown rounding rule {name!r}; expected one of {tuple(RULES)}")
    return RULES[name][0]


def scale(name, acc, multiplier, shift):
    """``acc * M * 2**(shift - 31)`` under the named rule (int64)."""
    return arith.scale_by_mode(np.asarray(acc, np.int64), np.asarray(multiplier, np.int64),
                               np.asarray(shift, np.int64), rule(name))


def requantize(name, acc, multiplier, shift, zero_point, qmin, qmax):
    """``clamp(zero_point + scale(acc), qmin, qmax)`` as int8, under the named rule."""
    return arith.requantize(acc, multiplier, shift, zero_point, qmin, qmax, rule(name))


def exact_ties(acc, multiplier, shift):
    """Boolean mask: the exact value ``acc * M * 2**(shift-31)`` ends in .5 (a tie for a single rounding)."""
    acc = np.asarray(acc, np.int64)
    n = 31 - np.asarray(shift, np.int64)
    product = acc * np.asarray(multiplier, np.int64)
    return (product & (np.left_shift(np.int64(1), n) - 1)) == np.left_shift(np.int64(1), n - 1)


def double_rounding_ties(acc, multiplier, shift):
    """Boolean mask: either step of the 'double' rule meets an exact tie."""
    acc = np.asarray(acc, np.int64)
    multiplier = np.asarray(multiplier, np.int64)
    shift = np.asarray(shift, np.int64)
    left = shift * (shift > 0)
    right = -shift * (shift < 0)
    ab = (acc << left) * multiplier
    first = (ab & ((1 << 31) - 1)) == (1 << 30)
    high = arith.saturating_rounding_doubling_high_mul(acc << left, multiplier)
    second = (right > 0) & ((high & (np.left_shift(np.int64(1), right) - 1))
                            == np.left_shift(np.int64(1), np.maximum(right - 1, 0)))
    return first | second
