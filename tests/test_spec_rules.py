"""The rules docs/spec.md and docs/format.md decide where an implementer would otherwise
have to guess (each marked **Rule** there, or answered in the text), pinned to the code.

Each test names the document section it checks.  If one fails, either the code changed
a rule (then the documents change too, on purpose) or the documents are wrong.
"""
import io
import json
import pathlib
import re
import struct
import sys
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from promref import arith
from promref.api import predict, softmax
from promref.engine import run
from promref.errors import ShapeError, WeightsFormatError
from promref.format import load, save
from promref.model import InputSpec, Layer, Model
from promref.preprocess import load_image
from promref.validate import validate

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
M_HALF = 1 << 30
INT32 = st.integers(arith.INT32_MIN, arith.INT32_MAX)
BACKENDS = ("numpy", "numba")


def i32(*values):
    return np.array(values, np.int32)


def weighted(rng, name, kind, op, inputs, cin, cout, weight_shape, zero_point=0, **fields):
    """A small weighted layer with random int8 weights and bias (times 1/16)."""
    return Layer(name=name, kind=kind, op=op, inputs=inputs, in_channels=cin, out_channels=cout,
                 out_zero_point=zero_point, weights=rng.integers(-5, 6, weight_shape).astype(np.int8),
                 bias=rng.integers(-50, 50, cout).astype(np.int32), multiplier=np.full(cout, M_HALF, np.int32),
                 shift=np.full(cout, -3, np.int32), **fields)


def stem(rng, cout=4):
    return weighted(rng, "stem", "stem", "conv2d", ("input",), 3, cout, (cout, 3, 3, 3), kernel=3,
                    padding=(1, 1, 1, 1), out_scale=0.5)


def pool(name, source, channels, zero_point, out_scale):
    return Layer(name=name, kind="pool", op="global_avgpool", inputs=(source,), in_channels=channels,
                 out_channels=channels, out_zero_point=zero_point, out_scale=out_scale)


def same_on_both_backends(model, x):
    """Trace on both backends; they must agree on every tensor.  Returns the numpy trace."""
    logits, trace = run(model, x, backend="numpy", trace=True)
    fast_logits, fast_trace = run(model, x, backend="numba", trace=True)
    np.testing.assert_array_equal(fast_logits, logits)
    for name, tensor in trace.items():
        np.testing.assert_array_equal(fast_trace[name], tensor, err_msg=name)
    return logits, trace


# ------------------------------------------------ spec: Requantization, SRDHM


def srdhm_floor(a, b):
    return (a * b + (1 << 30)) >> 31


@settings(max_examples=2000, deadline=None)
@given(INT32, INT32)
def test_srdhm_is_floor_of_product_plus_half(a, b):
    """spec.md, "Rounding mode double": SRDHM(a, b) = floor((a*b + 2**30) / 2**31), except a = b = INT32_MIN."""
    if a == b == arith.INT32_MIN:
        assert arith.saturating_rounding_doubling_high_mul(a, b) == arith.INT32_MAX
        return
    exact = (a * b + (1 << 30)) // (1 << 31)  # Python ints: exact floor division
    assert arith.saturating_rounding_doubling_high_mul(a, b) == exact == srdhm_floor(a, b)


@settings(max_examples=1000, deadline=None)
@given(INT32, st.integers(0, arith.MULTIPLIER_MAX))
def test_srdhm_is_single_rounding_with_shift_0(acc, multiplier):
    """... so with a multiplier M >= 0, SRDHM(acc, M) = scale_single(acc, M, 0)."""
    assert arith.saturating_rounding_doubling_high_mul(acc, multiplier) == arith.scale_single(acc, multiplier, 0)


def test_srdhm_floor_form_at_the_edges_vectorised():
    """The branch-free form on int64 arrays, at the ties and the int32 extremes."""
    edge = np.array([arith.INT32_MIN, arith.INT32_MIN + 1, -(1 << 30), -3, -1, 0, 1, 3, 1 << 30,
                     arith.INT32_MAX], np.int64)
    a, b = np.meshgrid(edge, edge)
    a, b = a.ravel(), b.ravel()
    keep = ~((a == arith.INT32_MIN) & (b == arith.INT32_MIN))
    a, b = a[keep], b[keep]
    np.testing.assert_array_equal(arith.saturating_rounding_doubling_high_mul(a, b), srdhm_floor(a, b))
    # the examples of spec.md: -1.5 -> -1, -2.5 -> -2, -0.5 -> 0, 1.5 -> 2 (b = 2**30 halves)
    assert [int(srdhm_floor(v, M_HALF)) for v in (-3, -5, -1, 3)] == [-1, -2, 0, 2]


# ------------------------------------------------ spec: Input, which Pillow and which row


def png_bytes(width, height, colour_type, depth, rows):
    """A PNG written by hand (so that 16-bit grey+alpha and RGBA files exist whatever Pillow writes)."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def test_16_bit_grey_wins_over_a_transparency_entry(tmp_path):
    """spec.md, "load_image": rows are tried in order; a tRNS colour key on 16-bit grey is ignored."""
    grey = np.array([[0, 1000, 65535]], np.uint16)
    path = tmp_path / "grey16_trns.png"
    Image.fromarray(grey).save(path, transparency=1000)
    with Image.open(path) as check:
        assert check.mode.startswith("I") and check.info.get("transparency") == 1000
    plain = load_image(grey)  # the 16-bit grey formula, no compositing
    assert plain[0, :, 0].tolist() == [0, 4, 255]
    np.testing.assert_array_equal(load_image(path), plain)  # pixel 1000 stays grey 4, not white


def test_16_bit_alpha_in_files_is_reduced_by_pillow_high_byte(tmp_path):
    """16-bit LA and RGBA PNG files: Pillow's decoder keeps the high byte of colour and alpha."""
    la = png_bytes(2, 1, 4, 16, [struct.pack(">HHHH", 0x1234, 0x80FF, 0xFFFF, 0x00FF)])
    rgba = png_bytes(1, 1, 6, 16, [struct.pack(">HHHH", 0x0000, 0x00FF, 0xFFFF, 0x00FF)])
    (tmp_path / "la16.png").write_bytes(la)
    (tmp_path / "rgba16.png").write_bytes(rgba)
    # grey 0x12 = 18 at alpha 0x80 = 128 over white; alpha 0x00 -> white
    assert load_image(tmp_path / "la16.png").tolist() == [[[136] * 3, [255] * 3]]
    # alpha 0x00FF: high byte 0 (fully transparent), where the 16-bit formula would give 1
    assert load_image(tmp_path / "rgba16.png").tolist() == [[[255, 255, 255]]]


def test_16_bit_alpha_in_arrays_is_scaled_before_compositing():
    """uint16 (H, W, 4): every channel, alpha included, is scaled (v * 255 + 32767) // 65535 first."""
    rgba = np.array([[[0, 0, 0, 255], [65535, 0, 0, 32768], [0, 65535, 0, 65535]]], np.uint16)
    # alpha 255 -> 1, so colour 0 composites to (0 * 1 + 255 * 254 + 127) // 255 = 254;
    # alpha 32768 -> 128: (255 * 128 + 255 * 127 + 127) // 255 = 255 and (0 + 255 * 127 + 127) // 255 = 127
    assert load_image(rgba).tolist() == [[[254, 254, 254], [255, 127, 127], [0, 255, 0]]]
    assert (0 * 1 + 255 * 254 + 127) // 255 == 254 and (255 * 255 + 32767) // 65535 == 1


def test_icc_profiles_are_not_applied(tmp_path):
    """spec.md, "Which Pillow": an embedded ICC profile is ignored; the stored samples are used."""
    pixels = np.array([[[10, 200, 30], [250, 5, 128]]], np.uint8)
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # far from sRGB
    path = tmp_path / "icc.png"
    Image.fromarray(pixels).save(path, icc_profile=profile)
    with Image.open(path) as check:
        assert check.info.get("icc_profile") == profile
    np.testing.assert_array_equal(load_image(path), pixels)


def test_pillow_is_the_documented_dependency():
    """The documents name the Pillow the figures were made with; the package needs >= 10.1."""
    import PIL
    major, minor = (int(v) for v in PIL.__version__.split(".")[:2])
    assert (major, minor) >= (10, 1)
    assert "Pillow 13.0.0" in (DOCS / "spec.md").read_text(encoding="utf-8")


# ------------------------------------------------ spec: the graph, forward's input size


def tiny_conv_model(rng, height=5, width=6):
    layers = [stem(rng), pool("pool", "stem", 4, 0, 0.5),
              weighted(rng, "fc", "classifier", "fully_connected", ("pool",), 4, 2, (2, 4), out_scale=0.25)]
    return validate(Model("t", InputSpec(height=height, width=width), layers, ("a", "b")))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(1, 6, 6, 3), (1, 5, 7, 3), (1, 6, 5, 3), (0, 5, 6, 3), (1, 5, 6, 1)])
def test_forward_refuses_another_input_size(backend, shape):
    """spec.md, "pixels_to_int8": forward accepts exactly [N >= 1, height, width, 3]."""
    model = tiny_conv_model(np.random.default_rng(0))
    with pytest.raises(ShapeError, match=r"\[N >= 1, 5, 6, 3\]"):
        model.forward(np.zeros(shape, np.int8), backend=backend)


def test_forward_at_another_size_after_revalidation():
    """... and runs at another size once the input record says so and the model is validated again."""
    rng = np.random.default_rng(1)
    model = tiny_conv_model(rng)
    model.input.height, model.input.width = 7, 3
    validate(model)
    logits, _ = same_on_both_backends(model, rng.integers(-128, 128, (2, 7, 3, 3)).astype(np.int8))
    assert logits.shape == (2, 2)


def test_input_zero_point_is_subtracted_in_every_tap():
    """format.md, "input": zero_point is not only the padding value; an unpadded 1x1 stem sees x - zx."""
    rng = np.random.default_rng(2)
    layer = weighted(rng, "stem", "stem", "conv2d", ("input",), 3, 2, (2, 1, 1, 3), out_scale=0.5)
    layers = [layer, pool("pool", "stem", 2, 0, 0.5),
              weighted(rng, "fc", "classifier", "fully_connected", ("pool",), 2, 2, (2, 2))]
    x = rng.integers(-128, 128, (1, 1, 1, 3)).astype(np.int8)
    outputs = {}
    for zx in (-128, 0, 17):
        model = validate(Model("z", InputSpec(height=1, width=1, zero_point=zx), layers, ("a", "b")))
        _, trace = same_on_both_backends(model, x)
        w = layer.weights.reshape(2, 3).astype(np.int64)
        acc = layer.bias + (x.reshape(3).astype(np.int64) - zx) @ w.T
        expected = arith.requantize(acc, layer.multiplier, layer.shift, 0, -128, 127, "single")
        np.testing.assert_array_equal(trace["stem"].reshape(2), expected)
        outputs[zx] = tuple(trace["stem"].ravel())
    assert len(set(outputs.values())) > 1  # the zero point changed the result without any padding


# ------------------------------------------------ spec: add of vectors


def vector_add_model(rng):
    fa = weighted(rng, "fa", "classifier", "fully_connected", ("pool",), 4, 4, (4, 4), zero_point=1)
    fb = weighted(rng, "fb", "classifier", "fully_connected", ("fa",), 4, 4, (4, 4), zero_point=-2)
    add = Layer(name="add", kind="add", op="add", inputs=("fa", "fb"), in_channels=4, out_channels=4,
                out_zero_point=3, multiplier=i32(M_HALF, 1717986918, 1789569707), shift=i32(0, -1, -19),
                left_shift=20)
    fc = weighted(rng, "fc", "classifier", "fully_connected", ("add",), 4, 2, (2, 4))
    layers = [stem(rng), pool("pool", "stem", 4, 0, 0.5), fa, fb, add, fc]
    return validate(Model("v", InputSpec(height=5, width=6), layers, ("a", "b")))


@pytest.mark.parametrize("rounding", arith.ROUNDING_MODES)
def test_add_of_vectors_is_allowed_and_elementwise(rounding, tmp_path):
    """spec.md, "add": two vectors [N, C] of the same shape are added by the same formula."""
    rng = np.random.default_rng(3)
    model = vector_add_model(rng)
    model.rounding = rounding
    save(model, tmp_path / "v.npz")
    model = load(tmp_path / "v.npz")
    x = rng.integers(-128, 128, (3, 5, 6, 3)).astype(np.int8)
    _, trace = same_on_both_backends(model, x)
    a, b, add = trace["fa"].astype(np.int64), trace["fb"].astype(np.int64), model.layer("add")
    assert trace["add"].shape == (3, 4)
    ra = arith.scale_by_mode((a - 1) << 20, int(add.multiplier[0]), int(add.shift[0]), rounding)
    rb = arith.scale_by_mode((b + 2) << 20, int(add.multiplier[1]), int(add.shift[1]), rounding)
    expected = arith.requantize(ra + rb, int(add.multiplier[2]), int(add.shift[2]), 3, -128, 127, rounding)
    np.testing.assert_array_equal(trace["add"], expected)


def test_add_of_a_vector_and_a_feature_map_is_refused():
    rng = np.random.default_rng(4)
    model = vector_add_model(rng)
    model.layer("add").inputs = ("stem", "fb")
    with pytest.raises(WeightsFormatError, match="add inputs have shapes"):
        validate(model)


# ------------------------------------------------ spec: the last layer; conv2d classifier


def conv_classifier_model(rng):
    cls = weighted(rng, "cls", "classifier", "conv2d", ("stem",), 4, 3, (3, 1, 1, 4), zero_point=2, out_scale=0.25)
    layers = [stem(rng), cls, pool("pool", "cls", 3, 2, 0.25)]
    return Model("c", InputSpec(height=5, width=4), layers, ("a", "b", "c"))


def test_conv2d_classifier_cannot_be_last():
    """format.md, "layers[i]": a conv2d classifier produces a feature map: refused as the last layer."""
    model = conv_classifier_model(np.random.default_rng(5))
    model.layers.pop()  # drop the pool
    with pytest.raises(WeightsFormatError, match="last layer must produce a vector"):
        validate(model)


def test_conv2d_classifier_then_pool_runs():
    """... but a 1x1 conv classifier followed by a global_avgpool is a valid head."""
    rng = np.random.default_rng(6)
    model = validate(conv_classifier_model(rng))
    logits, trace = same_on_both_backends(model, rng.integers(-128, 128, (2, 5, 4, 3)).astype(np.int8))
    assert trace["cls"].shape == (2, 5, 4, 3) and logits.shape == (2, 3)
    np.testing.assert_array_equal(logits, arith.global_average(trace["cls"].astype(np.int64).sum(axis=(1, 2)), 20))


def test_softmax_reads_the_last_layers_scale():
    """spec.md, "Classifier, logits and predictions": the scale is the last layer's, even after another
    layer of kind 'classifier'."""
    rng = np.random.default_rng(7)
    model = vector_add_model(rng)  # fa, fb are kind 'classifier' too, with out_scale 1.0
    model.layer("fc").out_scale, model.layer("fc").out_zero_point = 0.1, -1
    validate(model)
    logits = np.array([3, 7], np.int8)
    ranked = predict(model, logits, topk=2)
    expected = softmax(logits, 0.1, -1)
    assert [p.probability for p in ranked] == [expected[1], expected[0]]
    assert not np.allclose(expected, softmax(logits, 1.0, 1))


# ------------------------------------------------ spec: depthwise kernel sizes


@pytest.mark.parametrize("kernel,stride", [(1, 1), (5, 2), (15, 1), (15, 3)])
def test_depthwise_any_kernel_1_to_15(kernel, stride, tmp_path):
    """spec.md, "depthwise_conv2d": any k in [1, 15] is valid, loads, and runs the same on both backends."""
    rng = np.random.default_rng(kernel * 10 + stride)
    pad = kernel // 2
    dw = weighted(rng, "dw", "depthwise", "depthwise_conv2d", ("stem",), 4, 4, (kernel, kernel, 4), kernel=kernel,
                  stride=stride, padding=(pad, kernel - 1 - pad, pad, kernel - 1 - pad), out_scale=0.5)
    layers = [stem(rng), dw, pool("pool", "dw", 4, 0, 0.5),
              weighted(rng, "fc", "classifier", "fully_connected", ("pool",), 4, 2, (2, 4))]
    model = Model("d", InputSpec(height=9, width=8), layers, ("a", "b"))
    save(model, tmp_path / "d.npz")
    model = load(tmp_path / "d.npz")
    _, trace = same_on_both_backends(model, rng.integers(-128, 128, (2, 9, 8, 3)).astype(np.int8))
    assert trace["dw"].shape == (2, (9 - 1) // stride + 1, (8 - 1) // stride + 1, 4)


def test_depthwise_kernel_16_is_refused():
    rng = np.random.default_rng(8)
    dw = weighted(rng, "dw", "depthwise", "depthwise_conv2d", ("stem",), 4, 4, (16, 16, 4), kernel=16,
                  padding=(8, 7, 8, 7))
    model = Model("d", InputSpec(height=9, width=8), [stem(rng), dw], ("a",))
    with pytest.raises(WeightsFormatError, match=r"kernel: 16 is out of range \[1, 15\]"):
        validate(model)


# ------------------------------------------------ format: unused keys are type-checked, not range-checked


def file_with(tmp_path, change):
    """Save the vector-add model, apply ``change(meta)`` to its JSON and write it back."""
    path = tmp_path / "m.npz"
    save(vector_add_model(np.random.default_rng(9)), path)
    with np.load(path) as npz:
        members = {k: npz[k] for k in npz.files}
    meta = json.loads(members["meta"].tobytes())
    change(meta)
    members["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **members)
    return path


def set_pool(field, value):
    def change(meta):
        meta["layers"][1][field] = value  # the pool: it uses none of these fields
    return change


@pytest.mark.parametrize("field,value", [("kernel", 99), ("stride", 0), ("padding", [5, -1, 7, 100]),
                                         ("weight_zero_point", 1000), ("left_shift", -5)])
def test_unused_keys_accept_any_value_of_their_type(tmp_path, field, value):
    """format.md, "layers[i]": the values of keys an op does not use are not range-checked."""
    model = load(file_with(tmp_path, set_pool(field, value)))
    assert getattr(model.layer("pool"), field) == (tuple(value) if field == "padding" else value)
    save(model, tmp_path / "again.npz")  # and the model saves again


@pytest.mark.parametrize("field,value,message", [
    ("kernel", "x", "expected int"), ("stride", 1.5, "expected int"), ("left_shift", True, "expected int"),
    ("padding", [1.5, "a", 0, 0], "padding: needs 4 values"), ("padding", [0, 0, 0], "padding: needs 4 values"),
    ("weight_zero_point", None, "expected int")])
def test_unused_keys_are_type_checked_in_files(tmp_path, field, value, message):
    """... but their types are, whatever the op."""
    with pytest.raises(WeightsFormatError, match=message):
        load(file_with(tmp_path, set_pool(field, value)))


@pytest.mark.parametrize("field,value", [("kernel", "3"), ("left_shift", 2.0), ("padding", (0, 0, 0, "1")),
                                         ("padding", (0, 0)), ("stride", None)])
def test_unused_keys_are_type_checked_in_memory(field, value):
    """validate() checks the same types on in-memory models, so save() never meets a foreign value."""
    model = vector_add_model(np.random.default_rng(10))
    setattr(model.layer("pool"), field, value)
    with pytest.raises(WeightsFormatError, match=rf"layer 1 \('pool'\)\.{field}"):
        validate(model)


# ------------------------------------------------ format: the example file, printed whole


def example_model():
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from test_spec_examples import tiny_model
    return tiny_model()


def example_section():
    text = (DOCS / "format.md").read_text(encoding="utf-8")
    return text[text.index("## Example file"):text.index("## Reading the file from C")]


def test_format_example_meta_is_printed_whole(tmp_path):
    """format.md, "Example file": the JSON block is the complete meta that save writes."""
    save(example_model(), tmp_path / "tiny.npz")
    with np.load(tmp_path / "tiny.npz") as npz:
        written = json.loads(npz["meta"].tobytes().decode("utf-8"))
    block = re.search(r"```json\n(.*?)```", example_section(), re.S).group(1)
    assert json.loads(block) == written
    assert "..." not in block


def test_format_example_member_table_is_the_data(tmp_path):
    """... and its member table lists every member with its dtype, shape and every value."""
    save(example_model(), tmp_path / "tiny.npz")
    rows = re.findall(r"^\| `([\w/]+)\.npy` \| `'(.*?)'`, `\((.*?)\)` \| `([-\d ]+)`", example_section(), re.M)
    with np.load(tmp_path / "tiny.npz") as npz:
        members = {k: npz[k] for k in npz.files if k != "meta"}
    assert sorted(name for name, *_ in rows) == sorted(members)
    for name, descr, shape, values in rows:
        array = members[name]
        assert array.dtype.str == descr.replace("\\", ""), name
        assert array.shape == tuple(int(v) for v in shape.split(",") if v.strip()), name
        assert array.ravel().tolist() == [int(v) for v in values.split()], name


def test_spec_end_to_end_table_matches_the_example_file():
    """spec.md, "End-to-end example": the records table states the file's integers."""
    text = (DOCS / "spec.md").read_text(encoding="utf-8")
    section = text[text.index("## End-to-end example"):text.index("## Overflow bound")]
    model = example_model()
    stem_, pw, pool_, fc = model.layers
    for layer in (stem_, pw, pool_, fc):
        row = re.search(rf"^\| `{layer.name}` \| (.*)$", section, re.M).group(1)
        assert f"`out_zero_point = {layer.out_zero_point}`" in row, layer.name
        assert f"`out_min = {layer.out_min}`, `out_max = {layer.out_max}`" in row, layer.name
        assert f"{layer.out_scale}" in row, layer.name
    assert "`bias = [100, -50]`" in section and pw.bias.tolist() == [100, -50]
    assert "`bias = [0, 7]`" in section and fc.bias.tolist() == [0, 7]
    assert "`shift = [-3, -3]`" in section and pw.shift.tolist() == [-3, -3]
    assert fc.weights.tolist() == [[1, 2], [-3, 4]] and "`[[1, 2], [-3, 4]]`" in section
    assert model.input.zero_point == -128 and "`zero_point = -128`" in section
