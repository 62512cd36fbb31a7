"""The per-op golden cases: inputs and parameters, chosen to hit the corners.

Each builder returns a case *spec* (id, op, rounding, description, params and
the input arrays); :mod:`promref.conformance.generate` runs promref's
reference kernels on it to get the expected outputs.  Everything is drawn
from ``numpy.random.default_rng`` seeded by the case's name (CRC-32), so the
suite is the same on every run (and machine, for one NumPy version), and a case's ``_single`` and
``_double`` variants share their inputs: they differ only by rounding.

What the cases aim at (the manifest's ``coverage`` field counts it per case):
exact .5 ties for each rounding step, saturation at both ends of the clamp,
the extreme multipliers 2**31 - 1, 2**30, 1 and 0, shifts from -31 to +30,
accumulators at the int32 limits, 1-channel tensors and odd shapes, 3x3
stride-2 convolutions with asymmetric padding, non-zero weight zero points.

Every case stays inside the domain promref's validator accepts for a layer:
no int32 accumulator can overflow, and for a positive shift ``|acc| << shift``
fits in int32 (the "double" rule shifts before multiplying).  One case probes
a corner on purpose: ``requantize/no_wrap_*`` adds zero point 127 to scaled
values next to 2**31 - 1, a sum docs/spec.md requires to saturate or be
computed in 64 bits ("Order of the final additions"), never to wrap.
"""
import zlib

import numpy as np

from .. import arith
from ..validate import accumulator_bound, scaled_bound
from . import rounding as rules
from ..kernels.reference import ACCUMULATE
from .reference import make_layer

I32_MIN, I32_MAX = arith.INT32_MIN, arith.INT32_MAX
ROUNDINGS = ("single", "double")


class CaseError(ValueError):
    """A generated case falls outside the valid domain (a bug in this module)."""


def _rng(name):
    return np.random.default_rng(zlib.crc32(name.encode("utf-8")))


def _spec(op, name, rounding, description, params, inputs):
    case_id = f"{op}/{name}" + (f"_{rounding}" if rounding else "")
    return dict(id=case_id, op=op, rounding=rounding, description=description, params=params, inputs=inputs)


def _int8(rng, shape, extremes=True):
    """Uniform int8 with, if asked, a few forced -128 and 127 values."""
    x = rng.integers(-128, 128, size=shape).astype(np.int8)
    if extremes and x.size >= 4:
        flat = x.reshape(-1)
        idx = rng.choice(flat.size, size=max(2, flat.size // 16), replace=False)
        flat[idx[: len(idx) // 2]] = -128
        flat[idx[len(idx) // 2:]] = 127
    return x


# --------------------------------------------------------------- validity


def _max_positive_shift(bound):
    """Largest shift s in [0, 30] with ``bound << s <= INT32_MAX``."""
    s = 0
    while s < 30 and (bound << (s + 1)) <= I32_MAX:
        s += 1
    return s


def check_weighted(op, inputs, params):
    """Raise :class:`CaseError` unless a weighted op case is valid (see module docstring)."""
    layer = make_layer(op, inputs, params)
    m, s = inputs["multiplier"], inputs["shift"]
    if m.dtype != np.int32 or s.dtype != np.int32 or inputs["bias"].dtype != np.int32:
        raise CaseError("bias, multiplier and shift must be int32")
    if m.min() < 0 or s.min() < arith.SHIFT_MIN or s.max() > arith.SHIFT_MAX:
        raise CaseError(f"multiplier/shift out of range: {m}, {s}")
    if op == "pointwise_ternary" and (inputs["weights"].min() < -1 or inputs["weights"].max() > 1):
        raise CaseError("ternary weights must be in {-1, 0, 1}")
    for o, bound in enumerate(accumulator_bound(layer, params.get("in_zero_point", 0))):
        if bound > I32_MAX or bound << max(int(s[o]), 0) > I32_MAX:
            raise CaseError(f"channel {o}: accumulator bound {bound} (shift {s[o]}) overflows int32")


def check_add(inputs, params):
    m, s, left = inputs["multiplier"], inputs["shift"], params["left_shift"]
    total = 0
    for i, zp in enumerate((params["a_zero_point"], params["b_zero_point"])):
        bound = arith.max_centred_input(zp) << left
        if bound << max(int(s[i]), 0) > I32_MAX:
            raise CaseError(f"add input {i}: {bound} << {s[i]} overflows int32")
        total += scaled_bound(bound, m[i], int(s[i]))
    if total > I32_MAX or total << max(int(s[2]), 0) > I32_MAX:
        raise CaseError(f"add: rescaled sum bound {total} overflows int32")


def check_requantize(acc, shift):
    """For a positive shift, ``|acc| << shift`` must fit in int32 (the 'double' rule shifts first)."""
    acc = np.abs(acc.astype(np.int64))
    s = np.broadcast_to(shift.astype(np.int64), acc.shape)
    if np.any((s > 0) & ((acc << np.maximum(s, 0)) > I32_MAX)):
        raise CaseError("requantize: |acc| << shift overflows int32")


# --------------------------------------------------------------- multipliers

#: the per-channel multiplier "palette" of the weighted op cases
PALETTE = ("tie", "calibrated", "saturate", "max", "three_eighths", "tiny")


def _log2(v):
    return int(np.floor(np.log2(max(float(v), 1.0))))


def palette(acc, bounds, kinds=PALETTE, offset=0):
    """Per-channel (multiplier, shift) int32 arrays for accumulators ``acc`` [..., C].

    Channel c gets ``kinds[(c + offset) % len(kinds)]``:

    tie            M = 2**30 and a shift <= 0: y = acc / 2**d, so 1 in 2**d values is an exact tie
    tie1, tie2 ..  the same with d fixed (for the small-accumulator ``small_ties`` cases)
    calibrated     ~ 30 / std(acc), like a real layer
    saturate       ~ 400 / std(acc): most outputs clip, at both ends
    max            M = 2**31 - 1 (the largest multiplier)
    three_eighths  M = 3 * 2**28 (an odd factor: ties at other residues than with 2**30)
    tiny           M = 1 with the largest shift the channel's bound allows
    """
    flat = acc.reshape(-1, acc.shape[-1]).astype(np.float64)
    spread = flat.std(axis=0) + np.abs(flat.mean(axis=0)) / 4 + 1.0
    mult, shift = [], []
    for c in range(acc.shape[-1]):
        kind = kinds[(c + offset) % len(kinds)]
        sp = spread[c]
        if kind == "tie":
            d = min(max(_log2(sp / 24) + 1, 1), 31)
            m, s = 1 << 30, 1 - d
        elif kind.startswith("tie"):  # tie1, tie2, ...: y = acc / 2**d for a fixed d
            m, s = 1 << 30, 1 - int(kind[3:])
        elif kind == "calibrated":
            m, s = arith.quantize_multiplier(30.0 / sp)
        elif kind == "saturate":
            m, s = arith.quantize_multiplier(400.0 / sp)
        elif kind == "max":
            m, s = I32_MAX, -min(max(_log2(sp / 30), 0), 31)
        elif kind == "three_eighths":
            m, s = 3 << 28, 3 - min(max(_log2(3 * sp / 30), 0), 34)
            s = max(s, arith.SHIFT_MIN)
        elif kind == "tiny":
            m, s = 1, _max_positive_shift(bounds[c])
        else:
            raise ValueError(kind)
        s = min(s, _max_positive_shift(bounds[c]))  # keep |acc| << shift inside int32
        mult.append(m)
        shift.append(s)
    return np.array(mult, np.int32), np.array(shift, np.int32)


# --------------------------------------------------------------- requantize

GRID_MULTIPLIERS = (I32_MAX, 1 << 30, (1 << 30) + 1, 3 << 28, 1518500250, 1, 0)
GRID_SHIFTS = (-31, -24, -16, -9, -2, -1, 0, 1, 7, 30)
GRID_ROWS = 40


def _acc_candidates(rng, m, s, rows):
    """A column of accumulators for one (M, shift): limits, ties of both rules, near-ties, random."""
    hi = I32_MAX >> max(s, 0)
    lo = -hi if s > 0 else I32_MIN
    out = [lo, hi, lo + 1, hi - 1, 0, 1, -1, 2, -2, 3, -3]
    if m > 0:
        k = (m & -m).bit_length() - 1        # trailing zeros of M
        n = 31 - s
        e = n - 1 - k                        # single-rounding ties: acc = odd * 2**e
        if 0 <= e <= 31:
            for j in (1, -1, 3, -3, 5, -5):
                out += [j << e, (j << e) + 1, (j << e) - 1]
            j = hi >> e
            j -= 1 - (j & 1)                 # the largest odd j that fits
            if j > 0:
                out += [j << e, -(j << e)]
        left, right = max(s, 0), max(-s, 0)
        e1 = 30 - k - left                   # first step of "double": (acc << left) * M = odd * 2**30
        if 0 <= e1 <= 31:
            out += [1 << e1, -(1 << e1), 3 << e1, -(3 << e1)]
        if right > 0:                        # second step: the high half is an odd multiple of 2**(right-1)
            for j in (1, -1, 3, -3, 7, -7):
                r = j << (right - 1)
                a = ((r << 31) + m // 2) // m
                out += [a - 1, a, a + 1]
    column = []
    for v in out:
        if lo <= v <= hi and v not in column:
            column.append(v)
    column = column[:rows]
    tries = 0
    while len(column) < rows:
        tries += 1
        if len(column) % 2:
            v = int(rng.integers(lo, hi, endpoint=True))
        else:  # log-uniform magnitudes (small values are what layers see), in integers only
            bits = int(rng.integers(0, hi.bit_length() + 1))
            v = int(rng.integers(0, 1 << bits)) * (1 if rng.integers(0, 2) else -1)
        v = min(max(v, lo), hi)
        if v not in column or tries > 10 * rows:  # a tiny range (shift 30: -1..1) repeats values
            column.append(v)
    return column


def _grid(rng):
    pairs = [(m, s) for m in GRID_MULTIPLIERS for s in GRID_SHIFTS]
    acc = np.array([_acc_candidates(rng, m, s, GRID_ROWS) for m, s in pairs], np.int64).T
    mult = np.array([m for m, _ in pairs], np.int32)
    shift = np.array([s for _, s in pairs], np.int32)
    return acc, mult, shift


def _fit_zero_point(acc, mult, shift, zero_point):
    """Halve accumulators whose scaled value plus ``zero_point`` would leave int32 under either rule."""
    acc = acc.copy()
    for _ in range(64):
        bad = np.zeros(acc.shape, bool)
        for rule in ROUNDINGS:
            v = rules.scale(rule, acc, mult.astype(np.int64), shift.astype(np.int64)) + zero_point
            bad |= (v > I32_MAX) | (v < I32_MIN)
        if not bad.any():
            return acc
        acc[bad] //= 2
    raise CaseError("could not fit accumulators")


def requantize_cases(rounding):
    rng = _rng("requantize/grid")
    acc, mult, shift = _grid(rng)
    check_requantize(acc, shift)
    cols = f"{len(GRID_MULTIPLIERS)} multipliers x {len(GRID_SHIFTS)} shifts"
    yield _spec("requantize", "grid", rounding,
                f"acc [{GRID_ROWS}, {acc.shape[1]}] int32, one channel per (M, shift) of {cols}: int32 limits, "
                "exact ties of each rounding step, near-ties, random; zero point 0, full int8 clamp",
                dict(out_zero_point=0, out_min=-128, out_max=127),
                [("acc", acc.astype(np.int32)), ("multiplier", mult), ("shift", shift)])
    relu = _fit_zero_point(acc, mult, shift, -128)
    yield _spec("requantize", "relu6_clamp", rounding,
                "the grid with zero point -128 and a ReLU6-like clamp [-128, 23]",
                dict(out_zero_point=-128, out_min=-128, out_max=23),
                [("acc", relu.astype(np.int32)), ("multiplier", mult), ("shift", shift)])
    yield _spec("requantize", "no_wrap", rounding,
                "the grid with zero point 127: scaled values next to 2**31 - 1 plus the zero point must "
                "saturate to 127, not wrap around int32 (compute the sum in 64 bits or saturate)",
                dict(out_zero_point=127, out_min=-128, out_max=127),
                [("acc", acc.astype(np.int32)), ("multiplier", mult), ("shift", shift)])
    rng = _rng("requantize/one_channel_odd_shape")
    small = rng.integers(-70, 71, size=(1, 3, 5, 1)).astype(np.int32)
    small.reshape(-1)[:4] = (-12, 12, -4, 4)
    yield _spec("requantize", "one_channel_odd_shape", rounding,
                "acc [1, 3, 5, 1], M = 2**30, shift -2 (y = acc / 8: ties at acc = 4 mod 8, and at every odd "
                "acc for the first step of 'double'); zero point -3, clamp [-9, 6] saturates at both ends",
                dict(out_zero_point=-3, out_min=-9, out_max=6),
                [("acc", small), ("multiplier", np.array([1 << 30], np.int32)), ("shift", np.array([-2], np.int32))])


# --------------------------------------------------------------- weighted ops


def _weighted(op, name, rounding, description, x, weights, bias, params, kinds=PALETTE, offset=0):
    """Finish a weighted case: choose the per-channel multipliers from the accumulators, validate."""
    cout = weights.shape[-1] if op == "depthwise_conv2d" else weights.shape[0]
    inputs = dict(x=x, weights=weights, bias=bias, multiplier=np.full(cout, 1 << 30, np.int32),
                  shift=np.zeros(cout, np.int32))
    layer = make_layer(op, inputs, params)
    acc = ACCUMULATE[op](x, layer, params["in_zero_point"])
    bounds = accumulator_bound(layer, params["in_zero_point"])
    inputs["multiplier"], inputs["shift"] = palette(acc, bounds, kinds, offset)
    check_weighted(op, inputs, params)
    return _spec(op, name, rounding, description, params, list(inputs.items()))


def _ternary(rng, shape, p=(0.3, 0.4, 0.3)):
    return rng.choice(np.array([-1, 0, 1], np.int8), size=shape, p=list(p))


def _int8_weights(rng, shape, sigma=40):
    return np.clip(np.rint(rng.normal(0, sigma, size=shape)), -127, 127).astype(np.int8)


def _bias(rng, n, scale):
    return rng.integers(-scale, scale + 1, size=n).astype(np.int32)


def _q(zp, lo=-128, hi=127):
    return dict(out_zero_point=zp, out_min=lo, out_max=hi)


#: multipliers of the ``small_ties`` cases: y = acc/2, acc/4, acc/8 and 3*acc/8-like
TIE_KINDS = ("tie1", "tie2", "tie3", "three_eighths")
SMALL_TIES = ("small accumulators (inputs within 6 of the zero point, weights in [-3, 3]) with "
              "multipliers 2**30 / 2**shift, so that a quarter to a half of the outputs are exact .5 ties "
              "of some rounding step: ")


def _near(rng, shape, zero_point, spread=6):
    """int8 values within ``spread`` of ``zero_point`` (small accumulators, many ties)."""
    return np.clip(zero_point + rng.integers(-spread, spread + 1, size=shape), -128, 127).astype(np.int8)


def _small_weights(rng, shape):
    return rng.integers(-3, 4, size=shape).astype(np.int8)


def pointwise_cases(rounding):
    op = "pointwise_ternary"
    rng = _rng(f"{op}/odd_shapes")
    yield _weighted(op, "odd_shapes", rounding,
                    "x [2, 3, 5, 7], 9 outputs, input zero point -5, every multiplier kind of the palette",
                    _int8(rng, (2, 3, 5, 7)), _ternary(rng, (9, 7)), _bias(rng, 9, 300),
                    dict(in_zero_point=-5, **_q(3)))
    rng = _rng(f"{op}/relu6_wide")
    yield _weighted(op, "relu6_wide", rounding,
                    "x [1, 4, 4, 40] (an expand layer), 16 outputs, zero point -128, ReLU6 clamp [-128, 30]",
                    _int8(rng, (1, 4, 4, 40)), _ternary(rng, (16, 40)), _bias(rng, 16, 2000),
                    dict(in_zero_point=-128, **_q(-128, -128, 30)), offset=2)
    rng = _rng(f"{op}/one_channel")
    x = rng.integers(-128, 128, size=(1, 5, 3, 1)).astype(np.int8)
    x.reshape(-1)[:2] = (-128, 127)
    yield _weighted(op, "one_channel", rounding,
                    "Cin = Cout = 1, weight -1, x [1, 5, 3, 1], input zero point 7: M = 2**30, every odd "
                    "accumulator is a tie for the first step of 'double'",
                    x, np.array([[-1]], np.int8), np.array([5], np.int32),
                    dict(in_zero_point=7, **_q(-1)), kinds=("tie",))
    yield _pointwise_extremes(rounding)
    rng = _rng(f"{op}/small_ties")
    yield _weighted(op, "small_ties", rounding, SMALL_TIES + "x [1, 3, 3, 9], 8 outputs",
                    _near(rng, (1, 3, 3, 9), -20), _ternary(rng, (8, 9)), _bias(rng, 8, 20),
                    dict(in_zero_point=-20, **_q(4, -10, 12)), kinds=TIE_KINDS)


def _pointwise_extremes(rounding):
    """Accumulators at the int32 limits: huge biases, all-+1 / all--1 / all-0 rows, extreme multipliers."""
    op = "pointwise_ternary"
    rng = _rng(f"{op}/extreme_accumulators")
    cin = 32
    x = np.empty((1, 2, 3, cin), np.int8)
    x[0, 0, 0], x[0, 0, 1] = 127, -128             # all max / all min pixels
    x[0, 0, 2] = np.where(np.arange(cin) % 2, 127, -128)
    x[0, 1] = rng.integers(-128, 128, size=(3, cin))
    zx = -128                                      # |x - zx| <= 255
    rows, biases, mults, shifts = [], [], [], []
    span = cin * 255

    def channel(row, bias, m, s):
        rows.append(row)
        biases.append(bias)
        mults.append(m)
        shifts.append(s)

    plus, minus, zero = np.ones(cin, np.int8), -np.ones(cin, np.int8), np.zeros(cin, np.int8)
    top = I32_MAX - span                           # |bias| + span == 2**31 - 1: the overflow bound, met
    channel(plus, top, I32_MAX, 0)                 # acc up to 2**31 - 1, saturates high
    channel(minus, -top, I32_MAX, 0)               # acc down to -(2**31 - 1), saturates low
    channel(plus, top, I32_MAX, -31)               # y = acc * (2**31 - 1) / 2**62: about acc / 2**31
    channel(minus, -top, 1 << 30, -31)             # y = acc / 2**32: tiny
    channel(plus, -top, 1, 0)                      # smallest multiplier: acc / 2**31
    channel(zero, I32_MAX, 1 << 30, -23)           # bias only, 2**31 - 1 -> 127.99.. -> saturates
    channel(zero, -(1 << 30), 1 << 30, -22)        # bias only: -2**30 / 2**23 = -128 exactly
    channel(zero, 0, 0, 0)                         # multiplier 0: the zero point everywhere
    channel(plus, 100, 1 << 30, 15)                # positive shift: acc * 2**14
    channel(minus, -3, I32_MAX, 16)                # positive shift, ~acc * 2**16
    for _ in range(2):
        row = _ternary(rng, cin)
        channel(row, int(rng.integers(-(1 << 20), 1 << 20)), int(rng.integers(1 << 30, 1 << 31)), -8)
    inputs = dict(x=x, weights=np.array(rows, np.int8), bias=np.array(biases, np.int32),
                  multiplier=np.array(mults, np.int32), shift=np.array(shifts, np.int32))
    params = dict(in_zero_point=zx, **_q(2))
    check_weighted(op, inputs, params)
    return _spec(op, "extreme_accumulators", rounding,
                 "accumulators reaching +-(2**31 - 1) (bias + all-ones rows at input zero point -128), "
                 "multipliers 2**31 - 1, 2**30, 1 and 0 with shifts -31, -23, 0, 15, 16; all-zero rows",
                 params, list(inputs.items()))


def conv2d_cases(rounding):
    op = "conv2d"
    rng = _rng(f"{op}/3x3_s2_pad0101")
    yield _weighted(op, "3x3_s2_pad0101", rounding,
                    "the stem: x [1, 8, 6, 3] at zero point -128, 3x3 stride 2, padding (top, bottom, left, "
                    "right) = (0, 1, 0, 1) (TensorFlow 'SAME' for even sizes), 5 outputs, ReLU6 clamp",
                    _int8(rng, (1, 8, 6, 3)), _int8_weights(rng, (5, 3, 3, 3)), _bias(rng, 5, 5000),
                    dict(in_zero_point=-128, weight_zero_point=0, **_q(-128, -128, 40), kernel=3, stride=2,
                         padding=[0, 1, 0, 1]))
    rng = _rng(f"{op}/3x3_s2_pad1001_odd")
    yield _weighted(op, "3x3_s2_pad1001_odd", rounding,
                    "x [2, 7, 9, 2], 3x3 stride 2, padding (1, 0, 0, 1), one output channel, weight zero "
                    "point 3, input zero point 9",
                    _int8(rng, (2, 7, 9, 2)), _int8_weights(rng, (1, 3, 3, 2)), _bias(rng, 1, 3000),
                    dict(in_zero_point=9, weight_zero_point=3, **_q(-4), kernel=3, stride=2,
                         padding=[1, 0, 0, 1]), kinds=("tie",))
    rng = _rng(f"{op}/3x3_s1_pad1")
    yield _weighted(op, "3x3_s1_pad1", rounding,
                    "x [1, 5, 5, 4], 3x3 stride 1, padding 1 all round, 6 outputs, zero points -7 / 11",
                    _int8(rng, (1, 5, 5, 4)), _int8_weights(rng, (6, 3, 3, 4)), _bias(rng, 6, 20000),
                    dict(in_zero_point=-7, weight_zero_point=0, **_q(11), kernel=3, stride=1,
                         padding=[1, 1, 1, 1]), offset=3)
    rng = _rng(f"{op}/1x1_int8")
    yield _weighted(op, "1x1_int8", rounding,
                    "an int8 1x1 conv (the int8 scheme's pointwise): x [2, 3, 3, 5], 7 outputs",
                    _int8(rng, (2, 3, 3, 5)), _int8_weights(rng, (7, 1, 1, 5)), _bias(rng, 7, 4000),
                    dict(in_zero_point=-128, weight_zero_point=0, **_q(-2), kernel=1, stride=1,
                         padding=[0, 0, 0, 0]), offset=1)
    rng = _rng(f"{op}/small_ties")
    yield _weighted(op, "small_ties", rounding,
                    SMALL_TIES + "x [1, 5, 4, 2], 3x3 stride 2, padding (1, 1, 0, 1), 4 outputs",
                    _near(rng, (1, 5, 4, 2), 3), _small_weights(rng, (4, 3, 3, 2)), _bias(rng, 4, 20),
                    dict(in_zero_point=3, weight_zero_point=0, **_q(-1, -20, 20), kernel=3, stride=2,
                         padding=[1, 1, 0, 1]), kinds=TIE_KINDS)


def depthwise_cases(rounding):
    op = "depthwise_conv2d"
    rng = _rng(f"{op}/3x3_s1_pad1")
    yield _weighted(op, "3x3_s1_pad1", rounding,
                    "x [1, 5, 7, 6], 3x3 stride 1, padding 1, ReLU6 clamp [-128, 35]",
                    _int8(rng, (1, 5, 7, 6)), _int8_weights(rng, (3, 3, 6)), _bias(rng, 6, 3000),
                    dict(in_zero_point=-128, weight_zero_point=0, **_q(-128, -128, 35), kernel=3, stride=1,
                         padding=[1, 1, 1, 1]))
    rng = _rng(f"{op}/3x3_s2_pad0101_one_channel")
    yield _weighted(op, "3x3_s2_pad0101_one_channel", rounding,
                    "one channel, x [1, 6, 4, 1], 3x3 stride 2, padding (0, 1, 0, 1)",
                    _int8(rng, (1, 6, 4, 1)), _int8_weights(rng, (3, 3, 1)), _bias(rng, 1, 500),
                    dict(in_zero_point=-128, weight_zero_point=0, **_q(-128), kernel=3, stride=2,
                         padding=[0, 1, 0, 1]), kinds=("tie",))
    rng = _rng(f"{op}/3x3_s2_pad1_odd")
    yield _weighted(op, "3x3_s2_pad1_odd", rounding,
                    "x [2, 7, 7, 3], 3x3 stride 2, padding 1, weight zero point -2, input zero point 4",
                    _int8(rng, (2, 7, 7, 3)), _int8_weights(rng, (3, 3, 3)), _bias(rng, 3, 2000),
                    dict(in_zero_point=4, weight_zero_point=-2, **_q(0), kernel=3, stride=2,
                         padding=[1, 1, 1, 1]), offset=4)
    rng = _rng(f"{op}/small_ties")
    yield _weighted(op, "small_ties", rounding,
                    SMALL_TIES + "x [1, 4, 5, 4], 3x3 stride 1, padding 1",
                    _near(rng, (1, 4, 5, 4), -100), _small_weights(rng, (3, 3, 4)), _bias(rng, 4, 20),
                    dict(in_zero_point=-100, weight_zero_point=0, **_q(2, -20, 20), kernel=3, stride=1,
                         padding=[1, 1, 1, 1]), kinds=TIE_KINDS)


def fully_connected_cases(rounding):
    op = "fully_connected"
    rng = _rng(f"{op}/classifier")
    yield _weighted(op, "classifier", rounding,
                    "the classifier: x [3, 17] at zero point -6, 10 outputs",
                    _int8(rng, (3, 17)), _int8_weights(rng, (10, 17)), _bias(rng, 10, 8000),
                    dict(in_zero_point=-6, weight_zero_point=0, **_q(0)))
    rng = _rng(f"{op}/one_channel")
    yield _weighted(op, "one_channel", rounding,
                    "Cin = Cout = 1, x [5, 1], weight zero point -4",
                    _int8(rng, (5, 1)), np.array([[-77]], np.int8), np.array([-100], np.int32),
                    dict(in_zero_point=1, weight_zero_point=-4, **_q(-3)), kinds=("tie",))
    rng = _rng(f"{op}/small_ties")
    yield _weighted(op, "small_ties", rounding, SMALL_TIES + "x [4, 6], 5 outputs",
                    _near(rng, (4, 6), 0), _small_weights(rng, (5, 6)), _bias(rng, 5, 20),
                    dict(in_zero_point=0, weight_zero_point=0, **_q(0, -15, 15)), kinds=TIE_KINDS)


def add_cases(rounding):
    rng = _rng("add/left_shift20")
    shape = (1, 3, 5, 4)
    a, b = _int8(rng, shape), _int8(rng, shape)
    sa, sb, so = 0.05, 0.08, 0.11
    twice = 2 * max(sa, sb)
    m, s = arith.quantize_multipliers([sa / twice, sb / twice, twice / ((1 << 20) * so)])
    params = dict(a_zero_point=-3, b_zero_point=5, left_shift=20, **_q(-2))
    inputs = dict(a=a, b=b, multiplier=m, shift=s)
    check_add(inputs, params)
    yield _spec("add", "left_shift20", rounding,
                "TFLite's 8-bit ADD structure: left shift 20, input scales 0.05 / 0.08, output 0.11",
                params, list(inputs.items()))

    rng = _rng("add/ties")
    a, b = _int8(rng, shape), _int8(rng, shape)
    params = dict(a_zero_point=0, b_zero_point=-1, left_shift=0, **_q(0, -60, 60))
    inputs = dict(a=a, b=b, multiplier=np.full(3, 1 << 30, np.int32), shift=np.array([0, 0, -1], np.int32))
    check_add(inputs, params)
    yield _spec("add", "ties", rounding,
                "left shift 0, every multiplier 2**30: a/2 and b/2 tie on odd inputs, the sum / 4 ties "
                "again; clamp [-60, 60]",
                params, list(inputs.items()))

    rng = _rng("add/saturate_one_channel")
    a, b = _int8(rng, (2, 3, 3, 1)), _int8(rng, (2, 3, 3, 1))
    params = dict(a_zero_point=-128, b_zero_point=127, left_shift=20, **_q(100))
    inputs = dict(a=a, b=b, multiplier=np.array([I32_MAX, 1 << 30, I32_MAX], np.int32),
                  shift=np.array([-1, 0, -13], np.int32))
    check_add(inputs, params)
    yield _spec("add", "saturate_one_channel", rounding,
                "one channel, extreme zero points (-128, 127), multipliers 2**31 - 1: outputs saturate at "
                "both ends",
                params, list(inputs.items()))


def global_avgpool_cases():
    rng = _rng("global_avgpool/ties_2x2")
    x = rng.integers(-128, 128, size=(6, 2, 2, 5)).astype(np.int64)
    x[0], x[1] = 127, -128
    for n in range(2, 6):  # make most sums = 2 (mod 4): exact ties, both signs
        for c in range(5):
            if (n + c) % 3:
                r = (x[n, :, :, c].sum() - 2) % 4
                x[n, 0, 0, c] -= r if x[n, 0, 0, c] - r >= -128 else r - 4
    yield _spec("global_avgpool", "ties_2x2", None,
                "2x2 pixels: most sums are 2 mod 4, exact .5 means (rounded away from zero); all-127 and "
                "all--128 images", {}, [("x", x.astype(np.int8))])
    rng = _rng("global_avgpool/odd_3x5")
    yield _spec("global_avgpool", "odd_3x5", None, "3x5 pixels (count 15), 3 channels",
                {}, [("x", _int8(rng, (2, 3, 5, 3)))])
    rng = _rng("global_avgpool/one_pixel_one_channel")
    yield _spec("global_avgpool", "one_pixel_one_channel", None, "x [3, 1, 1, 1]: the identity",
                {}, [("x", rng.integers(-128, 128, size=(3, 1, 1, 1)).astype(np.int8))])
    rng = _rng("global_avgpool/7x7")
    x = _int8(rng, (2, 7, 7, 8))
    x[1, :, :, :2] = 127
    x[1, :, :, 2:4] = -128
    yield _spec("global_avgpool", "7x7", None, "7x7 pixels (the ImageNet network's last map), 8 channels",
                {}, [("x", x)])


def op_cases():
    """All per-op case specs, in suite order."""
    specs = []
    for builder in (requantize_cases, pointwise_cases, conv2d_cases, depthwise_cases, fully_connected_cases,
                    add_cases):
        for rounding in ROUNDINGS:
            specs.extend(builder(rounding))
    specs.extend(global_avgpool_cases())
    return specs
