"""Every worked numeric example in docs/spec.md and docs/format.md, asserted
against promref's own functions, so the documents cannot drift from the code.

Each test names the section of the document it checks.  If one of these fails,
either the code changed its semantics (then the spec must change too, on
purpose) or the document has a typo.
"""
import json
import zipfile

import numpy as np
import pytest

from promref import arith
from promref.api import predict, softmax
from promref.engine import run
from promref.errors import OverflowRiskError, WeightsFormatError
from promref.format import load, save
from promref.kernels import reference as ref
from promref.kernels.reference.depthwise_conv2d import depthwise_conv2d_accumulate
from promref.kernels.reference.fully_connected import fully_connected_accumulate
from promref.kernels.reference.pointwise_ternary import folded_bias, pointwise_ternary_accumulate
from promref.model import InputSpec, Layer, Model
from promref.preprocess import load_image, pixels_to_int8
from promref.validate import accumulator_bound, check_scale_input, scaled_bound

M_HALF = 1 << 30  # the Q0.31 multiplier 0.5


def i32(*values):
    return np.array(values, np.int32)


def nhwc(values, h=1, w=1):
    """int8 [1, h, w, C] from a flat list (row-major)."""
    return np.array(values, np.int8).reshape(1, h, w, -1)


def double_steps(acc, multiplier, shift):
    """The two intermediate results of the 'double' mode: (SRDHM, RoundingDivideByPOT)."""
    left, right = max(shift, 0), max(-shift, 0)
    high = arith.saturating_rounding_doubling_high_mul(acc << left, multiplier)
    return int(high), int(arith.rounding_divide_by_pot(high, right))


# ------------------------------------------------------------- spec: Input


def test_input_pixels_to_int8():
    q = pixels_to_int8(np.array([0, 1, 127, 128, 255], np.uint8))
    assert q.dtype == np.int8
    assert q.tolist() == [-128, -127, -1, 0, 127]
    # with the default input spec, real = (1/255) * (q - (-128)) = pixel / 255
    spec = InputSpec(height=1, width=1)
    assert (spec.scale, spec.zero_point) == (1.0 / 255.0, -128)


def test_input_alpha_over_white():
    rgba = np.array([[[200, 100, 0, 128], [200, 100, 0, 0], [200, 100, 0, 255], [10, 20, 30, 1]]], np.uint8)
    assert load_image(rgba).tolist() == [[[227, 177, 127], [255, 255, 255], [200, 100, 0], [254, 254, 254]]]
    # the formula, spelled out for the first pixel's red sample
    assert (200 * 128 + 255 * (255 - 128) + 127) // 255 == 227


def test_input_16bit_scaling():
    gray16 = np.array([[0, 128, 255, 384, 32767, 32768, 65535]], np.uint16)
    out = load_image(gray16)
    assert out.shape == (1, 7, 3)
    assert out[..., 0].tolist() == [[0, 0, 1, 1, 127, 128, 255]]
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 0] == out[..., 2]).all()  # grey replicated


def test_input_resize_arithmetic():
    # 640 x 480 (W x H) with resize=256: shorter side 480 -> 256, longer (640*256 + 240) // 480
    h, w, resize = 480, 640, 256
    assert (w * resize + h // 2) // h == 341
    assert ((256 - 224) // 2, (341 - 224) // 2) == (16, 58)


# ---------------------------------------------------- spec: Requantization

# (acc, M, shift, exact value, single, SRDHM, double)
TIES = [
    (3, M_HALF, 0, 1.5, 2, 2, 2),
    (-3, M_HALF, 0, -1.5, -1, -1, -1),
    (6, M_HALF, -1, 1.5, 2, 3, 2),
    (-6, M_HALF, -1, -1.5, -1, -3, -2),
    (5, M_HALF, -1, 1.25, 1, 3, 2),
    (-5, M_HALF, -1, -1.25, -1, -2, -1),
    (7, M_HALF, -1, 1.75, 2, 4, 2),
    (-7, M_HALF, -1, -1.75, -2, -3, -2),
]


@pytest.mark.parametrize("acc, m, shift, exact, single, srdhm, double", TIES)
def test_requantization_ties(acc, m, shift, exact, single, srdhm, double):
    assert acc * m / 2.0 ** (31 - shift) == exact
    assert arith.scale_single(acc, m, shift) == single
    assert double_steps(acc, m, shift) == (srdhm, double)
    assert arith.scale_double(acc, m, shift) == double
    assert arith.scale_by_mode(acc, m, shift, "single") == single
    assert arith.scale_by_mode(acc, m, shift, "double") == double


def test_requantization_double_rounding_differs():
    # the example named in the brief: 5 * 0.5 * 0.5 = 1.25
    assert arith.scale_double(5, 2 ** 30, -1) == 2
    assert arith.scale_single(5, 2 ** 30, -1) == 1


def test_requantization_primitives():
    # SRDHM rounds ties of negative products towards zero (half up), RDBPOT half away from zero
    assert arith.saturating_rounding_doubling_high_mul(-3, M_HALF) == -1       # -1.5 -> -1
    assert arith.saturating_rounding_doubling_high_mul(-5, M_HALF) == -2       # -2.5 -> -2
    assert arith.saturating_rounding_doubling_high_mul(3, M_HALF) == 2         # 1.5 -> 2
    assert arith.rounding_divide_by_pot(-3, 1) == -2                           # -1.5 -> -2
    assert arith.rounding_divide_by_pot(3, 1) == 2                             # 1.5 -> 2
    assert arith.rounding_divide_by_pot(-5, 1) == -3                           # -2.5 -> -3
    assert arith.rounding_divide_by_pot(-5, 0) == -5
    # the saturating case of SRDHM (unreachable in promref: multipliers are >= 0)
    assert arith.saturating_rounding_doubling_high_mul(arith.INT32_MIN, arith.INT32_MIN) == arith.INT32_MAX


def test_requantization_realistic():
    m, shift = arith.quantize_multiplier(0.0123)
    assert (m, shift) == (1690499128, -6)
    assert 12345 * m == 20869211735160
    assert 12345 * m + (1 << 36) == 20937931211896
    assert arith.scale_single(12345, m, shift) == 152
    assert double_steps(12345, m, shift) == (9718, 152)
    assert arith.scale_single(-12345, m, shift) == -152
    assert double_steps(-12345, m, shift) == (-9718, -152)


@pytest.mark.parametrize("rounding", ["single", "double"])
def test_requantization_saturation(rounding):
    # acc * 0.25 + z, clamped to [-128, 127]
    assert arith.requantize(np.array([1000]), M_HALF, -1, 3, -128, 127, rounding).tolist() == [127]   # 253
    assert arith.requantize(np.array([-1000]), M_HALF, -1, 3, -128, 127, rounding).tolist() == [-128]  # -247
    assert arith.requantize(np.array([500]), M_HALF, -1, -10, -128, 127, rounding).tolist() == [115]
    assert arith.requantize(np.array([1000]), M_HALF, -1, 3, -128, 127, rounding).dtype == np.int8


def test_requantization_relu6():
    s_out, z = 0.03, -128
    out_max = min(127, z + int(np.floor(6.0 / s_out + 0.5)))
    assert out_max == 72
    accs = np.array([-40, 151, 400, 500])
    for rounding in ("single", "double"):
        assert arith.requantize(accs, M_HALF, 0, z, z, out_max, rounding).tolist() == [-128, -52, 72, 72]
    assert arith.scale_single(151, M_HALF, 0) == 76 and arith.scale_double(151, M_HALF, 0) == 76


def test_quantize_multiplier_examples():
    assert arith.quantize_multiplier(0.5) == (1 << 30, 0)
    assert arith.quantize_multiplier(1.0) == (1 << 30, 1)
    assert arith.quantize_multiplier(0.75) == (1610612736, 0)
    assert arith.quantize_multiplier(1 / 3) == (1431655765, -1)
    assert arith.quantize_multiplier(0.0) == (0, 0)
    assert arith.quantize_multiplier(2.0 ** -40) == (0, 0)        # shift would be < -31: flushed to zero
    with pytest.raises(ValueError):
        arith.quantize_multiplier(2.0 ** 31)                        # shift would be > 30
    with pytest.raises(ValueError):
        arith.quantize_multiplier(-0.5)


# ------------------------------------------------------------- spec: ops


def ternary_layer():
    return Layer(name="pw", kind="project", op="pointwise_ternary", inputs=("stem",), in_channels=4,
                 out_channels=2, out_zero_point=2, out_scale=0.1,
                 weights=np.array([[1, -1, 0, 1], [-1, -1, 1, 0]], np.int8),
                 bias=i32(100, -50), multiplier=i32(M_HALF, M_HALF), shift=i32(-3, -3))


def test_pointwise_ternary_example():
    layer, x, zx = ternary_layer(), nhwc([7, -2, 10, 3]), 3
    assert folded_bias(layer, zx).tolist() == [97, -47]
    assert pointwise_ternary_accumulate(x, layer, zx).ravel().tolist() == [109, -42]
    # the same accumulator the multiply-and-subtract way
    t = layer.weights.astype(np.int64)
    assert (layer.bias + t @ (np.array([7, -2, 10, 3]) - zx)).tolist() == [109, -42]
    for rounding in ("single", "double"):
        assert ref.pointwise_ternary(x, layer, zx, rounding).ravel().tolist() == [9, -1]
    assert arith.scale_single(109, M_HALF, -3) == 7 and arith.scale_single(-42, M_HALF, -3) == -3


def test_depthwise_padding_example():
    layer = Layer(name="dw", kind="depthwise", op="depthwise_conv2d", inputs=("x",), in_channels=1,
                  out_channels=1, out_zero_point=0, kernel=3, stride=1, padding=(1, 1, 1, 1),
                  weights=np.arange(1, 10, dtype=np.int8).reshape(3, 3, 1), bias=i32(-3),
                  multiplier=i32(M_HALF), shift=i32(-2))
    x, zx = nhwc([1, 2, 3, 4], 2, 2), -5
    acc = depthwise_conv2d_accumulate(x, layer, zx)[0, :, :, 0]
    assert acc.tolist() == [[214, 184], [124, 94]]
    assert -3 + 5 * 6 + 6 * 7 + 8 * 8 + 9 * 9 == 214
    # 214/8 = 26.75, 184/8 = 23, 124/8 = 15.5, 94/8 = 11.75
    for rounding in ("single", "double"):
        assert ref.depthwise_conv2d(x, layer, zx, rounding)[0, :, :, 0].tolist() == [[27, 23], [16, 12]]


def test_fully_connected_example():
    layer = Layer(name="fc", kind="classifier", op="fully_connected", inputs=("pool",), in_channels=3,
                  out_channels=1, out_zero_point=0, weights=np.array([[4, 5, 6]], np.int8),
                  weight_zero_point=2, bias=i32(10), multiplier=i32(M_HALF), shift=i32(0))
    x, zx = np.array([[1, 2, 3]], np.int8), -1
    assert fully_connected_accumulate(x, layer, zx).tolist() == [[39]]
    for rounding in ("single", "double"):
        assert ref.fully_connected(x, layer, zx, rounding).tolist() == [[20]]   # 19.5 -> 20


def add_layer():
    sa, sb, sy = 0.05, 0.04, 0.06
    twice_max = 2 * max(sa, sb)
    m, s = arith.quantize_multipliers([sa / twice_max, sb / twice_max, twice_max / ((1 << 20) * sy)])
    return Layer(name="add", kind="add", op="add", inputs=("a", "b"), in_channels=1, out_channels=1,
                 out_zero_point=1, out_scale=sy, multiplier=m, shift=s, left_shift=20)


def test_add_multipliers():
    layer = add_layer()
    assert layer.multiplier.tolist() == [1073741824, 1717986918, 1789569707]
    assert layer.shift.tolist() == [0, -1, -19]


@pytest.mark.parametrize("rounding", ["single", "double"])
def test_add_example(rounding):
    layer = add_layer()
    a, b = nhwc([50]), nhwc([-30])
    assert ((50 - 3) << 20, (-30 + 2) << 20) == (49283072, -29360128)
    ra = arith.scale_by_mode(49283072, 1073741824, 0, rounding)
    rb = arith.scale_by_mode(-29360128, 1717986918, -1, rounding)
    assert (ra, rb, ra + rb) == (24641536, -11744051, 12897485)
    assert arith.scale_by_mode(12897485, 1789569707, -19, rounding) == 21
    assert ref.add(a, b, layer, 3, -2, rounding).ravel().tolist() == [22]


def test_add_saturating_example():
    layer = add_layer()
    a = b = nhwc([-128])
    # the b path: single rounding -52848230, double rounding -52848231 (SRDHM -105696461)
    assert arith.scale_single(-132120576, 1717986918, -1) == -52848230
    assert double_steps(-132120576, 1717986918, -1) == (-105696461, -52848231)
    assert arith.scale_single(-121529958, 1789569707, -19) == -193
    assert arith.scale_double(-121529959, 1789569707, -19) == -193
    for rounding in ("single", "double"):
        assert ref.add(a, b, layer, 3, -2, rounding).ravel().tolist() == [-128]


def test_add_overflow_bound_example():
    layer = add_layer()
    assert max(abs(-128 - 3), abs(127 - 3)) << 20 == 137363456
    assert scaled_bound(137363456, layer.multiplier[0], int(layer.shift[0])) == 68681729
    assert scaled_bound(135266304, layer.multiplier[1], int(layer.shift[1])) == 54106523


def test_global_avgpool_ties():
    layer = Layer(name="pool", kind="pool", op="global_avgpool", inputs=("x",), in_channels=2,
                  out_channels=2, out_zero_point=-128)
    x = nhwc([1, -1, 2, -2, 3, -3, 4, -4], 2, 2)  # channel 0: 1 2 3 4, channel 1: -1 -2 -3 -4
    assert ref.global_avgpool(x, layer, -128, "single").tolist() == [[3, -3]]   # 2.5 -> 3, -2.5 -> -3
    assert ref.global_avgpool(x, layer, -128, "double").tolist() == [[3, -3]]   # no rounding mode involved
    cases = {(10, 4): 3, (-10, 4): -3, (9, 4): 2, (-9, 4): -2, (11, 4): 3, (-11, 4): -3, (-255, 2): -128}
    for (total, count), mean in cases.items():
        assert arith.global_average(total, count) == mean


# ------------------------------------------------- spec: logits, top-k


def test_softmax_and_topk():
    logits = np.array([3, 7, 7, -2], np.int8)
    probs = softmax(logits, 0.1, -1)
    assert np.allclose(probs, [0.21785638, 0.32500352, 0.32500352, 0.13213657], atol=1e-8)
    model = tiny_model()
    model.layers[-1].out_channels = 4  # predict() reads labels and the output scale only
    model.labels = ("a", "b", "c", "d")
    ranked = predict(model, logits, topk=4)
    assert [p.index for p in ranked] == [1, 2, 0, 3]
    assert [p.logit for p in ranked] == [7, 7, 3, -2]


# ---------------------------------------------------- spec: Overflow bound


def test_overflow_bound_examples():
    assert accumulator_bound(ternary_layer(), 3) == [493, 443]
    big = Layer(name="fc", kind="classifier", op="fully_connected", inputs=("pool",), in_channels=70000,
                out_channels=1, out_zero_point=0, weights=np.full((1, 70000), -127, np.int8),
                bias=i32(0), multiplier=i32(M_HALF), shift=i32(0))
    assert accumulator_bound(big, 127) == [2266950000]
    assert 2266950000 > arith.INT32_MAX


def test_overflow_shift_limits():
    assert 493 << 21 == 1033895936 and 493 << 22 == 2067791872 and 493 << 23 == 4135583744
    check_scale_input("ok", 493, 22)
    with pytest.raises(OverflowRiskError):
        check_scale_input("too far", 493, 23)


# ------------------------------------------------------------ format.md


def tiny_model():
    """The example file of docs/format.md: stem 1x1 conv2d 3->4, the ternary example, pool, classifier."""
    stem = Layer(name="stem", kind="stem", op="conv2d", inputs=("input",), in_channels=3, out_channels=4,
                 out_zero_point=3, out_scale=0.05, kernel=1,
                 weights=np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], np.int8).reshape(4, 1, 1, 3),
                 bias=i32(0, 0, 0, 0), multiplier=i32(*[M_HALF] * 4), shift=i32(0, 0, 0, 0))
    pool = Layer(name="pool", kind="pool", op="global_avgpool", inputs=("pw",), in_channels=2, out_channels=2,
                 out_zero_point=2, out_scale=0.1)
    fc = Layer(name="fc", kind="classifier", op="fully_connected", inputs=("pool",), in_channels=2,
               out_channels=2, out_zero_point=0, out_scale=0.25, weights=np.array([[1, 2], [-3, 4]], np.int8),
               bias=i32(0, 7), multiplier=i32(M_HALF, M_HALF), shift=i32(0, 0))
    return Model(name="tiny", input=InputSpec(height=1, width=1), layers=[stem, ternary_layer(), pool, fc],
                 labels=("no", "yes"))


def test_format_packing_example():
    t = np.array([[1, -1, 0, 1], [-1, -1, 1, 0]], np.int8)
    assert arith.pack_ternary(t).tolist() == [0x49, 0x1A]
    assert arith.pack_ternary(np.array([1, -1, 0, 1, -1], np.int8)).tolist() == [0x49, 0x02]
    codes, padding = arith.unpack_ternary_codes(np.array([0x49, 0x02], np.uint8), 5)
    assert codes.tolist() == [1, 2, 0, 1, 2] and padding.tolist() == [0, 0, 0]
    assert arith.codes_to_ternary(codes).tolist() == [1, -1, 0, 1, -1]


def test_format_example_file(tmp_path):
    path = tmp_path / "tiny.npz"
    save(tiny_model(), path)
    with zipfile.ZipFile(path) as archive:
        names = [i.filename for i in archive.infolist()]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in archive.infolist())
        member = archive.read("pw/weights.npy")
        meta_member = archive.read("meta.npy")
    assert len(member) == 130
    assert meta_member[10:128].startswith(b"{'descr': '|u1', 'fortran_order': False, 'shape': (1825,), }")
    assert names == ["meta.npy", "stem/weights.npy", "stem/bias.npy", "stem/multiplier.npy", "stem/shift.npy",
                     "pw/weights.npy", "pw/bias.npy", "pw/multiplier.npy", "pw/shift.npy",
                     "fc/weights.npy", "fc/bias.npy", "fc/multiplier.npy", "fc/shift.npy"]
    # npy v1.0: magic, version, little-endian uint16 header length, header, data at byte 128
    assert member[:10] == b"\x93NUMPY\x01\x00\x76\x00"
    assert member[10:128].startswith(b"{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }")
    assert member[127:128] == b"\n" and member[128:] == b"\x49\x1a"
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
        assert npz["stem/bias"].dtype.str == "<i4"
    assert (meta["format"], meta["format_version"], meta["rounding"]) == ("promref", 1, "single")
    assert sorted(meta) == ["arch", "format", "format_version", "input", "labels", "layers", "metadata",
                            "name", "rounding"]
    assert sorted(meta["layers"][1]) == sorted(
        ["name", "kind", "op", "inputs", "in_channels", "out_channels", "kernel", "stride", "padding",
         "out_scale", "out_zero_point", "out_min", "out_max", "weight_zero_point", "left_shift"])
    model = load(path)
    assert model.layer("pw").weights.tolist() == [[1, -1, 0, 1], [-1, -1, 1, 0]]
    # end to end on the reference backend: pixels (130, 125, 128) -> q (2, -3, 0)
    x = np.array([2, -3, 0], np.int8).reshape(1, 1, 1, 3)
    logits, trace = run(model, x, backend="numpy", trace=True)
    assert trace["stem"].ravel().tolist() == [68, 66, 67, 127]
    assert trace["pw"].ravel().tolist() == [16, -5]
    assert trace["pool"].ravel().tolist() == [16, -5]
    assert logits.ravel().tolist() == [0, -31]
    model.rounding = "double"
    assert run(model, x, backend="numpy").ravel().tolist() == [0, -31]


def test_format_rejects_code_3_and_padding(tmp_path):
    path = tmp_path / "tiny.npz"
    save(tiny_model(), path)
    with np.load(path) as npz:
        members = {k: npz[k] for k in npz.files}
    for bad, message in ((np.array([0x49, 0x1B], np.uint8), "0b11.*weight 4"),
                         (np.array([0x49], np.uint8), r"uint8 \[2\]")):
        members["pw/weights"] = bad
        with open(path, "wb") as f:
            np.savez(f, **members)
        with pytest.raises(WeightsFormatError, match=message):
            load(path)
