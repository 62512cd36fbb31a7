"""The one source of arithmetic truth for promref.

Every backend, the trainer and the exporters use these functions; docs/spec.md
describes them in words.  The integer functions are written with plain
operators only (``+ - * >> << & < ==``), so the *same source* works on NumPy
int64 arrays (the reference backend), on Python/NumPy scalars, and inside
Numba-compiled kernels (``numba.njit(requantize_single)`` compiles this very
function).  All integer inputs are int64 holding int32 values: products of an
int32 accumulator and an int32 multiplier need 62 bits, so int64 is exact.

Rounding modes (a model names one; see docs/spec.md, "Requantization"):

``"double"``
    TFLite's reference rounding: a rounding doubling high multiply
    (``SaturatingRoundingDoublingHighMul``, ties rounded up, towards +inf)
    followed by a rounding right shift (``RoundingDivideByPOT``, ties rounded
    away from zero).
``"single"``
    One rounding, half up (towards +inf): ``(acc * M + 2**(n-1)) >> n`` with
    ``n = 31 - shift``.  This is TFLite's ``TFLITE_SINGLE_ROUNDING`` and TOSA's
    ``apply_scale_32`` with ``double_round=False``.  promref's default.
"""
import math

import numpy as np

try:  # lets Numba kernels call these very functions; they stay plain Python here
    from numba.extending import register_jitable as _jittable
except ImportError:  # pragma: no cover - numba is a core dependency, but arith needs only numpy
    def _jittable(function):
        return function

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
INT8_MIN, INT8_MAX = -128, 127

ROUNDING_MODES = ("double", "single")
DEFAULT_ROUNDING = "single"

#: multipliers are Q0.31 fixed point numbers in [0, 2**31 - 1]
MULTIPLIER_MAX = INT32_MAX
#: shift > 0 multiplies by 2**shift, shift < 0 divides (TFLite's convention)
SHIFT_MIN, SHIFT_MAX = -31, 30


# ---------------------------------------------------------------- rounding


@_jittable
def rounding_divide_by_pot(x, exponent):
    """``x / 2**exponent`` rounded half away from zero (TFLite ``RoundingDivideByPOT``).

    x: int64 values; exponent: int64 in [0, 31].
    """
    mask = (1 << exponent) - 1
    remainder = x & mask
    # for negative x the threshold moves up by one, so that -2.5 -> -3
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


@_jittable
def saturating_rounding_doubling_high_mul(a, b):
    """``round(a * b / 2**31)``, ties rounded up (towards +inf), saturating (TFLite SRDHM).

    The nudge is +2**30 for a non-negative product and 1 - 2**30 for a negative
    one, followed by a division that truncates towards zero: so 1.5 -> 2 and
    -1.5 -> -1 (gemmlowp's behaviour, which TFLite inherits).

    a, b: int64 holding int32 values.  The only input that saturates is
    a == b == INT32_MIN (result INT32_MAX).
    """
    ab = a * b
    nudge = (1 << 30) - (ab < 0) * ((1 << 31) - 1)  # 2**30 if ab >= 0 else 1 - 2**30
    v = ab + nudge
    # C integer division by 2**31 truncates towards zero; >> floors, so fix up
    # negative values that had a remainder
    q = (v >> 31) + ((v < 0) & ((v & ((1 << 31) - 1)) != 0))
    return q - (q > INT32_MAX)  # only q == 2**31 is possible: saturate it


@_jittable
def scale_double(acc, multiplier, shift):
    """``acc * multiplier * 2**(shift - 31)`` with TFLite double rounding.

    acc, multiplier, shift: int64 (broadcastable).  A positive shift is
    applied to ``acc`` *before* the multiply, as TFLite does; the model loader
    proves that ``acc << shift`` fits in int32.
    """
    left = shift * (shift > 0)
    right = -shift * (shift < 0)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(acc << left, multiplier), right)


@_jittable
def scale_single(acc, multiplier, shift):
    """``acc * multiplier * 2**(shift - 31)`` with one rounding, half up.

    acc, multiplier, shift: int64 (broadcastable); shift in [-31, 30] so the
    total right shift ``31 - shift`` is in [1, 62] and nothing overflows int64.
    """
    total = 31 - shift
    return (acc * multiplier + (1 << (total - 1))) >> total


#: mode name -> its scale function: the one place a model's rounding name becomes a rule
ROUNDING_RULES = {"double": scale_double, "single": scale_single}


def rounding_rule(rounding, modes_only=False):
    """The scale function ``(acc, multiplier, shift) -> int64`` that ``rounding`` stands for.

    rounding: a mode name (``"single"``, ``"double"``) or a *rule*: any callable
    with the signature of :func:`scale_single` (e.g. a peer runtime's rounding
    from :mod:`promref.conformance.rounding`), returned as is, so that the
    reference kernels can run under it.  ``modes_only`` refuses rules (for
    backends compiled for promref's two modes).  Unknown names: ValueError.
    """
    if isinstance(rounding, str) and rounding in ROUNDING_RULES:
        return ROUNDING_RULES[rounding]
    if callable(rounding) and not modes_only:
        return rounding
    raise ValueError(f"unknown rounding mode {rounding!r}; expected one of {ROUNDING_MODES}"
                     + ("" if modes_only else " or a rounding rule (a callable)"))


def scale_by_mode(acc, multiplier, shift, rounding):
    """``acc * multiplier * 2**(shift - 31)`` rounded by ``rounding`` (a mode name or a rule,
    see :func:`rounding_rule`)."""
    return rounding_rule(rounding)(acc, multiplier, shift)


def max_centred_input(zero_point):
    """Largest ``|x - zero_point|`` over int8 ``x``: ``max(|-128 - zp|, |127 - zp|)`` (a Python int).

    The factor every overflow bound multiplies the weights by.
    """
    zero_point = int(zero_point)
    return max(abs(INT8_MIN - zero_point), abs(INT8_MAX - zero_point))


@_jittable
def clamp(x, lo, hi):
    """Saturate ``x`` to ``[lo, hi]`` (written with operators so Numba can compile it)."""
    x = x - (x > hi) * (x - hi)
    return x - (x < lo) * (x - lo)


def requantize(acc, multiplier, shift, zero_point, qmin, qmax, rounding):
    """int32 accumulator -> int8 output: ``clamp(zero_point + scale(acc), qmin, qmax)``.

    acc: int64 array; multiplier, shift: int64 per output channel (last axis);
    zero_point, qmin, qmax: ints; rounding: a mode name or a rule
    (:func:`rounding_rule`).  Returns int8.  ReLU6 is just a tighter ``[qmin, qmax]``.
    """
    acc = np.asarray(acc, dtype=np.int64)
    scaled = scale_by_mode(acc, np.asarray(multiplier, np.int64), np.asarray(shift, np.int64), rounding)
    return clamp(scaled + zero_point, qmin, qmax).astype(np.int8)


@_jittable
def global_average(total, count):
    """Integer mean of ``count`` int8 values summed to ``total``, half away from zero.

    ``total >= 0 ? (total + count//2) // count : -((-total + count//2) // count)``,
    which is TFLite's int8 average pool.  total: int64; count: positive int.
    """
    sign = 1 - 2 * (total < 0)
    return sign * ((sign * total + count // 2) // count)


# ------------------------------------------------- float scales -> integers


def quantize_multiplier(real):
    """Real positive scale -> (multiplier, shift) with ``real ~= M * 2**(shift-31)``.

    TFLite's ``QuantizeMultiplier``: ``frexp`` then round the fraction half
    away from zero to 31 bits.  Only exporters call this; a model file stores
    the resulting integers, which are the truth.
    """
    real = float(real)
    if not (real >= 0.0 and math.isfinite(real)):
        raise ValueError(f"scale must be finite and >= 0, got {real!r}")
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    q = int(math.floor(fraction * (1 << 31) + 0.5))  # fraction > 0: half away from zero
    if q == (1 << 31):
        q //= 2
        shift += 1
    if shift < SHIFT_MIN:
        return 0, 0
    if shift > SHIFT_MAX:
        raise ValueError(f"scale {real!r} is too large for a 31-bit multiplier and shift <= {SHIFT_MAX}")
    return q, shift


def quantize_multipliers(reals):
    """Vector version of :func:`quantize_multiplier`: -> (int32 array, int32 array)."""
    pairs = [quantize_multiplier(r) for r in np.ravel(reals)]
    return (np.array([m for m, _ in pairs], dtype=np.int32),
            np.array([s for _, s in pairs], dtype=np.int32))


#: left shift of the residual add's inputs (TFLite's choice for 8-bit ADD)
ADD_LEFT_SHIFT = 20


def add_multipliers(scale_a, scale_b, scale_out, left_shift=ADD_LEFT_SHIFT):
    """Multipliers and shifts of a residual add -> (int32 [3], int32 [3]) for a, b, output.

    TFLite's ADD structure: both inputs are brought to ``twice_max = 2 *
    max(s_a, s_b)`` (factors ``s_a / twice_max`` and ``s_b / twice_max``, both
    at most 1/2), the sum is rescaled by ``twice_max / (2**left_shift * s_out)``.
    """
    twice_max = 2.0 * max(float(scale_a), float(scale_b))
    return quantize_multipliers([scale_a / twice_max, scale_b / twice_max,
                                 twice_max / ((1 << left_shift) * float(scale_out))])


def multiplier_to_real(multiplier, shift):
    """The real number ``M * 2**(shift - 31)`` an integer pair stands for (float64)."""
    return np.asarray(multiplier, np.float64) * np.exp2(np.asarray(shift, np.float64) - 31)


# ------------------------------------------------------- weight quantizers


def quantize_int8_symmetric(w, axis=0):
    """Float weights -> (int8 in [-127, 127], float32 scale per slice along ``axis``).

    Per-output-channel symmetric quantization: ``scale = max|w| / 127``,
    ``q = clip(round_half_even(w / scale))``.  All-zero channels get scale 1.
    """
    w = np.asarray(w, dtype=np.float32)
    reduce_axes = tuple(i for i in range(w.ndim) if i != axis % w.ndim)
    amax = np.max(np.abs(w), axis=reduce_axes, keepdims=True)
    scale = np.where(amax > 0, amax / np.float32(127), np.float32(1)).astype(np.float32)
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale.reshape(-1)


def ternarize(w, threshold_factor=0.7):
    """Float weights [Cout, ...] -> (codes in {-1, 0, 1} int8, float32 scale [Cout]).

    Ternary Weight Networks rule, per output channel: ``delta = 0.7 * mean|w|``;
    ``t = sign(w)`` where ``|w| > delta`` else 0; the scale is the mean of
    ``|w|`` over the non-zero positions (the least-squares optimum for fixed t).
    A channel with no weight above the threshold gets scale 1 and all zeros.
    """
    w = np.asarray(w, dtype=np.float32)
    flat = w.reshape(w.shape[0], -1)
    delta = np.float32(threshold_factor) * np.mean(np.abs(flat), axis=1, keepdims=True)
    mask = np.abs(flat) > delta
    t = (np.sign(flat) * mask).astype(np.int8)
    count = mask.sum(axis=1)
    total = np.sum(np.abs(flat) * mask, axis=1)
    scale = np.where(count > 0, total / np.maximum(count, 1), 1.0).astype(np.float32)
    return t.reshape(w.shape), scale


# ---------------------------------------------------------- 2-bit packing

#: 2-bit codes: 0b00 -> 0, 0b01 -> +1, 0b10 -> -1; 0b11 is invalid
TERNARY_CODE = {0: 0, 1: 1, -1: 2}


def pack_ternary(t):
    """Ternary int8 array (any shape) -> uint8 bytes, four weights per byte.

    Row-major order; weight ``i`` sits in bits ``2*(i % 4)`` .. ``2*(i % 4)+1``
    of byte ``i // 4`` (little end first); the tail is padded with code 0.
    """
    flat = np.asarray(t, dtype=np.int8).ravel()
    if flat.size and (flat.min() < -1 or flat.max() > 1):
        raise ValueError("ternary weights must be in {-1, 0, 1}")
    codes = np.where(flat < 0, 2, flat).astype(np.uint8)
    codes = np.concatenate([codes, np.zeros((-codes.size) % 4, np.uint8)]).reshape(-1, 4)
    return (codes[:, 0] | codes[:, 1] << 2 | codes[:, 2] << 4 | codes[:, 3] << 6).astype(np.uint8)


def unpack_ternary_codes(packed, count):
    """uint8 bytes -> the first ``count`` 2-bit codes (uint8 in 0..3) and the padding codes."""
    packed = np.asarray(packed, dtype=np.uint8)
    codes = np.stack([(packed >> s) & 3 for s in (0, 2, 4, 6)], axis=1).ravel()
    return codes[:count], codes[count:]


def codes_to_ternary(codes):
    """2-bit codes (0, 1, 2) -> int8 {0, +1, -1}.  Code 3 must be rejected before."""
    return np.where(codes == 2, -1, codes).astype(np.int8)
