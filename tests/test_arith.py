"""Property tests of promref.arith against independent pure-Python models.

Two kinds of reference live here:

* transliterations of TFLite's C/C++ code (gemmlowp ``SaturatingRoundingDoublingHighMul``,
  ``RoundingDivideByPOT``, both ``MultiplyByQuantizedMultiplier`` variants, the int8
  average pool), with C semantics spelled out (integer division truncates towards zero);
* exact mathematical statements with :class:`fractions.Fraction`.

Note on ties: gemmlowp's SRDHM adds ``1 - 2**30`` to negative products and then divides
truncating towards zero, so an exact tie rounds towards +inf (-2.5 -> -2), not away from
zero; RoundingDivideByPOT does round half away from zero (-2.5 -> -3).
"""
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from promref import arith

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
HALF = Fraction(1, 2)

# --------------------------------------------------------- references


def c_div(a, b):
    """C99 integer division: truncates towards zero."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def c_srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul, transliterated."""
    overflow = a == b and a == INT32_MIN
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else (1 - (1 << 30))
    high = c_div(ab + nudge, 1 << 31)
    return INT32_MAX if overflow else high


def c_rdbpot(x, exponent):
    """gemmlowp RoundingDivideByPOT, transliterated (x int32: C & and >> act on two's complement)."""
    assert 0 <= exponent <= 31
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def c_mbqm_double(x, multiplier, shift):
    """TFLite MultiplyByQuantizedMultiplier (double rounding)."""
    left = shift if shift > 0 else 0
    right = 0 if shift > 0 else -shift
    shifted = x * (1 << left)
    assert INT32_MIN <= shifted <= INT32_MAX  # otherwise undefined behaviour in C
    return c_rdbpot(c_srdhm(shifted, multiplier), right)


def c_mbqm_single(x, multiplier, shift):
    """TFLite MultiplyByQuantizedMultiplier with TFLITE_SINGLE_ROUNDING (int64 arithmetic shift)."""
    assert multiplier >= 0 and -31 <= shift <= 30
    total = 31 - shift
    return (x * multiplier + (1 << (total - 1))) >> total


def c_average(total, count):
    """TFLite int8 average pool rounding (C division)."""
    half = count // 2
    return c_div(total + half, count) if total > 0 else c_div(total - half, count)


def round_half_away(q):
    """Round a Fraction to the nearest integer, ties away from zero."""
    return int(math.floor(q + HALF)) if q >= 0 else -int(math.floor(-q + HALF))


def round_half_up(q):
    return int(math.floor(q + HALF))


def exact(acc, multiplier, shift):
    return Fraction(acc * multiplier) * Fraction(2) ** (shift - 31)


# --------------------------------------------------------- strategies

int32s = st.one_of(st.integers(INT32_MIN, INT32_MAX),
                   st.sampled_from([INT32_MIN, INT32_MIN + 1, -(1 << 30), -3, -2, -1, 0, 1, 2, 3, 1 << 30,
                                    INT32_MAX - 1, INT32_MAX]),
                   st.integers(-1000, 1000))
multipliers = st.one_of(st.integers(0, INT32_MAX),
                        st.integers(INT32_MAX - 1000, INT32_MAX),  # near 2**31
                        st.integers(0, 1000),  # tiny
                        st.integers(1 << 30, INT32_MAX),  # normalised, as quantize_multiplier makes them
                        st.sampled_from([0, 1, 1 << 30, (1 << 30) + 1, INT32_MAX]))
shifts = st.integers(arith.SHIFT_MIN, arith.SHIFT_MAX)


def fits_after_left_shift(acc, shift):
    return INT32_MIN <= acc * (1 << max(shift, 0)) <= INT32_MAX


def all_paths(function, *args):
    """Results of ``function`` on Python ints, NumPy int64 scalars and int64 arrays; all must agree."""
    python = function(*args)
    scalar = function(*[np.int64(a) for a in args])
    array = function(*[np.array([a, a], dtype=np.int64) for a in args])
    assert isinstance(array, np.ndarray) and array.dtype == np.int64
    assert int(python) == int(scalar) == int(array[0]) == int(array[1]), (args, python, scalar, array)
    return int(python)


# ------------------------------------------------- RoundingDivideByPOT


@settings(max_examples=300, deadline=None)
@given(int32s, st.integers(0, 31))
@example(-5, 1)
@example(5, 1)
@example(INT32_MIN, 31)
@example(INT32_MAX, 31)
@example(-(1 << 30), 31)
def test_rounding_divide_by_pot(x, exponent):
    result = all_paths(arith.rounding_divide_by_pot, x, exponent)
    assert result == c_rdbpot(x, exponent)
    assert result == round_half_away(Fraction(x, 1 << exponent))


def test_rounding_divide_by_pot_by_hand():
    rdbpot = arith.rounding_divide_by_pot
    assert [rdbpot(x, 1) for x in (-5, -3, -1, 1, 3, 5)] == [-3, -2, -1, 1, 2, 3]  # +-0.5 etc. away from zero
    assert [rdbpot(x, 2) for x in (-6, -2, 2, 6, -5, 5, -7, 7)] == [-2, -1, 1, 2, -1, 1, -2, 2]
    assert rdbpot(INT32_MIN, 31) == -1 and rdbpot(INT32_MAX, 31) == 1 and rdbpot(-(1 << 30), 31) == -1
    assert rdbpot(7, 0) == 7 and rdbpot(-7, 0) == -7


# ------------------------------------------- SaturatingRoundingDoublingHighMul


@settings(max_examples=300, deadline=None)
@given(int32s, int32s)
@example(INT32_MIN, INT32_MIN)
@example(INT32_MIN, INT32_MAX)
@example(INT32_MAX, INT32_MAX)
@example(-5, 1 << 30)
def test_srdhm(a, b):
    result = all_paths(arith.saturating_rounding_doubling_high_mul, a, b)
    assert result == c_srdhm(a, b)
    if a == b == INT32_MIN:
        assert result == INT32_MAX
    else:
        assert result == round_half_up(Fraction(a * b, 1 << 31))  # ties towards +inf, see the module docstring
    assert INT32_MIN <= result <= INT32_MAX


def test_srdhm_by_hand():
    srdhm = arith.saturating_rounding_doubling_high_mul
    half = 1 << 30  # b = 2**30 halves a
    assert [srdhm(a, half) for a in (1, 3, 5, 7)] == [1, 2, 3, 4]      # 0.5, 1.5, 2.5, 3.5 -> up
    assert [srdhm(a, half) for a in (-1, -3, -5, -7)] == [0, -1, -2, -3]  # -0.5 ... -3.5 -> up, as TFLite
    assert [srdhm(a, half) for a in (-2, -4, 2, 4)] == [-1, -2, 1, 2]
    assert srdhm(INT32_MIN, INT32_MIN) == INT32_MAX
    assert srdhm(INT32_MIN, INT32_MAX) == INT32_MIN + 1
    assert srdhm(INT32_MAX, INT32_MAX) == INT32_MAX - 1
    assert srdhm(0, INT32_MIN) == 0


# --------------------------------------------------------- scaling


@settings(max_examples=250, deadline=None)
@given(int32s, multipliers, shifts)
@example(5, 1 << 30, -1)
@example(-5, 1 << 30, -1)
@example(INT32_MIN, INT32_MAX, -31)
@example(INT32_MAX, INT32_MAX, 0)
@example(1, INT32_MAX, 30)
def test_scale_double(acc, multiplier, shift):
    assume(fits_after_left_shift(acc, shift))  # validate() guarantees this for every layer
    result = all_paths(arith.scale_double, acc, multiplier, shift)
    assert result == c_mbqm_double(acc, multiplier, shift)
    assert arith.scale_by_mode(acc, multiplier, shift, "double") == result
    # two roundings: at most one unit away from the exact value
    assert abs(result - exact(acc, multiplier, shift)) <= 1


@settings(max_examples=250, deadline=None)
@given(int32s, multipliers, shifts)
@example(5, 1 << 30, -1)
@example(-5, 1 << 30, -1)
@example(INT32_MIN, INT32_MAX, -31)
@example(INT32_MIN, INT32_MAX, 30)
@example(INT32_MAX, INT32_MAX, 30)
def test_scale_single(acc, multiplier, shift):
    result = all_paths(arith.scale_single, acc, multiplier, shift)
    assert result == c_mbqm_single(acc, multiplier, shift)
    assert result == round_half_up(exact(acc, multiplier, shift))
    assert arith.scale_by_mode(acc, multiplier, shift, "single") == result


# (acc, multiplier, shift, exact value, single, double), all hand-computed
TIES = [
    (5, 1 << 30, -1, "1.25", 1, 2),     # double: SRDHM 2.5 -> 3, then 3 / 2 = 1.5 -> 2
    (-5, 1 << 30, -1, "-1.25", -1, -1),  # double: SRDHM -2.5 -> -2 (TFLite), then -2 / 2 = -1
    (5, 1 << 30, 0, "2.5", 3, 3),
    (-5, 1 << 30, 0, "-2.5", -2, -2),    # single: half up; double: SRDHM's tie also goes up
    (-3, 1 << 30, 0, "-1.5", -1, -1),
    (1, 1 << 30, 0, "0.5", 1, 1),
    (-1, 1 << 30, 0, "-0.5", 0, 0),
    (2, 1 << 30, -1, "0.5", 1, 1),       # double: SRDHM exact 1, 1 / 2 = 0.5 -> 1
    (-2, 1 << 30, -1, "-0.5", 0, -1),    # double: SRDHM exact -1, -1 / 2 = -0.5 -> -1 (away from zero)
    (-4, 1 << 30, -2, "-0.5", 0, -1),
    (-6, 1 << 30, -1, "-1.5", -1, -2),   # double: -3 / 2 = -1.5 -> -2
    (6, 1 << 30, -1, "1.5", 2, 2),
    (3, 1 << 30, -1, "0.75", 1, 1),
    (-3, 1 << 30, -1, "-0.75", -1, -1),  # double: SRDHM -1.5 -> -1, -1 / 2 = -0.5 -> -1
    (-7, 1 << 30, -1, "-1.75", -2, -2),  # double: SRDHM -3.5 -> -3, -3 / 2 = -1.5 -> -2
    (-10, 1 << 30, -2, "-1.25", -1, -1),
    (3, 1 << 30, 1, "3", 3, 3),          # positive shift: exact
    (-3, 3 << 29, 1, "-4.5", -4, -4),    # double: (-6 * 0.75) = SRDHM -4.5 -> -4
    (3, 3 << 29, 1, "4.5", 5, 5),
]


@pytest.mark.parametrize("acc,multiplier,shift,value,single,double", TIES)
def test_hand_computed_ties(acc, multiplier, shift, value, single, double):
    assert exact(acc, multiplier, shift) == Fraction(value)
    assert arith.scale_single(acc, multiplier, shift) == single
    assert arith.scale_double(acc, multiplier, shift) == double
    for rounding, expected in (("single", single), ("double", double)):
        out = arith.requantize(np.array([acc]), np.array([multiplier]), np.array([shift]), 0, -128, 127, rounding)
        assert out.dtype == np.int8 and out[0] == expected


def test_scale_by_mode_unknown():
    with pytest.raises(ValueError, match="rounding"):
        arith.scale_by_mode(1, 1 << 30, 0, "nearest")
    with pytest.raises(ValueError, match="rounding"):
        arith.requantize(np.array([1]), np.array([1 << 30]), np.array([0]), 0, -128, 127, "nearest")


# ------------------------------------------------------- requantize


def ref_requantize(acc, multiplier, shift, zero_point, qmin, qmax, rounding):
    scale = c_mbqm_single if rounding == "single" else c_mbqm_double
    return max(qmin, min(qmax, zero_point + scale(acc, multiplier, shift)))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 4), st.integers(1, 5), st.sampled_from(arith.ROUNDING_MODES), st.integers(-128, 127),
       st.integers(-128, 127), st.integers(-128, 127), st.data())
def test_requantize_matches_reference(rows, channels, rounding, zero_point, lo, hi, data):
    qmin, qmax = min(lo, hi), max(lo, hi)
    multiplier = data.draw(st.lists(multipliers, min_size=channels, max_size=channels))
    shift = data.draw(st.lists(st.integers(-31, 8), min_size=channels, max_size=channels))
    limit = INT32_MAX >> max(max(shift), 0)
    acc = np.array(data.draw(st.lists(st.integers(-limit - 1, limit), min_size=rows * channels,
                                      max_size=rows * channels)), np.int64).reshape(rows, channels)
    out = arith.requantize(acc, np.array(multiplier, np.int32), np.array(shift, np.int32), zero_point, qmin, qmax,
                           rounding)
    assert out.dtype == np.int8 and out.shape == acc.shape
    for r in range(rows):
        for c in range(channels):
            assert out[r, c] == ref_requantize(int(acc[r, c]), multiplier[c], shift[c], zero_point, qmin, qmax,
                                               rounding)


@pytest.mark.parametrize("rounding", arith.ROUNDING_MODES)
def test_requantize_saturates_at_both_ends(rounding):
    acc = np.array([INT32_MIN, -(1 << 20), -1000, 0, 1000, 1 << 20, INT32_MAX], np.int64)
    m = np.full(7, INT32_MAX, np.int32)
    s = np.zeros(7, np.int32)
    out = arith.requantize(acc, m, s, 0, -128, 127, rounding)
    np.testing.assert_array_equal(out, [-128, -128, -128, 0, 127, 127, 127])
    assert out.dtype == np.int8
    # a narrower clamp (ReLU6-like) and the zero point added before clamping
    out = arith.requantize(acc, m, s, -128, -128, 20, rounding)
    np.testing.assert_array_equal(out, [-128, -128, -128, -128, 20, 20, 20])
    out = arith.requantize(np.array([120, 117, -200]), np.array([1 << 30]), np.array([1]), 10, -128, 127, rounding)
    np.testing.assert_array_equal(out, [127, 127, -128])  # 130, 127 (117 + 10), -190


def test_requantize_per_channel_on_the_last_axis():
    acc = np.array([[100, 100, 100]], np.int64)
    out = arith.requantize(acc, np.array([1 << 30, 1 << 30, 1 << 30]), np.array([0, -1, -2]), 0, -128, 127, "single")
    np.testing.assert_array_equal(out, [[50, 25, 13]])  # 12.5 -> 13


@settings(deadline=None)
@given(st.lists(int32s, min_size=1, max_size=10), st.integers(-200, 200), st.integers(-200, 200))
def test_clamp(values, lo, hi):
    assume(lo <= hi)
    x = np.array(values, np.int64)
    np.testing.assert_array_equal(arith.clamp(x, lo, hi), np.clip(x, lo, hi))
    for v in values:
        assert all_paths(arith.clamp, v, lo, hi) == min(max(v, lo), hi)


# --------------------------------------------------- global average


@settings(max_examples=150, deadline=None)
@given(st.data(), st.one_of(st.integers(1, 64), st.sampled_from([49, 196, 1 << 16, 1 << 20])))
def test_global_average(data, count):
    totals = data.draw(st.lists(st.integers(-128 * count, 127 * count), min_size=1, max_size=8))
    for total in totals:
        result = all_paths(arith.global_average, total, count)
        assert result == c_average(total, count)
        assert result == round_half_away(Fraction(total, count))
        assert -128 <= result <= 127


def test_global_average_by_hand():
    avg = arith.global_average
    assert [avg(t, 4) for t in (2, 6, 10, -2, -6, -10)] == [1, 2, 3, -1, -2, -3]  # .5 away from zero
    assert [avg(t, 4) for t in (1, -1, 3, -3)] == [0, 0, 1, -1]
    assert avg(-128 * 49, 49) == -128 and avg(127 * 49, 49) == 127
    assert avg(-24, 49) == 0 and avg(-25, 49) == -1 and avg(24, 49) == 0 and avg(25, 49) == 1
    totals = np.array([[-6, 6], [-5, 5]], np.int64)
    np.testing.assert_array_equal(avg(totals, 4), [[-2, 2], [-1, 1]])


# ------------------------------------------------ quantize_multiplier


def ref_quantize_multiplier(real):
    """Exact: real = f * 2**shift with f in [1/2, 1); M = round_half_away(f * 2**31)."""
    r = Fraction(real)
    if r == 0:
        return 0, 0
    shift = 0
    while r >= 1:
        r /= 2
        shift += 1
    while r < HALF:
        r *= 2
        shift -= 1
    m = round_half_away(r * (1 << 31))
    if m == 1 << 31:
        m, shift = 1 << 30, shift + 1
    if shift < arith.SHIFT_MIN:
        return 0, 0
    return m, shift


reals = st.one_of(
    st.floats(min_value=2.0 ** -31, max_value=2.0 ** 29, allow_nan=False, allow_infinity=False),
    st.builds(lambda m, e: m * 2.0 ** e, st.floats(0.5, 1.0, exclude_max=True), st.integers(-31, 29)),
    st.floats(min_value=1e-6, max_value=10.0),
)


@settings(max_examples=300, deadline=None)
@given(reals)
def test_quantize_multiplier(real):
    m, shift = arith.quantize_multiplier(real)
    assert type(m) is int and type(shift) is int
    assert (m, shift) == ref_quantize_multiplier(real)
    assert (1 << 30) <= m < (1 << 31) and arith.SHIFT_MIN <= shift <= arith.SHIFT_MAX
    error = abs(Fraction(m) * Fraction(2) ** (shift - 31) - Fraction(real))
    assert error <= Fraction(2) ** (shift - 32)
    assert arith.multiplier_to_real(m, shift) == pytest.approx(real, rel=2.0 ** -30)


@pytest.mark.parametrize("real,expected", [
    (0.0, (0, 0)),
    (-0.0, (0, 0)),
    (5e-324, (0, 0)),                 # tiny: below 2**-32
    (1e-12, (0, 0)),
    (2.0 ** -33, (0, 0)),
    (2.0 ** -32, (1 << 30, -31)),     # the smallest power of two that survives
    (0.5, (1 << 30, 0)),
    (1.0, (1 << 30, 1)),
    (0.25, (1 << 30, -1)),
    (2.0 ** 29, (1 << 30, 30)),
    (0.75, (3 << 29, 0)),
    (1 - 2.0 ** -31, (INT32_MAX, 0)),       # largest fraction without a carry
    (1 - 2.0 ** -32, (1 << 30, 1)),         # f * 2**31 = 2**31 - 0.5: the tie rounds up and carries
    (1 - 2.0 ** -40, (1 << 30, 1)),         # carries into the next power of two
    ((1 - 2.0 ** -40) * 2.0 ** -32, (1 << 30, -31)),  # carries from shift -32 back into range
    (0.5 + 2.0 ** -32, ((1 << 30) + 1, 0)),  # f * 2**31 = 2**30 + 0.5: the tie rounds away from zero
    (0.5 + 2.0 ** -33, (1 << 30, 0)),        # 2**30 + 0.25 rounds down
])
def test_quantize_multiplier_edges(real, expected):
    assert arith.quantize_multiplier(real) == expected
    assert ref_quantize_multiplier(real) == expected


@pytest.mark.parametrize("real", [2.0 ** 30, 2.0 ** 30 - 2.0 ** -23, 1e12, float("inf"), float("nan"), -1e-9, -1.0])
def test_quantize_multiplier_refuses(real):
    with pytest.raises(ValueError):
        arith.quantize_multiplier(real)


def test_quantize_multipliers_vector():
    reals = [0.0, 0.5, 1e-12, 0.75, 3.3e-5, 1.0 - 2.0 ** -40]
    m, s = arith.quantize_multipliers(np.array(reals))
    assert m.dtype == np.int32 and s.dtype == np.int32
    assert list(zip(m.tolist(), s.tolist())) == [arith.quantize_multiplier(r) for r in reals]
    assert arith.multiplier_to_real(m, s).dtype == np.float64


# ------------------------------------------------------ ternary packing


ternary_arrays = hnp.arrays(np.int8, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=7),
                            elements=st.integers(-1, 1))


@settings(max_examples=200, deadline=None)
@given(ternary_arrays)
def test_pack_unpack_round_trip(t):
    packed = arith.pack_ternary(t)
    assert packed.dtype == np.uint8 and packed.shape == ((t.size + 3) // 4,)
    codes, padding = arith.unpack_ternary_codes(packed, t.size)
    assert codes.shape == (t.size,) and padding.size == packed.size * 4 - t.size < 4
    assert not padding.any()
    assert set(np.unique(codes).tolist()) <= {0, 1, 2}
    np.testing.assert_array_equal(arith.codes_to_ternary(codes).reshape(t.shape), t)
    # the documented bit layout, one weight at a time, row-major
    for i, w in enumerate(t.ravel().tolist()):
        assert (int(packed[i // 4]) >> (2 * (i % 4))) & 3 == arith.TERNARY_CODE[w]


def test_pack_ternary_by_hand():
    # weights 0, +1, -1, 0 | +1 -> byte 0 = 0b00_10_01_00, byte 1 = 0b01 (padding 0)
    np.testing.assert_array_equal(arith.pack_ternary(np.array([0, 1, -1, 0, 1], np.int8)), [0b00100100, 0b01])
    assert arith.pack_ternary(np.zeros((0, 3), np.int8)).shape == (0,)
    codes, padding = arith.unpack_ternary_codes(np.array([0b11100100], np.uint8), 3)
    assert codes.tolist() == [0, 1, 2] and padding.tolist() == [3]


@pytest.mark.parametrize("bad", [[2], [0, -2], [[1, 0], [0, 5]]])
def test_pack_ternary_refuses_non_ternary(bad):
    with pytest.raises(ValueError):
        arith.pack_ternary(np.array(bad, np.int8))


# ------------------------------------------------------ weight quantizers


float_weights = hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 9)),
                           elements=st.floats(-4, 4, width=32, allow_subnormal=False))


@settings(max_examples=100, deadline=None)
@given(float_weights, st.booleans())
def test_ternarize(w, zero_channel):
    if zero_channel:
        w = w.copy()
        w[0] = 0
    t, scale = arith.ternarize(w)
    assert t.dtype == np.int8 and t.shape == w.shape and set(np.unique(t).tolist()) <= {-1, 0, 1}
    assert scale.dtype == np.float32 and scale.shape == (w.shape[0],) and np.all(scale > 0)
    deltas = np.float32(0.7) * np.mean(np.abs(w), axis=1)
    for o in range(w.shape[0]):
        a = np.abs(w[o])
        delta = deltas[o]
        np.testing.assert_array_equal(t[o] != 0, a > delta)
        assert np.all(np.sign(w[o][t[o] != 0]) == t[o][t[o] != 0])
        if np.any(t[o]):
            assert scale[o] == pytest.approx(a[t[o] != 0].mean(), rel=1e-5)
        else:
            assert scale[o] == 1.0
    if zero_channel:
        assert not t[0].any() and scale[0] == 1.0


def test_ternarize_4d():
    w = np.random.default_rng(0).normal(size=(4, 3, 3, 5)).astype(np.float32)
    t, scale = arith.ternarize(w)
    assert t.shape == w.shape and scale.shape == (4,)


@settings(max_examples=100, deadline=None)
@given(float_weights, st.booleans(), st.sampled_from([0, 1, -1]))
def test_quantize_int8_symmetric(w, zero_channel, axis):
    if zero_channel:
        w = w.copy()
        w[:, 0] = 0
        w[0] = 0
    q, scale = arith.quantize_int8_symmetric(w, axis=axis)
    assert q.dtype == np.int8 and q.shape == w.shape
    assert q.min() >= -127 and q.max() <= 127
    assert scale.dtype == np.float32 and scale.shape == (w.shape[axis],) and np.all(scale > 0)
    moved_q, moved_w = np.moveaxis(q, axis, 0), np.moveaxis(w, axis, 0)
    for i in range(scale.size):
        amax = np.abs(moved_w[i]).max()
        if amax == 0:
            assert scale[i] == 1 and not moved_q[i].any()
        else:
            assert scale[i] == pytest.approx(amax / 127, rel=1e-6)
            assert np.abs(moved_q[i]).max() == 127
            err = np.abs(moved_q[i].astype(np.float64) * scale[i] - moved_w[i])
            assert np.all(err <= scale[i] * (0.5 + 1e-4))


# ------------------------------------------------- numpy / python agreement


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(int32s, multipliers, shifts), min_size=1, max_size=30))
def test_vector_paths_agree_with_scalar_paths(rows):
    acc = np.array([r[0] for r in rows], np.int64)
    m = np.array([r[1] for r in rows], np.int64)
    s = np.array([r[2] for r in rows], np.int64)
    single = arith.scale_single(acc, m, s)
    assert single.dtype == np.int64
    assert single.tolist() == [c_mbqm_single(*r) for r in rows]
    ok = [fits_after_left_shift(r[0], r[2]) for r in rows]
    double = arith.scale_double(acc[ok], m[ok], s[ok])
    assert double.tolist() == [c_mbqm_double(*r) for r, keep in zip(rows, ok) if keep]
    high = arith.saturating_rounding_doubling_high_mul(acc, m)
    assert high.tolist() == [c_srdhm(r[0], r[1]) for r in rows]
    e = np.abs(s)
    assert arith.rounding_divide_by_pot(acc, e).tolist() == [c_rdbpot(r[0], abs(r[2])) for r in rows]
