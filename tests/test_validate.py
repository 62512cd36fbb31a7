"""Tests of promref.validate on in-memory models: every broken field gives a
WeightsFormatError naming the layer and field, and the overflow proof is exact."""
import math
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promref import arith
from promref.errors import OverflowRiskError, WeightsFormatError
from promref.model import Layer
from promref.validate import accumulator_bound, check_scale_input, scaled_bound, validate

INT32_MAX = (1 << 31) - 1


def names(*parts):
    return "(?s)" + "".join(f"(?=.*{re.escape(str(p))})" for p in parts)


def expect(model, *parts, cls=WeightsFormatError):
    with pytest.raises(cls, match=names(*parts)) as info:
        validate(model)
    assert type(info.value) is cls, repr(info.value)
    return info.value


def where(model, name):
    """How validate() names a layer: ``layer <index> ('<name>')``."""
    return f"layer {[layer.name for layer in model.layers].index(name)} ({name!r})"


# --------------------------------------------------- one broken field


def setf(name, field, value):
    def mutate(m):
        setattr(m.layer(name), field, value)
    return mutate


def arr(name, field, fn):
    """Replace an array field by ``fn(old array)``."""
    def mutate(m):
        layer = m.layer(name)
        setattr(layer, field, fn(getattr(layer, field)))
    return mutate


def item(name, field, index, value):
    def change(a):
        a = a.copy()
        a[index] = value
        return a
    return arr(name, field, change)


def inp(field, value):
    def mutate(m):
        setattr(m.input, field, value)
    return mutate


def top(field, value):
    def mutate(m):
        setattr(m, field, value)
    return mutate


def both(*mutations):
    def mutate(m):
        for f in mutations:
            f(m)
    return mutate


# (id, mutation, layer name or None, parts the message must contain)
BROKEN = [
    ("rounding", top("rounding", "nearest"), None, ["rounding", "'nearest'"]),
    ("rounding-none", top("rounding", None), None, ["rounding"]),
    ("input-height-0", inp("height", 0), None, ["input.height"]),
    ("input-height-bool", inp("height", True), None, ["input.height", "integer"]),
    ("input-width-float", inp("width", 32.0), None, ["input.width", "integer"]),
    ("input-resize", inp("resize", -1), None, ["input.resize"]),
    ("input-zp-128", inp("zero_point", 128), None, ["input.zero_point", "[-128, 127]"]),
    ("input-zp--129", inp("zero_point", -129), None, ["input.zero_point"]),
    ("input-resample", inp("resample", "magic"), None, ["input.resample", "'magic'"]),
    ("input-scale-0", inp("scale", 0.0), None, ["input.scale"]),
    ("input-scale-nan", inp("scale", float("nan")), None, ["input.scale"]),
    ("input-scale-int", inp("scale", 1), None, ["input.scale"]),
    ("input-mean-2", inp("mean", (0.5, 0.5)), None, ["input.mean"]),
    ("input-mean-int", inp("mean", (0, 0, 0)), None, ["input.mean"]),
    ("input-std-nan", inp("std", (1.0, float("nan"), 1.0)), None, ["input.std"]),
    ("input-std-inf", inp("std", (1.0, 1.0, float("inf"))), None, ["input.std"]),
    ("no-layers", top("layers", []), None, ["layers"]),
    ("dup-name", setf("b1.depthwise", "name", "stem"), None, ["layer 1 ('stem')", "unique"]),
    ("name-input", setf("stem", "name", "input"), None, ["layer 0 ('input')", "unique"]),
    ("name-empty", setf("b1.depthwise", "name", ""), None, ["layer 1 ('')"]),
    ("name-int", setf("b1.depthwise", "name", 5), None, ["layer 1 (5)"]),
    ("kind", setf("stem", "kind", "head"), "stem", ["unknown kind 'head'"]),
    ("op", setf("pool", "op", "max_pool"), "pool", ["unknown op 'max_pool'"]),
    ("kind-op", setf("b1.depthwise", "op", "conv2d"), "b1.depthwise", ["cannot use op 'conv2d'"]),
    ("kind-op-2", setf("b2.expand", "kind", "depthwise"), "b2.expand", ["cannot use op 'pointwise_ternary'"]),
    ("inputs-later", setf("b1.depthwise", "inputs", ("b1.project",)), "b1.depthwise", [".inputs", "b1.project"]),
    ("inputs-self", setf("b1.depthwise", "inputs", ("b1.depthwise",)), "b1.depthwise", [".inputs"]),
    ("inputs-unknown", setf("b1.depthwise", "inputs", ("ghost",)), "b1.depthwise", [".inputs", "ghost"]),
    ("inputs-none", setf("b1.depthwise", "inputs", ()), "b1.depthwise", [".inputs"]),
    ("inputs-two", setf("b1.depthwise", "inputs", ("stem", "stem")), "b1.depthwise", [".inputs"]),
    ("inputs-add-one", setf("b1.add", "inputs", ("stem",)), "b1.add", [".inputs", "2 earlier"]),
    ("inputs-int", setf("b1.depthwise", "inputs", (0,)), "b1.depthwise", [".inputs"]),
    ("in-channels", setf("b1.depthwise", "in_channels", 9), "b1.depthwise", ["in_channels is 9", "'stem' has 8"]),
    ("in-channels-0", setf("stem", "in_channels", 0), "stem", [".in_channels", "out of range"]),
    ("in-channels-bool", setf("stem", "in_channels", True), "stem", [".in_channels", "integer"]),
    ("out-channels-huge", setf("stem", "out_channels", 1 << 21), "stem", [".out_channels"]),
    ("out-zp-128", setf("stem", "out_zero_point", 128), "stem", [".out_zero_point"]),
    ("out-zp--129", setf("b1.add", "out_zero_point", -129), "b1.add", [".out_zero_point"]),
    ("out-zp-float", setf("stem", "out_zero_point", 1.0), "stem", [".out_zero_point", "integer"]),
    ("out-min", setf("stem", "out_min", -129), "stem", [".out_min"]),
    ("out-max", setf("stem", "out_max", 128), "stem", [".out_max"]),
    ("out-min>max", both(setf("stem", "out_min", 5), setf("stem", "out_max", 4)), "stem", ["out_min 5 > out_max 4"]),
    ("out-scale-0", setf("stem", "out_scale", 0.0), "stem", [".out_scale"]),
    ("out-scale-neg", setf("stem", "out_scale", -1.0), "stem", [".out_scale"]),
    ("out-scale-nan", setf("stem", "out_scale", float("nan")), "stem", [".out_scale"]),
    ("out-scale-inf", setf("b1.add", "out_scale", float("inf")), "b1.add", [".out_scale"]),
    ("out-scale-int", setf("stem", "out_scale", 1), "stem", [".out_scale"]),
    ("kernel-0", setf("stem", "kernel", 0), "stem", [".kernel"]),
    ("kernel-16", setf("stem", "kernel", 16), "stem", [".kernel"]),
    ("kernel-bool", setf("b1.project", "kernel", True), "b1.project", [".kernel", "integer"]),
    ("stride-0", setf("stem", "stride", 0), "stem", [".stride"]),
    ("stride-str", setf("stem", "stride", "1"), "stem", [".stride", "integer"]),
    ("padding-3", setf("stem", "padding", (1, 1, 1)), "stem", [".padding", "4 values"]),
    ("padding-big", setf("stem", "padding", (3, 1, 1, 1)), "stem", [".padding", "out of range"]),
    ("padding-neg", setf("stem", "padding", (1, 1, -1, 1)), "stem", [".padding"]),
    ("empty-output", both(inp("height", 2), inp("width", 2), setf("stem", "padding", (0, 0, 0, 0))), "stem",
     ["output would be empty"]),
    ("weights-none", setf("stem", "weights", None), "stem", [".weights", "missing"]),
    ("weights-list", arr("stem", "weights", lambda a: a.tolist()), "stem", [".weights", "missing"]),
    ("weights-int16", arr("stem", "weights", lambda a: a.astype(np.int16)), "stem", [".weights", "int16"]),
    ("weights-float", arr("b1.depthwise", "weights", lambda a: a.astype(np.float32)), "b1.depthwise",
     [".weights", "float32"]),
    ("weights-shape", arr("stem", "weights", lambda a: a.reshape(a.shape[0], -1)), "stem", [".weights", "shape"]),
    ("weights-shape-dw", arr("b1.depthwise", "weights", lambda a: a.transpose(2, 0, 1).copy()), "b1.depthwise",
     [".weights", "shape"]),
    ("ternary-2", item("b1.project", "weights", (0, 0), 2), "b1.project", [".weights", "above the maximum 1"]),
    ("ternary--2", item("b2.expand", "weights", (3, 1), -2), "b2.expand", [".weights", "below the minimum -1"]),
    ("ternary-int16", arr("b1.project", "weights", lambda a: a.astype(np.int16)), "b1.project", [".weights", "int16"]),
    ("wzp-ternary", setf("b1.project", "weight_zero_point", 1), "b1.project", [".weight_zero_point"]),
    ("wzp-128", setf("stem", "weight_zero_point", 128), "stem", [".weight_zero_point"]),
    ("wzp-bool", setf("classifier", "weight_zero_point", False), "classifier", [".weight_zero_point", "integer"]),
    ("ternary-stride", setf("b1.project", "stride", 2), "b1.project", ["1x1, stride 1"]),
    ("ternary-kernel", setf("b1.project", "kernel", 3), "b1.project", ["1x1, stride 1"]),
    ("ternary-padding", both(setf("b1.project", "kernel", 3), setf("b1.project", "padding", (1, 1, 1, 1))),
     "b1.project", ["no padding"]),
    ("dw-in!=out", both(setf("b1.depthwise", "out_channels", 16),
                        setf("b1.depthwise", "weights", np.zeros((3, 3, 16), np.int8))),
     "b1.depthwise", ["in_channels 8 != out_channels 16"]),
    ("bias-none", setf("stem", "bias", None), "stem", [".bias", "missing"]),
    ("bias-int64", arr("stem", "bias", lambda a: a.astype(np.int64)), "stem", [".bias", "int64"]),
    ("bias-float", arr("classifier", "bias", lambda a: a.astype(np.float32)), "classifier", [".bias", "float32"]),
    ("bias-shape", arr("stem", "bias", lambda a: np.append(a, a[:1])), "stem", [".bias", "shape"]),
    ("mult-none", setf("b1.depthwise", "multiplier", None), "b1.depthwise", [".multiplier", "missing"]),
    ("mult-neg", item("stem", "multiplier", 2, -1), "stem", [".multiplier", "below the minimum 0"]),
    ("mult-int64", arr("stem", "multiplier", lambda a: a.astype(np.int64)), "stem", [".multiplier", "int64"]),
    ("mult-uint32", arr("stem", "multiplier", lambda a: a.astype(np.uint32)), "stem", [".multiplier", "uint32"]),
    ("shift-31", item("stem", "shift", 0, 31), "stem", [".shift", "above the maximum 30"]),
    ("shift--32", item("b2.expand", "shift", 47, -32), "b2.expand", [".shift", "below the minimum -31"]),
    ("shift-shape", arr("stem", "shift", lambda a: a[:-1]), "stem", [".shift", "shape"]),
    ("wscale-f64", arr("stem", "weight_scale", lambda a: a.astype(np.float64)), "stem", [".weight_scale", "float64"]),
    ("wscale-shape", arr("stem", "weight_scale", lambda a: a[:1]), "stem", [".weight_scale", "shape"]),
    ("add-mult-shape", arr("b1.add", "multiplier", lambda a: a[:2]), "b1.add", [".multiplier", "shape"]),
    ("add-mult-neg", item("b1.add", "multiplier", 1, -3), "b1.add", [".multiplier", "below the minimum 0"]),
    ("add-shift-31", item("b1.add", "shift", 2, 31), "b1.add", [".shift", "above the maximum 30"]),
    ("add-shift-none", setf("b1.add", "shift", None), "b1.add", [".shift", "missing"]),
    ("add-left-24", setf("b1.add", "left_shift", 24), "b1.add", [".left_shift"]),
    ("add-left-neg", setf("b1.add", "left_shift", -1), "b1.add", [".left_shift"]),
    ("add-left-bool", setf("b1.add", "left_shift", True), "b1.add", [".left_shift", "integer"]),
    ("add-shapes", setf("b5.add", "inputs", ("b5.project", "b3.add")), "b5.add", ["add inputs have shapes"]),
    ("add-out-channels", setf("b1.add", "out_channels", 9), "b1.add", ["must match"]),
    ("pool-zp", setf("pool", "out_zero_point", 0), "pool", ["keeps its input's", "zero point"]),
    ("pool-range", setf("pool", "out_min", -127), "pool", ["full int8 range"]),
    ("pool-scale", setf("pool", "out_scale", 0.123), "pool", ["keeps its input's", "scale"]),
    ("pool-channels", setf("pool", "out_channels", 10), "pool", ["keeps its channels"]),
    ("fc-feature-map", setf("classifier", "inputs", ("last_conv",)), "classifier", ["needs a vector input"]),
    ("conv-on-vector", setf("classifier", "op", "conv2d"), "classifier", ["needs a feature map input"]),
    ("last-not-vector", lambda m: m.layers.__delitem__(slice(-2, None)), None, ["layers", "vector of logits"]),
    ("labels-9", top("labels", tuple("abcdefghi")), None, ["labels", "need 10", "got 9"]),
    ("labels-11", top("labels", tuple("abcdefghijk")), None, ["labels", "need 10", "got 11"]),
    ("labels-0", top("labels", ()), None, ["labels", "got 0"]),
    ("labels-not-str", top("labels", tuple(range(10))), None, ["labels", "string"]),
    ("labels-one-not-str", top("labels", tuple("abcdefghi") + (None,)), None, ["labels", "string"]),
]


@pytest.mark.parametrize("mutate,layer,parts", [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_one_broken_field(model, mutate, layer, parts):
    if layer is not None:
        parts = [where(model, layer)] + parts
    mutate(model)
    expect(model, *parts)


@pytest.mark.parametrize("inputs", [(["stem"],), ({"a": 1},), (None,), (b"stem",)])
def test_input_names_not_strings(model, inputs):
    # an unhashable name (a list) once escaped as TypeError from `name in dict`
    model.layer("b1.depthwise").inputs = inputs
    expect(model, "layer 1 ('b1.depthwise')", ".inputs")


def test_valid_variants_are_accepted(model):
    model.layer("stem").kernel = np.int64(3)  # NumPy integers are integers
    model.layer("stem").out_scale = np.float64(0.05)  # a float subclass
    model.layer("stem").weight_scale = None  # informational, optional
    model.layers[0].inputs = ["input"]  # any sequence
    assert validate(model) is model
    assert validate(model) is model  # idempotent


@pytest.mark.parametrize("config,scheme", [("cifar", "int8"), ("imagenet", "prom")])
def test_random_models_validate(config, scheme):
    from promref.synthetic import random_model
    validate(random_model(config, 0.1, scheme, seed=1, rounding="double"))


# ------------------------------------------------ read-only arrays


def test_validate_marks_arrays_read_only(tiny):
    model = tiny(3)
    arrays = [(layer.name, f, getattr(layer, f)) for layer in model.layers
              for f in ("weights", "bias", "multiplier", "shift", "weight_scale")
              if getattr(layer, f) is not None]
    assert arrays and all(a.flags.writeable for _, _, a in arrays)
    assert validate(model) is model
    for name, field, array in arrays:
        assert getattr(model.layer(name), field) is array  # the same objects, not copies
        assert not array.flags.writeable, (name, field)
    with pytest.raises(ValueError):
        model.layer("stem").bias[0] = 1
    with pytest.raises(ValueError):
        model.layer("add").multiplier[...] = 0


def test_random_model_arrays_are_read_only(model):
    validate(model)
    for layer in model.layers:
        for field in ("weights", "bias", "multiplier", "shift", "weight_scale"):
            value = getattr(layer, field)
            assert value is None or not value.flags.writeable, (layer.name, field)


# ------------------------------------------------ accumulator bound


def _layer(op, weights, bias, weight_zero_point=0, cin=None, cout=None):
    weights = np.asarray(weights, np.int8)
    return Layer("L", "stem", op, ("input",), cin or 1, cout or len(bias), 0, weights=weights,
                 weight_zero_point=weight_zero_point, bias=np.asarray(bias, np.int32))


def test_accumulator_bound_conv_by_hand():
    # w [2, 1, 1, 3], zw = 5, zx = 10 -> max |x - zx| = max(|-128 - 10|, |127 - 10|) = 138
    layer = _layer("conv2d", [[[[1, -2, 3]]], [[[-128, 127, 0]]]], [100, -7], weight_zero_point=5)
    # channel 0: |1-5| + |-2-5| + |3-5| = 4 + 7 + 2 = 13 -> 100 + 13 * 138 = 1894
    # channel 1: |-128-5| + |127-5| + |0-5| = 133 + 122 + 5 = 260 -> 7 + 260 * 138 = 35887
    assert accumulator_bound(layer, 10) == [1894, 35887]
    # zx = -128: max |x - zx| = 255
    assert accumulator_bound(layer, -128) == [100 + 13 * 255, 7 + 260 * 255]
    # zx = 127: max |x - zx| = 255 too;  zx = 0: 128
    assert accumulator_bound(layer, 127) == [100 + 13 * 255, 7 + 260 * 255]
    assert accumulator_bound(layer, 0) == [100 + 13 * 128, 7 + 260 * 128]


def test_accumulator_bound_depthwise_by_hand():
    # w [kh=2, kw=2, C=2]: channel 0 taps 1, -1, 2, 0; channel 1 taps -128, 127, -128, 127
    w = np.array([[[1, -128], [-1, 127]], [[2, -128], [0, 127]]], np.int8)
    layer = _layer("depthwise_conv2d", w, [-(1 << 31), 3])
    assert accumulator_bound(layer, -128) == [(1 << 31) + 4 * 255, 3 + 510 * 255]


def test_accumulator_bound_fc_and_ternary_by_hand():
    fc = _layer("fully_connected", [[127] * 4, [-128] * 4], [0, -1], weight_zero_point=-1)
    assert accumulator_bound(fc, 0) == [128 * 4 * 128, 1 + 127 * 4 * 128]
    ternary = _layer("pointwise_ternary", [[1, 0, -1, 1, 1], [0, 0, 0, 0, 0]], [5, -(2 ** 31 - 1)])
    assert accumulator_bound(ternary, -128) == [5 + 4 * 255, 2 ** 31 - 1]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(1, 6), st.integers(-128, 127), st.integers(-128, 127), st.data())
def test_accumulator_bound_covers_every_input(cout, cin, zw, zx, data):
    """The bound is >= |acc| at the extreme inputs (acc is linear in x, so its extremes are corners)."""
    w = np.array(data.draw(st.lists(st.integers(-128, 127), min_size=cout * cin, max_size=cout * cin)),
                 np.int8).reshape(cout, cin)
    bias = data.draw(st.lists(st.integers(-(1 << 31), INT32_MAX), min_size=cout, max_size=cout))
    layer = _layer("fully_connected", w, bias, weight_zero_point=zw, cin=cin)
    bound = accumulator_bound(layer, zx)
    x_max = max(128 + zx, 127 - zx)
    for o in range(cout):
        wc = [int(v) - zw for v in w[o]]
        assert bound[o] == abs(bias[o]) + sum(abs(v) for v in wc) * x_max
        high = bias[o] + sum(v * ((127 if v > 0 else -128) - zx) for v in wc)
        low = bias[o] + sum(v * ((-128 if v > 0 else 127) - zx) for v in wc)
        assert max(abs(high), abs(low)) <= bound[o]


# --------------------------------------------------------- overflow


def test_bias_at_the_limit(tiny):
    model = tiny(3)
    stem = model.layer("stem")
    stem.weights[0] = [[[1, 0, 0]]]  # bound of channel 0 = |bias| + 1 * 255 (input zero point -128)
    stem.bias[0] = INT32_MAX - 255
    validate(model)

    model = tiny(3)
    model.layer("stem").weights[0] = [[[1, 0, 0]]]
    model.layer("stem").bias[0] = INT32_MAX - 254
    expect(model, "layer 0 ('stem'), output channel 0", str(INT32_MAX + 1), cls=OverflowRiskError)


def test_bias_int32_min_overflows(model):
    bias = model.layer("b1.depthwise").bias.copy()
    bias[6] = -(1 << 31)
    model.layer("b1.depthwise").bias = bias
    expect(model, "layer 1 ('b1.depthwise'), output channel 6", cls=OverflowRiskError)


@pytest.mark.parametrize("name,channel", [("stem", 5), ("b1.project", 0), ("b2.expand", 47), ("classifier", 9)])
def test_bias_near_int32_max_overflows(model, name, channel):
    bias = model.layer(name).bias.copy()
    bias[channel] = INT32_MAX - 3
    model.layer(name).bias = bias
    expect(model, where(model, name), f"output channel {channel}", "overflow", cls=OverflowRiskError)


def test_many_large_weights_overflow(tiny):
    n = INT32_MAX // (127 * 255)  # 66311: 127 * 255 * n fits, 127 * 255 * (n + 1) does not
    assert 127 * 255 * n <= INT32_MAX < 127 * 255 * (n + 1)
    ok = tiny(n, residual=False)
    ok.layer("classifier").weights[:] = 127
    ok.layer("classifier").bias[:] = 0
    validate(ok)
    bad = tiny(n + 1, residual=False)
    bad.layer("classifier").weights[1] = 127
    bad.layer("classifier").bias[:] = 0
    expect(bad, "layer 2 ('classifier'), output channel 1", str(127 * 255 * (n + 1)), cls=OverflowRiskError)


def test_weight_zero_point_counts_in_the_bound(tiny):
    # weights -128 with zw = 127: |w - zw| = 255, so 255 * 255 * 33100 > 2**31 - 1; with zw = 0 it is 128
    model = tiny(33100, residual=False)
    model.layer("classifier").weights[:] = -128
    model.layer("classifier").bias[:] = 0
    validate(model)
    model = tiny(33100, residual=False)
    model.layer("classifier").weights[:] = -128
    model.layer("classifier").bias[:] = 0
    model.layer("classifier").weight_zero_point = 127
    expect(model, "'classifier'", "output channel 0", str(255 * 255 * 33100), cls=OverflowRiskError)


def _stem_near_the_limit(tiny, input_zero_point):
    model = tiny(3)
    model.input.zero_point = input_zero_point
    model.layer("stem").weights[0] = [[[1, 0, 0]]]
    model.layer("stem").bias[0] = INT32_MAX - 10  # bound = INT32_MAX - 10 + 255: overflows
    return model


def test_numpy_int64_input_zero_point(tiny):
    expect(_stem_near_the_limit(tiny, np.int64(-128)), "'stem'", "output channel 0", str(INT32_MAX + 245),
           cls=OverflowRiskError)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_numpy_int32_input_zero_point(tiny):
    expect(_stem_near_the_limit(tiny, np.int32(-128)), "'stem'", "output channel 0", cls=OverflowRiskError)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_numpy_int8_input_zero_point(tiny):
    expect(_stem_near_the_limit(tiny, np.int8(-128)), "'stem'", "output channel 0", cls=OverflowRiskError)


def test_input_zero_point_counts_in_the_bound(tiny):
    # the stem's input zero point: 0 -> max |x - zx| = 128;  -128 -> 255
    model = tiny(3)
    model.layer("stem").weights[0] = [[[1, 0, 0]]]
    model.layer("stem").bias[0] = INT32_MAX - 200
    expect(model, "'stem'", "output channel 0", cls=OverflowRiskError)
    model = tiny(3)
    model.input.zero_point = 0
    model.layer("stem").weights[0] = [[[1, 0, 0]]]
    model.layer("stem").bias[0] = INT32_MAX - 200
    validate(model)


# --------------------------------------------- the positive-shift rule


def test_positive_shift_rule_boundary(tiny):
    # bound of stem channel 0 = bias + 255; (2**31 - 1) >> 8 = 8388607
    limit = INT32_MAX >> 8
    model = tiny(3)
    stem = model.layer("stem")
    stem.weights[0] = [[[1, 0, 0]]]
    stem.bias[0] = limit - 255
    stem.shift[0] = 8
    validate(model)  # 8388607 << 8 = 2147483392 fits

    model = tiny(3)
    stem = model.layer("stem")
    stem.weights[0] = [[[1, 0, 0]]]
    stem.bias[0] = limit - 254
    stem.shift[0] = 8
    expect(model, "layer 0 ('stem').shift[0]", f"accumulator bound {limit + 1} shifted left by 8",
           cls=OverflowRiskError)


@pytest.mark.parametrize("shift,ok", [(0, True), (-31, True), (23, True), (24, False), (30, False)])
def test_positive_shift_rule_small_bound(tiny, shift, ok):
    model = tiny(3)
    stem = model.layer("stem")
    stem.weights[1] = [[[0, -1, 0]]]
    stem.bias[1] = 0  # bound 255: 255 << 23 fits, 255 << 24 does not
    stem.shift[1] = shift
    if ok:
        validate(model)
    else:
        expect(model, "'stem').shift[1]", f"shifted left by {shift}", cls=OverflowRiskError)


@settings(deadline=None)
@given(st.integers(0, INT32_MAX), st.integers(-31, 30))
def test_check_scale_input(bound, shift):
    fits = bound * 2 ** max(shift, 0) <= INT32_MAX
    if fits:
        check_scale_input("here", bound, np.int32(shift))
    else:
        with pytest.raises(OverflowRiskError, match="^here: "):
            check_scale_input("here", bound, np.int32(shift))


# ----------------------------------------------------- scaled_bound


@settings(max_examples=300, deadline=None)
@given(st.integers(0, INT32_MAX), st.integers(0, INT32_MAX), st.integers(-31, 30))
def test_scaled_bound_is_a_tight_upper_bound(bound, multiplier, shift):
    bound >>= max(shift, 0)  # keep bound << shift in int32, as validate requires
    result = scaled_bound(bound, multiplier, shift)
    exact = Fraction(bound * multiplier) * Fraction(2) ** (shift - 31)
    assert result == math.ceil(exact) + 1
    for acc in (bound, -bound):
        for scaled in (arith.scale_single(acc, multiplier, shift), arith.scale_double(acc, multiplier, shift)):
            assert abs(int(scaled)) <= result


def test_scaled_bound_by_hand():
    assert scaled_bound(255 << 20, 1 << 30, -1) == (255 << 18) + 1
    assert scaled_bound(0, INT32_MAX, 5) == 1
    assert scaled_bound(3, 1 << 30, 0) == 3  # ceil(1.5) + 1
    assert scaled_bound(255 << 23, INT32_MAX, 0) == (255 << 23) + 1  # ceil(255 * 2**23 * (1 - 2**-31)) + 1


# ------------------------------------------------------- add layers


def test_add_bound_by_hand(tiny):
    # inputs with zero point -128 (max |x - z| = 255), left shift 20, M = 2**30, shift -1:
    # each rescaled input <= ceil(255 * 2**20 / 4) + 1 = 255 * 2**18 + 1; total = 2 * that = 133693442
    total = 2 * ((255 << 18) + 1)
    assert total == 133693442
    assert total << 4 <= INT32_MAX < total << 5
    model = tiny(3)
    model.layer("add").shift[2] = 4
    validate(model)
    model = tiny(3)
    model.layer("add").shift[2] = 5
    expect(model, "layer 2 ('add').shift[2]", f"accumulator bound {total} shifted left by 5", cls=OverflowRiskError)


def test_add_sum_of_rescaled_inputs_overflows(tiny):
    model = tiny(3)
    add = model.layer("add")
    add.left_shift = 23
    add.multiplier[:] = INT32_MAX
    add.shift[:] = [0, 0, -10]
    each = math.ceil(Fraction((255 << 23) * INT32_MAX, 1 << 31)) + 1
    assert each == 2139095041
    expect(model, "layer 2 ('add')", f"sum of the rescaled inputs can reach {2 * each}", cls=OverflowRiskError)
    # scaled down by 16 each, the sum fits
    model = tiny(3)
    add = model.layer("add")
    add.left_shift = 23
    add.multiplier[:] = INT32_MAX
    add.shift[:] = [-4, -4, -10]
    validate(model)


@pytest.mark.parametrize("left_shift,shift,ok", [(23, 0, True), (23, 1, False), (22, 1, True), (20, 3, True),
                                                 (20, 4, False), (0, 23, True), (0, 24, False)])
def test_add_input_positive_shift_rule(tiny, left_shift, shift, ok):
    # input bound = 255 << left_shift; (255 << left_shift) << shift must fit in int32
    model = tiny(3)
    add = model.layer("add")
    add.left_shift = left_shift
    add.multiplier[:] = 1 << 20  # small, so that only the shift rule can fail
    add.shift[:] = [shift, -31, -31]
    if ok:
        validate(model)
    else:
        expect(model, "'add').shift[0]", f"accumulator bound {255 << left_shift} shifted left by {shift}",
               cls=OverflowRiskError)


def test_add_zero_points_count_in_the_bound(tiny):
    # M = 2**31 - 2**22, shift 0, left shift 23: with input zero points 0 (max |x - z| = 128) each rescaled
    # input is <= 2**30 - 2**21 + 1 and the sum fits; with zero points -128 (255) it does not
    def build(zero_point):
        model = tiny(3)
        model.layer("stem").out_zero_point = zero_point
        model.layer("project").out_zero_point = zero_point
        add = model.layer("add")
        add.left_shift = 23
        add.multiplier[:] = (1 << 31) - (1 << 22)
        add.shift[:] = [0, 0, -10]
        return model

    assert scaled_bound(128 << 23, (1 << 31) - (1 << 22), 0) == (1 << 30) - (1 << 21) + 1
    validate(build(0))
    expect(build(-128), "layer 2 ('add')", "sum of the rescaled inputs", cls=OverflowRiskError)


# ------------------------------------------------------ global average pool


def test_pool_sum_bound(tiny, monkeypatch):
    # the pool sums H * W int8 values in int32: 128 * H * W must fit (a proof independent of the
    # input side limit, so the limit is lifted here)
    from promref import limits
    monkeypatch.setattr(limits, "MAX_INPUT_SIDE", 1 << 16)
    model = tiny(3)
    model.input.height, model.input.width = 4095, 4097  # 128 * 16777215 = 2**31 - 128 fits
    validate(model)
    model = tiny(3)
    model.input.height, model.input.width = 4096, 4096  # 128 * 2**24 = 2**31 does not
    expect(model, "layer 3 ('pool')", "4096x4096", cls=OverflowRiskError)
