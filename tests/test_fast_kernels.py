"""The Numba kernels (promref.kernels.fast) against the NumPy reference, bit for bit.

Each op gets a hypothesis property test over random layers that pass the
loader's checks (promref.validate), with the corners drawn on purpose:
1 channel, odd and tiny spatial sizes, strides 1 and 2, asymmetric padding,
any input and weight zero point, multipliers from 0 and 1 up to 2**31 - 1,
shifts at both ends of [-31, 30] (as far as the overflow rule allows),
tight ReLU6-like clamps, saturating inputs, exact .5 ties, both rounding
modes, several pixel blocks and channel groups in the 1x1 kernels.
"""
import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promref import arith, validate
from promref.errors import OverflowRiskError
from promref.kernels import fast, reference
from promref.kernels.fast import _options, _stencil
from promref.model import Layer

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# multipliers worth testing: zero, tiny, 2**30 (ties with shift -1), the largest ones
MULTIPLIERS = st.one_of(st.sampled_from([0, 1, 2, 3, 1 << 30, (1 << 31) - 2, (1 << 31) - 1]),
                        st.integers(1 << 30, (1 << 31) - 1), st.integers(0, (1 << 31) - 1))
SHIFTS = st.one_of(st.sampled_from([arith.SHIFT_MIN, arith.SHIFT_MIN + 1, -1, 0, 1, arith.SHIFT_MAX]),
                   st.integers(arith.SHIFT_MIN, arith.SHIFT_MAX))
ROUNDING = st.sampled_from(arith.ROUNDING_MODES)
INT8 = st.integers(arith.INT8_MIN, arith.INT8_MAX)


# ------------------------------------------------------------------ helpers


def int8_array(data, shape):
    """Random int8 values; sometimes only the extremes -128/127 (saturating sums)."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
    style = data.draw(st.sampled_from(["uniform", "extremes", "constant"]), label="style")
    if style == "uniform":
        return rng.integers(-128, 128, size=shape).astype(np.int8)
    if style == "extremes":
        return rng.choice(np.array([-128, 127], np.int8), size=shape)
    return np.full(shape, data.draw(INT8, label="value"), np.int8)


def largest_shift(bound):
    """The largest shift s <= SHIFT_MAX with ``bound << max(s, 0) <= INT32_MAX`` (the overflow rule)."""
    s = arith.SHIFT_MAX
    while s > 0 and bound << s > arith.INT32_MAX:
        s -= 1
    return s


def draw_clamp(data):
    """(zero point, out_min, out_max): full range, ReLU6-like [-128, -128 + k], or any pair."""
    kind = data.draw(st.sampled_from(["full", "relu6", "any"]), label="clamp")
    if kind == "full":
        return data.draw(INT8, label="zp"), -128, 127
    if kind == "relu6":
        return -128, -128, -128 + data.draw(st.integers(0, 255), label="hi")
    lo, hi = sorted(data.draw(st.tuples(INT8, INT8), label="lo, hi"))
    return data.draw(INT8, label="zp"), lo, hi


def finish_weighted(data, layer, in_zero_point):
    """Draw bias, multipliers, shifts and clamps that pass validate; freeze the arrays like the loader."""
    cout = layer.out_channels
    zero_point, layer.out_min, layer.out_max = draw_clamp(data)
    layer.out_zero_point = zero_point
    layer.bias = np.zeros(cout, np.int32)
    weight_bounds = validate.accumulator_bound(layer, in_zero_point)   # with bias 0
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="bias seed"))
    bias_style = data.draw(st.sampled_from(["small", "large", "extreme"]), label="bias")
    room = np.array([arith.INT32_MAX - b for b in weight_bounds], np.int64)  # |bias| may use all of it
    if bias_style == "small":
        bias = rng.integers(-1000, 1001, size=cout)
    elif bias_style == "large":
        bias = rng.integers(-room, room + 1)
    else:
        bias = room * rng.choice([-1, 1], size=cout)
    layer.bias = bias.astype(np.int32)
    layer.multiplier = np.array(data.draw(st.lists(MULTIPLIERS, min_size=cout, max_size=cout), label="M"), np.int32)
    shifts = data.draw(st.lists(SHIFTS, min_size=cout, max_size=cout), label="shifts")
    bounds = validate.accumulator_bound(layer, in_zero_point)
    layer.shift = np.array([min(s, largest_shift(b)) for s, b in zip(shifts, bounds)], np.int32)
    validate._check_weighted(layer, "test layer", in_zero_point)  # the loader's own per-layer checks
    for array in (layer.weights, layer.bias, layer.multiplier, layer.shift):
        array.setflags(write=False)
    return layer


def assert_same(layer, x, in_zero_point, rounding, **options):
    expected = reference.OPS[layer.op](x, layer, in_zero_point, rounding)
    got = getattr(fast, layer.op)(x, layer, in_zero_point, rounding, **options)
    assert got.dtype == np.int8 and got.shape == expected.shape
    if not np.array_equal(got, expected):
        where = np.argwhere(got != expected)[0]
        raise AssertionError(f"{layer.op}: first difference at {tuple(where)}: fast {got[tuple(where)]} "
                             f"!= reference {expected[tuple(where)]} ({len(np.argwhere(got != expected))} in all)")


def spatial(data, kernel, stride):
    """Input size H, W in 1..9 and padding (top, bottom, left, right) giving a non-empty output."""
    padding = tuple(data.draw(st.lists(st.integers(0, kernel - 1), min_size=4, max_size=4), label="padding"))
    h = data.draw(st.integers(max(1, kernel - padding[0] - padding[1]), 9), label="H")
    w = data.draw(st.integers(max(1, kernel - padding[2] - padding[3]), 9), label="W")
    return h, w, padding


# ---------------------------------------------------------------- the ops


@SETTINGS
@given(st.data())
def test_conv2d_general(data):
    """k x k convolutions (the stem), strides 1-2, any padding: the direct kernel."""
    kernel = data.draw(st.integers(1, 5), label="kernel")
    stride = data.draw(st.integers(1, 2), label="stride")
    if kernel == 1 and stride == 1:
        stride = 2          # 1x1 stride 1 has its own test and kernel
    h, w, padding = spatial(data, kernel, stride)
    n, cin, cout = (data.draw(st.integers(1, hi), label=name) for name, hi in (("N", 3), ("Cin", 5), ("Cout", 20)))
    zx, zw = data.draw(INT8, label="zx"), data.draw(INT8, label="zw")
    layer = Layer("conv", "stem", "conv2d", ("input",), cin, cout, 0, kernel=kernel, stride=stride,
                  padding=padding, weights=int8_array(data, (cout, kernel, kernel, cin)), weight_zero_point=zw)
    finish_weighted(data, layer, zx)
    assert_same(layer, int8_array(data, (n, h, w, cin)), zx, data.draw(ROUNDING, label="rounding"))


@SETTINGS
@given(st.data())
def test_conv2d_1x1(data):
    """int8 1x1 convolutions: the blocked kernel, over several pixel blocks and channel groups."""
    n = data.draw(st.integers(1, 3), label="N")
    h, w = data.draw(st.integers(1, 9), label="H"), data.draw(st.integers(1, 9), label="W")
    cin, cout = data.draw(CHANNELS_1X1, label="Cin"), data.draw(CHANNELS_1X1, label="Cout")
    zx, zw = data.draw(INT8, label="zx"), data.draw(INT8, label="zw")
    layer = Layer("pw", "expand", "conv2d", ("input",), cin, cout, 0, kernel=1,
                  weights=int8_array(data, (cout, 1, 1, cin)), weight_zero_point=zw)
    finish_weighted(data, layer, zx)
    assert_same(layer, int8_array(data, (n, h, w, cin)), zx, data.draw(ROUNDING, label="rounding"),
                block=data.draw(BLOCKS, label="block"))


#: 1x1 channel counts: any small count, or a multiple of 8 (as in MobileNetV2)
CHANNELS_1X1 = st.one_of(st.integers(1, 70), st.integers(1, 9).map(lambda k: 8 * k))
#: pixels per job of the 1x1 kernels (multiples of LANES): small blocks give many blocks and
#: odd tails within one test; None is what the engine uses (BLOCK for int8 1x1, rows_block for ternary)
BLOCKS = st.sampled_from([32, 64, 96, _options.BLOCK, None])
#: the ternary kernel's two strategies (row sums over pixels, masked sums over channels) and the default
TERNARY_METHODS = st.sampled_from(["rows", "masked", None])


def ternary_weights(data, shape):
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="weight seed"))
    zeros = data.draw(st.sampled_from([0.0, 0.4, 0.9, 1.0]), label="fraction of zeros")
    plus = data.draw(st.sampled_from([0.0, 0.5, 1.0]), label="fraction of +1 among non-zeros")
    signs = np.where(rng.random(shape) < plus, 1, -1)
    return np.where(rng.random(shape) < zeros, 0, signs).astype(np.int8)


@SETTINGS
@given(st.data())
def test_pointwise_ternary(data):
    n = data.draw(st.integers(1, 3), label="N")
    h, w = data.draw(st.integers(1, 9), label="H"), data.draw(st.integers(1, 9), label="W")
    cin = data.draw(st.one_of(CHANNELS_1X1, st.integers(250, 600)), label="Cin")
    cout = data.draw(CHANNELS_1X1, label="Cout")
    zx = data.draw(INT8, label="zx")
    layer = Layer("pw", "expand", "pointwise_ternary", ("input",), cin, cout, 0,
                  weights=ternary_weights(data, (cout, cin)))
    finish_weighted(data, layer, zx)
    assert_same(layer, int8_array(data, (n, h, w, cin)), zx, data.draw(ROUNDING, label="rounding"),
                block=data.draw(BLOCKS, label="block"), method=data.draw(TERNARY_METHODS, label="method"))



@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("value", [-128, 127])
def test_pointwise_ternary_long_sums(sign, value):
    """Hundreds of equal terms of the same sign: the int16 partial sums hit their largest
    values (255 * 128) and spill several times into the int32 total."""
    cin, cout = 1000, 3
    layer = Layer("pw", "expand", "pointwise_ternary", ("input",), cin, cout, 0,
                  weights=np.full((cout, cin), sign, np.int8), bias=np.array([0, 5, -5], np.int32),
                  multiplier=np.full(cout, 1 << 30, np.int32), shift=np.full(cout, -12, np.int32))
    validate._check_weighted(layer, "test layer", 0)
    x = np.full((2, 3, 3, cin), value, np.int8)
    for rounding in arith.ROUNDING_MODES:
        for method in ("rows", "masked"):
            assert_same(layer, x, 0, rounding, method=method)


@SETTINGS
@given(st.data())
def test_depthwise_conv2d(data):
    kernel = data.draw(st.integers(1, 5), label="kernel")
    stride = data.draw(st.integers(1, 2), label="stride")
    h, w, padding = spatial(data, kernel, stride)
    n, c = data.draw(st.integers(1, 3), label="N"), data.draw(st.integers(1, 40), label="C")
    zx, zw = data.draw(INT8, label="zx"), data.draw(INT8, label="zw")
    layer = Layer("dw", "depthwise", "depthwise_conv2d", ("input",), c, c, 0, kernel=kernel, stride=stride,
                  padding=padding, weights=int8_array(data, (kernel, kernel, c)), weight_zero_point=zw)
    finish_weighted(data, layer, zx)
    few_pixels = data.draw(st.sampled_from([0, 10 ** 9]), label="few pixels")   # force either path
    assert_same(layer, int8_array(data, (n, h, w, c)), zx, data.draw(ROUNDING, label="rounding"),
                few_pixels=few_pixels)


@pytest.mark.parametrize("padding", [(0, 1, 0, 1), (1, 0, 1, 0), (1, 1, 1, 1), (0, 0, 0, 0)])
@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_3x3_paddings(padding, stride):
    """The MobileNetV2 depthwise shapes, TF-style asymmetric 'SAME' padding included."""
    rng = np.random.default_rng(stride)
    c = 24
    layer = Layer("dw", "depthwise", "depthwise_conv2d", ("input",), c, c, -128, out_min=-128, out_max=-80,
                  kernel=3, stride=stride, padding=padding, weights=rng.integers(-127, 128, (3, 3, c)).astype(np.int8),
                  bias=rng.integers(-5000, 5000, c).astype(np.int32),
                  multiplier=np.full(c, 1 << 30, np.int32), shift=np.full(c, -6, np.int32))
    validate._check_weighted(layer, "test layer", 3)
    for h in (1, 2, 7, 8):
        x = rng.integers(-128, 128, (2, h, h + 1, c)).astype(np.int8)
        if min(h + padding[0] + padding[1], h + 1 + padding[2] + padding[3]) >= 3:
            for rounding in arith.ROUNDING_MODES:
                assert_same(layer, x, 3, rounding)
                assert_same(layer, x, 3, rounding, few_pixels=0)


@SETTINGS
@given(st.data())
def test_fully_connected(data):
    n = data.draw(st.integers(1, 4), label="N")
    cin, cout = data.draw(st.integers(1, 300), label="Cin"), data.draw(st.integers(1, 20), label="Cout")
    zx, zw = data.draw(INT8, label="zx"), data.draw(INT8, label="zw")
    layer = Layer("fc", "classifier", "fully_connected", ("input",), cin, cout, 0,
                  weights=int8_array(data, (cout, cin)), weight_zero_point=zw)
    finish_weighted(data, layer, zx)
    assert_same(layer, int8_array(data, (n, cin)), zx, data.draw(ROUNDING, label="rounding"))


@SETTINGS
@given(st.data())
def test_global_avgpool(data):
    n, c = data.draw(st.integers(1, 4), label="N"), data.draw(st.integers(1, 40), label="C")
    h, w = data.draw(st.integers(1, 12), label="H"), data.draw(st.integers(1, 12), label="W")
    zp = data.draw(INT8, label="zp")
    layer = Layer("pool", "pool", "global_avgpool", ("x",), c, c, zp)
    assert_same(layer, int8_array(data, (n, h, w, c)), zp, data.draw(ROUNDING, label="rounding"))


def test_global_avgpool_ties():
    """Means that are exactly .5 round away from zero, on both sides."""
    layer = Layer("pool", "pool", "global_avgpool", ("x",), 4, 4, 0)
    x = np.zeros((1, 1, 2, 4), np.int8)
    x[0, 0, 0] = [1, -1, 127, -128]
    x[0, 0, 1] = [0, 0, -128, 127]       # sums 1, -1, -1, -1 over 2 pixels: +-0.5
    assert_same(layer, x, 0, "single")
    assert fast.global_avgpool(x, layer, 0, "single").tolist() == [[1, -1, -1, -1]]


def draw_add_layer(data, za, zb):
    """An add layer that passes validate._check_add: TFLite-like scales or extreme integers."""
    left = data.draw(st.sampled_from([0, 1, 20, validate.MAX_ADD_LEFT_SHIFT]) | st.integers(0, 23), label="L")
    if data.draw(st.booleans(), label="tflite scales"):
        sa, sb = (data.draw(st.floats(1e-3, 1.0), label=name) for name in ("sa", "sb"))
        twice = 2 * max(sa, sb)
        out_scale = data.draw(st.floats(1e-3, 2.0), label="out scale")
        reals = [sa / twice, sb / twice, twice / ((1 << left) * out_scale)]
        pairs = [arith.quantize_multiplier(r) for r in reals]
        multiplier, shift = [m for m, _ in pairs], [s for _, s in pairs]
    else:
        multiplier = [data.draw(MULTIPLIERS, label=f"M{i}") for i in range(3)]
        shift = [data.draw(SHIFTS, label=f"s{i}") for i in range(3)]
    # respect the overflow rules: each centred, left-shifted input scaled up by at most
    # its bound, the sum of the rescaled inputs within int32, the sum scaled up as well
    bounds = [max(abs(-128 - z), abs(127 - z)) << left for z in (za, zb)]
    shift[0], shift[1] = (min(s, largest_shift(b)) for s, b in zip(shift[:2], bounds))

    def total():
        return sum(validate.scaled_bound(b, m, s) for b, m, s in zip(bounds, multiplier, shift))
    while total() > arith.INT32_MAX:
        i = 0 if shift[0] >= shift[1] else 1
        shift[i] -= 1
    shift[2] = min(shift[2], largest_shift(total()))
    zero_point, lo, hi = draw_clamp(data)
    layer = Layer("add", "add", "add", ("a", "b"), 1, 1, zero_point, out_min=lo, out_max=hi,
                  multiplier=np.array(multiplier, np.int32), shift=np.array(shift, np.int32), left_shift=left)
    validate._check_add(layer, "test add", [za, zb])
    return layer


@SETTINGS
@given(st.data())
def test_add(data):
    shape = (data.draw(st.integers(1, 3), label="N"), data.draw(st.integers(1, 9), label="H"),
             data.draw(st.integers(1, 9), label="W"), data.draw(st.integers(1, 24), label="C"))
    za, zb = data.draw(INT8, label="za"), data.draw(INT8, label="zb")
    layer = draw_add_layer(data, za, zb)
    a, b = int8_array(data, shape), int8_array(data, shape)
    rounding = data.draw(ROUNDING, label="rounding")
    expected = reference.add(a, b, layer, za, zb, rounding)
    got = fast.add(a, b, layer, za, zb, rounding)
    assert got.dtype == np.int8 and np.array_equal(got, expected)


def test_add_large_tensor():
    """More elements than one job (add.ELEMENTS_PER_JOB), so several workers share the tensor."""
    rng = np.random.default_rng(0)
    a, b = (rng.integers(-128, 128, (3, 33, 33, 24)).astype(np.int8) for _ in range(2))
    m, s = arith.quantize_multipliers([0.4, 0.5, 1 / (1 << 20) / 0.8])
    layer = Layer("add", "add", "add", ("a", "b"), 24, 24, 3, multiplier=m, shift=s, left_shift=20)
    validate._check_add(layer, "test add", [-3, 7])
    for rounding in arith.ROUNDING_MODES:
        assert np.array_equal(fast.add(a, b, layer, -3, 7, rounding), reference.add(a, b, layer, -3, 7, rounding))


# ------------------------------------------------------------ plumbing


def ternary_layer(rng, cin=16, cout=8):
    return Layer("pw", "expand", "pointwise_ternary", ("input",), cin, cout, 0,
                 weights=rng.integers(-1, 2, (cout, cin)).astype(np.int8), bias=np.zeros(cout, np.int32),
                 multiplier=np.full(cout, 1 << 30, np.int32), shift=np.full(cout, -4, np.int32))


def freeze(layer):
    for array in (layer.weights, layer.bias, layer.multiplier, layer.shift):
        array.setflags(write=False)
    return layer


def test_cache_is_keyed_by_input_zero_point():
    """The folded bias depends on zx: one layer called with several zero points stays exact."""
    rng = np.random.default_rng(1)
    layer = freeze(ternary_layer(rng))
    x = rng.integers(-128, 128, (1, 4, 4, 16)).astype(np.int8)
    for zx in (0, 17, -128, 0):
        assert_same(layer, x, zx, "single")
    assert {key for key in layer.cache if key[0] == "fast.pointwise_ternary"} == {
        ("fast.pointwise_ternary", zx) for zx in (0, 17, -128)}


def test_cache_follows_edited_layers():
    """Writable arrays are never cached, replaced arrays invalidate the cache: a layer edited
    between calls (as a trainer or exporter might) gives no stale results."""
    rng = np.random.default_rng(2)
    x = rng.integers(-128, 128, (2, 3, 3, 16)).astype(np.int8)
    layer = ternary_layer(rng)                      # writable, as before validation
    assert_same(layer, x, 5, "single")
    layer.weights[:] = -layer.weights               # edited in place
    layer.bias[0] = 1000
    assert_same(layer, x, 5, "single")
    freeze(layer)
    assert_same(layer, x, 5, "single")              # now cached ...
    layer.weights = np.ascontiguousarray(layer.weights[::-1])   # ... until an array is replaced
    layer.weight_zero_point = 0
    freeze(layer)
    assert_same(layer, x, 5, "single")
    int8 = Layer("dw", "depthwise", "depthwise_conv2d", ("input",), 16, 16, 0, kernel=3, padding=(1, 1, 1, 1),
                 weights=rng.integers(-128, 128, (3, 3, 16)).astype(np.int8), weight_zero_point=3,
                 bias=np.zeros(16, np.int32), multiplier=np.full(16, 1 << 30, np.int32),
                 shift=np.full(16, -8, np.int32))
    freeze(int8)
    assert_same(int8, x, 5, "double")
    int8.weight_zero_point = -7                     # a scalar the derived weights depend on
    assert_same(int8, x, 5, "double")
    clone = copy.deepcopy(int8)                     # copies the cache, but with writable arrays
    clone.weights[0, 0, :] = 100
    assert_same(clone, x, 5, "double")


def test_unknown_ternary_method_or_block_is_refused():
    layer = freeze(ternary_layer(np.random.default_rng(0)))
    x = np.zeros((1, 2, 2, 16), np.int8)
    with pytest.raises(ValueError, match="method"):
        fast.pointwise_ternary(x, layer, 0, "single", method="dense")
    with pytest.raises(ValueError, match="multiple of 32"):
        fast.pointwise_ternary(x, layer, 0, "single", block=40, method="rows")


def test_unknown_rounding_mode_is_refused():
    layer = Layer("pool", "add", "add", ("a", "b"), 1, 1, 0, multiplier=np.zeros(3, np.int32),
                  shift=np.zeros(3, np.int32))
    x = np.zeros((1, 1, 1, 1), np.int8)
    with pytest.raises(ValueError, match="rounding"):
        fast.add(x, x, layer, 0, 0, "nearest")


def test_layers_that_break_the_overflow_rule_are_refused_by_validate():
    """The kernels' int32 accumulators rely on this check (a guard for the test helpers too)."""
    layer = Layer("pw", "expand", "pointwise_ternary", ("input",), 4, 1, 0, weights=np.ones((1, 4), np.int8),
                  bias=np.array([arith.INT32_MAX - 100], np.int32), multiplier=np.ones(1, np.int32),
                  shift=np.zeros(1, np.int32))
    with pytest.raises(OverflowRiskError):
        validate._check_weighted(layer, "test layer", 0)


def test_channel_group_sizes():
    for pixels in (1, 49, 128, 129, 10_000):
        for channels in (1, 15, 16, 17, 96, 1280):
            group = _options.channel_group(pixels, channels)
            assert 1 <= group <= channels
            assert group % 8 == 0 or channels % 8 != 0   # even shares of MobileNetV2's channel counts


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 5, 7), (3, 33, 17, 24), (64, 4, 4, 130)])
def test_layout_conversions(shape):
    """NHWC <-> channel-major [C, N, H, W] (``_layout``: TILE-sized bands and their tails) against NumPy."""
    x = np.random.default_rng(sum(shape)).integers(-128, 128, shape).astype(np.int8)
    cm = fast.to_channel_major(x)
    assert cm.flags.c_contiguous and np.array_equal(cm, x.transpose(3, 0, 1, 2))
    back = fast.to_nhwc(cm)
    assert back.flags.c_contiguous and np.array_equal(back, x)


# ------------------------------------------------- stencil planes and fused epilogues


@pytest.mark.parametrize("n, h, w", [(20, 20, 21), (300, 4, 4), (3, 1, 9), (2, 9, 1)])
@pytest.mark.parametrize("stride", [1, 2])
def test_3x3_stencil_over_several_chunks(n, h, w, stride):
    """Depthwise and stem 3x3 on tensors of several image chunks (``_stencil.chunk_images``),
    a partial last chunk, every padding of 0 or 1, several output-channel groups."""
    rng = np.random.default_rng(n * h + w + stride)
    assert -(-n // _stencil.chunk_images(h, w)) >= 2 or h * w < 10
    for padding in ((1, 1, 1, 1), (0, 1, 0, 1), (1, 0, 0, 1), (0, 0, 1, 1)):
        if min(h + padding[0] + padding[1], w + padding[2] + padding[3]) < 3:
            continue
        c = 5
        dw = Layer("dw", "depthwise", "depthwise_conv2d", ("input",), c, c, -3, out_min=-128, out_max=100,
                   kernel=3, stride=stride, padding=padding, weight_zero_point=-2,
                   weights=rng.integers(-128, 128, (3, 3, c)).astype(np.int8),
                   bias=rng.integers(-5000, 5000, c).astype(np.int32),
                   multiplier=rng.integers(1 << 29, 1 << 31, c).astype(np.int32), shift=np.full(c, -9, np.int32))
        validate._check_weighted(dw, "test layer", 7)
        stem = Layer("stem", "stem", "conv2d", ("input",), 3, 20, 4, kernel=3, stride=stride, padding=padding,
                     weights=rng.integers(-128, 128, (20, 3, 3, 3)).astype(np.int8), weight_zero_point=1,
                     bias=rng.integers(-5000, 5000, 20).astype(np.int32),
                     multiplier=rng.integers(1 << 29, 1 << 31, 20).astype(np.int32), shift=np.full(20, -11, np.int32))
        validate._check_weighted(stem, "test layer", 7)
        for rounding in arith.ROUNDING_MODES:
            assert_same(dw, rng.integers(-128, 128, (n, h, w, c)).astype(np.int8), 7, rounding, few_pixels=0)
            assert_same(stem, rng.integers(-128, 128, (n, h, w, 3)).astype(np.int8), 7, rounding)


def assert_fused_same(layer, add, x, residual, zx, zr, rounding, project_first, **options):
    """The 1x1 kernel with the add fused into its epilogue == reference 1x1, then reference add."""
    y = reference.OPS[layer.op](x, layer, zx, rounding)
    pair = (y, residual, layer.out_zero_point, zr) if project_first else (residual, y, zr, layer.out_zero_point)
    expected = reference.add(pair[0], pair[1], add, pair[2], pair[3], rounding)
    table = fast.residual_table(add, layer.out_zero_point, zr, rounding, project_first)
    got = fast.FUSED_OPS[layer.op](fast.to_channel_major(x), layer, zx, rounding,
                                   residual=fast.to_channel_major(residual), table=table, **options)
    assert np.array_equal(fast.to_nhwc(got), expected)


@SETTINGS
@given(st.data())
def test_fused_residual_add(data):
    """Ternary (both methods, several blocks) and int8 1x1 layers with the residual add fused,
    the project output as either input of the add, frozen (cached tables) or not."""
    n = data.draw(st.integers(1, 3), label="N")
    h, w = data.draw(st.integers(1, 9), label="H"), data.draw(st.integers(1, 9), label="W")
    cin, cout = data.draw(CHANNELS_1X1, label="Cin"), data.draw(CHANNELS_1X1, label="Cout")
    zx, zr = data.draw(INT8, label="zx"), data.draw(INT8, label="zr")
    if data.draw(st.booleans(), label="ternary"):
        layer = Layer("pw", "project", "pointwise_ternary", ("input",), cin, cout, 0,
                      weights=ternary_weights(data, (cout, cin)))
        options = dict(method=data.draw(TERNARY_METHODS, label="method"))
    else:
        layer = Layer("pw", "project", "conv2d", ("input",), cin, cout, 0, kernel=1,
                      weights=int8_array(data, (cout, 1, 1, cin)), weight_zero_point=data.draw(INT8, label="zw"))
        options = {}
    finish_weighted(data, layer, zx)
    project_first = data.draw(st.booleans(), label="project first")
    zps = (layer.out_zero_point, zr) if project_first else (zr, layer.out_zero_point)
    add = draw_add_layer(data, *zps)
    if data.draw(st.booleans(), label="frozen add"):
        add.multiplier.setflags(write=False)
        add.shift.setflags(write=False)
    x, residual = int8_array(data, (n, h, w, cin)), int8_array(data, (n, h, w, cout))
    assert_fused_same(layer, add, x, residual, zx, zr, data.draw(ROUNDING, label="rounding"), project_first,
                      block=data.draw(BLOCKS, label="block"), **options)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("h, w", [(2, 2), (4, 6), (8, 8), (16, 10), (32, 32), (7, 8), (8, 7), (9, 9)])
def test_stride2_depthwise_parity_planes(threads, h, w):
    """Stride-2 depthwise 3x3 (``_parity`` for even H and W, the stride-1 stencil for odd ones):
    every padding of 0 or 1, several chunks and a partial last one, 1 and 2 threads, both roundings."""
    import numba
    from promref.kernels.fast import _parity
    rng = np.random.default_rng(h * 100 + w)
    n = 2 * _parity.chunk_images(h, w) + 1
    c = 6
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        for padding in ((1, 1, 1, 1), (0, 1, 0, 1), (1, 0, 0, 1), (0, 0, 1, 0)):
            if min(h + padding[0] + padding[1], w + padding[2] + padding[3]) < 3:
                continue
            layer = Layer("dw", "depthwise", "depthwise_conv2d", ("input",), c, c, -3, out_min=-128, out_max=90,
                          kernel=3, stride=2, padding=padding, weight_zero_point=3,
                          weights=rng.integers(-128, 128, (3, 3, c)).astype(np.int8),
                          bias=rng.integers(-5000, 5000, c).astype(np.int32),
                          multiplier=rng.integers(1 << 29, 1 << 31, c).astype(np.int32),
                          shift=np.full(c, -9, np.int32))
            validate._check_weighted(layer, "test layer", -5)
            for array in (layer.weights, layer.bias, layer.multiplier, layer.shift):
                array.setflags(write=False)     # frozen like a loaded model: the cached tap geometry is used
            x = rng.integers(-128, 128, (n, h, w, c)).astype(np.int8)
            for rounding in arith.ROUNDING_MODES:
                assert_same(layer, x, -5, rounding, few_pixels=0)
                assert_same(layer, x[:1], -5, rounding, few_pixels=0)
                # exactly at the few-pixel rule's bound: N * (H * W + Ho * Wo) pixels in and out
                ho = _options.output_size(h, 3, 2, padding[0], padding[1])
                wo = _options.output_size(w, 3, 2, padding[2], padding[3])
                assert_same(layer, x[:1], -5, rounding, few_pixels=h * w + ho * wo)
    finally:
        numba.set_num_threads(before)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_stride2_3x3_column_split(data):
    """Stride-2 3x3 convolutions over wide planes of even width (the ImageNet stem): ``_column_split``,
    every padding of 0 or 1, odd and even H, several images per chunk and one per chunk."""
    from promref.kernels.fast import _column_split
    padding = tuple(data.draw(st.lists(st.integers(0, 1), min_size=4, max_size=4), label="padding"))
    w = 2 * data.draw(st.integers(_stencil.ROW_BY_ROW // 2, 70), label="W/2")
    h = data.draw(st.integers(max(1, 3 - padding[0] - padding[1]), 70), label="H")
    assert _column_split.fits(3, 2, padding, w)
    n, cin, cout = (data.draw(st.integers(1, hi), label=name) for name, hi in (("N", 3), ("Cin", 4), ("Cout", 20)))
    zx, zw = data.draw(INT8, label="zx"), data.draw(INT8, label="zw")
    layer = Layer("conv", "stem", "conv2d", ("input",), cin, cout, 0, kernel=3, stride=2, padding=padding,
                  weights=int8_array(data, (cout, 3, 3, cin)), weight_zero_point=zw)
    finish_weighted(data, layer, zx)
    assert_same(layer, int8_array(data, (n, h, w, cin)), zx, data.draw(ROUNDING, label="rounding"))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_pointwise_ternary_engine_blocks(data):
    """The engine's ternary blocks (``rows_block``: up to MAX_BLOCK pixels for few input rows)
    over tensors of several such blocks and a partial last one; the short blocks of a wide
    input (300 rows) read from their copies (``_row_sums.copy_block``), the long ones in place."""
    from promref.kernels.fast._row_sums import copies_blocks
    assert copies_blocks(4608, _options.rows_block(300)) and not copies_blocks(4608, _options.rows_block(24))
    cin = data.draw(st.sampled_from([16, 24, 300]), label="Cin")
    cout = data.draw(st.integers(1, 40), label="Cout")
    assert 4608 > _options.rows_block(cin)          # 2 x 48 x 48 pixels: more than one block
    zx = data.draw(INT8, label="zx")
    layer = Layer("pw", "expand", "pointwise_ternary", ("input",), cin, cout, 0,
                  weights=ternary_weights(data, (cout, cin)))
    finish_weighted(data, layer, zx)
    assert_same(layer, int8_array(data, (2, 48, 48, cin)), zx, data.draw(ROUNDING, label="rounding"),
                method="rows")
