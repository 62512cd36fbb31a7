"""TOSA's integer scaling rules, transcribed from the TOSA 1.0 specification, and
the mapping of promref's requantization onto them.

TOSA ``RESCALE`` (``scale32 = true``) computes, per element,
``apply_scale_32(value - input_zp, multiplier[c], shift[c], rounding)``::

    REQUIRE(multiplier >= 0 and 2 <= shift <= 62)
    REQUIRE(-2**(shift-1) <= value < 2**(shift-1))
    round = 2**(shift-1)
    if DOUBLE_ROUND and shift > 31: round += 2**30 if value >= 0 else -2**30
    result = (value * multiplier + round) >> shift        # int64, floor

and then adds ``output_zp`` and saturates to the output type.  TOSA's
``shift`` is the *total* right shift; promref's ``shift`` is TFLite's
exponent, ``n = 31 - shift``.

**Equality with promref (docs/deploy-tosa.md has the proof):**

* ``SINGLE_ROUND`` is ``(acc * M + 2**(n-1)) >> n``: the very formula of
  :func:`promref.arith.scale_single`.
* ``DOUBLE_ROUND`` equals :func:`promref.arith.scale_double` (TFLite's
  SaturatingRoundingDoublingHighMul then RoundingDivideByPOT) for every int32
  accumulator and every multiplier in [0, 2**31 - 1]: for ``n > 31`` the two
  nested floors collapse into one with the rounding constant
  ``2**(n-1) +- 2**30``; for ``n <= 31`` TFLite's left shift is exact and its
  single rounding is TOSA's.

They differ only in what TOSA *refuses*: ``n`` must be in [2, 62] (promref
allows ``shift = 30``, ``n = 1``) and ``|value|`` must stay below
``2**(n-1)`` (promref's validator only needs ``acc << shift`` to fit in
int32, one bit more).  :func:`tosa_rescale_parameters` rewrites ``(M, n)``
as ``(M * 2**j, n + j)`` -- the same number, the same rounding -- to get
inside both limits where that is possible, and refuses otherwise.
"""
import numpy as np

from ...errors import PromrefError

TOSA_SHIFT_MIN, TOSA_SHIFT_MAX = 2, 62
MULTIPLIER_LIMIT = (1 << 31) - 1


class TosaExportError(PromrefError):
    """A model uses something the TOSA export cannot express exactly."""


def apply_scale_32(value, multiplier, shift, double_round):
    """The TOSA spec's ``apply_scale_32`` on int64 arrays (value, multiplier, shift broadcast).

    Raises ValueError where a REQUIRE of the spec fails (the reference model
    refuses such a graph at run time).
    """
    value = np.asarray(value, np.int64)
    multiplier = np.asarray(multiplier, np.int64)
    shift = np.asarray(shift, np.int64)
    if np.any(multiplier < 0) or np.any(shift < TOSA_SHIFT_MIN) or np.any(shift > TOSA_SHIFT_MAX):
        raise ValueError("apply_scale_32: multiplier < 0 or shift outside [2, 62]")
    half = np.left_shift(np.int64(1), shift - 1)
    if np.any(value < -half) or np.any(value >= half):
        raise ValueError("apply_scale_32: value outside [-2**(shift-1), 2**(shift-1))")
    round_ = half
    if double_round:
        round_ = half + np.where(shift > 31, np.where(value >= 0, 1 << 30, -(1 << 30)), 0)
    return (value * multiplier + round_) >> shift


def tosa_rescale_parameters(multiplier, shift, rounding, bound, where):
    """promref (M, shift) of one channel -> TOSA (multiplier, total right shift) computing the same.

    multiplier: int in [0, 2**31 - 1]; shift: promref's exponent in [-31, 30];
    rounding: 'single' or 'double'; bound: the largest |value| this RESCALE
    can see (the validator's accumulator bound).  ``(M, n)`` and
    ``(M * 2**j, n + j)`` give the same result in single rounding for every
    j >= 0, and in double rounding as long as both shifts are on the same
    side of 31 (TOSA adds +-2**30 only when the shift exceeds 31).  The
    largest such j is taken (it widens the value range most); a channel that
    still breaks a REQUIRE raises :class:`TosaExportError` naming ``where``.
    """
    m, n = int(multiplier), 31 - int(shift)
    # single: any j; double: 2**30 is added only above 31, so stay at or below 31, and never move above it
    limit = TOSA_SHIFT_MAX if rounding == "single" else (31 if n <= 31 else n)
    while m and 2 * m <= MULTIPLIER_LIMIT and n < limit:
        m, n = 2 * m, n + 1
    if m == 0:  # the product is 0 whatever the shift: any legal shift with a wide value range
        n = max(n, 32) if rounding == "single" or n > 31 else 31
    if n < TOSA_SHIFT_MIN:
        raise TosaExportError(f"{where}: multiplier {multiplier} with shift {shift} needs a TOSA shift of {n}; "
                              f"RESCALE requires 2 <= shift <= 62")
    if bound >= (1 << (n - 1)):
        raise TosaExportError(f"{where}: values up to |{bound}| reach TOSA RESCALE, which requires "
                              f"|value| < 2**{n - 1} at multiplier {m}, shift {n} (promref shift {shift}); "
                              "the TOSA reference model would refuse this graph")
    return m, n


def reciprocal_scale(count):
    """The TOSA spec's ``reciprocal_scale`` used by AVG_POOL2D -> (multiplier, shift)."""
    k = int(count - 1).bit_length()  # (1 << k) / 2 < count <= (1 << k)
    numerator = ((1 << 30) + 1) << k
    return numerator // count, 30 + k


def avg_pool2d_matches(count):
    """True iff TOSA AVG_POOL2D (zero points 0, no padding, one window of ``count`` int8
    values) equals promref's global average for *every* possible window sum.

    Exhaustive over all sums in [-128 * count, 127 * count]: TOSA multiplies by
    an approximate reciprocal and rounds half up, promref divides exactly
    and rounds half away from zero (:func:`promref.arith.global_average`).
    """
    from ... import arith
    totals = np.arange(-128 * count, 127 * count + 1, dtype=np.int64)
    multiplier, shift = reciprocal_scale(count)
    try:
        tosa = apply_scale_32(totals, multiplier, shift, double_round=False)
    except ValueError:
        return False
    return bool(np.array_equal(tosa, arith.global_average(totals, count)))
