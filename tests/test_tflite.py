"""TFLite/LiteRT as a peer: promref.interop.import_tflite must reproduce LiteRT's
reference kernels (OpResolverType.BUILTIN_REF) bit for bit at every layer.

* Unit tests of the TFLite Prepare-time arithmetic (SAME padding, multipliers,
  ADD and MEAN parameters, activation clamps) need nothing optional.
* Tiny random MobileNetV2-shaped .tflite files, written here with the
  ``tflite`` package's flatbuffer builders, are compared with LiteRT on random
  images: uint8 and int8 (per-channel) variants, global AVERAGE_POOL_2D and
  MEAN.  They need ``tflite`` and ``ai-edge-litert``.
* The two real models of ../shared/data/models on the sample images: the first 30
  on the numba backend (``PROMREF_TFLITE_IMAGES``), the first 10 on the
  numpy reference backend (``PROMREF_TFLITE_REF_IMAGES``); benchmarks/
  tflite_agreement.py runs all 100 (comparing every layer takes about 0.4 s an
  image, so all 100 in CI would cost a minute).  They need the packages and the data.
"""
import math
import os
import struct

import numpy as np
import pytest

from promref.interop.tflite.writer import FlatbufferGraph  # noqa: E402
from promref.interop.tflite.prepare import (TfliteImportError, activation_range, add_parameters,
                                            conv_multipliers, mean_parameters, quantize_multiplier,
                                            same_padding)

DATA = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
MODELS = ("mobilenet_v2_1.0_224_quant.tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite")


# ------------------------------------------------------------ unit tests


def f32(x):
    """Round a Python float to float32 (as a Python float)."""
    return struct.unpack("f", struct.pack("f", x))[0]


def tflite_quantize_multiplier(real):
    """Independent transcription of tflite::QuantizeMultiplier."""
    q, shift = math.frexp(real)
    q_fixed = round(q * 2**31) if q * 2**31 % 1 != 0.5 else math.floor(q * 2**31) + 1  # half away (q > 0)
    if q_fixed == 2**31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


@pytest.mark.parametrize("size, kernel, stride, expected", [
    (224, 3, 2, (0, 1, 112)),   # even input, stride 2: the extra row/column goes bottom/right
    (112, 3, 1, (1, 1, 112)),
    (7, 3, 2, (1, 1, 4)),       # odd input, stride 2: symmetric
    (225, 3, 2, (1, 1, 113)),
    (8, 1, 2, (0, 0, 4)),       # 1x1 never pads
    (6, 5, 2, (1, 2, 3)),
    (7, 7, 1, (3, 3, 7)),
])
def test_same_padding(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


@pytest.mark.parametrize("real, expected", [
    (0.5, (1 << 30, 0)), (1.0, (1 << 30, 1)), (0.75, (3 << 29, 0)), (2.0**-40, (0, 0)),
    (1 - 2.0**-40, (1 << 30, 1)),   # the fraction rounds up to 2**31: halve it, shift + 1
])
def test_quantize_multiplier(real, expected):
    assert quantize_multiplier(real) == expected == tflite_quantize_multiplier(real)


def test_conv_multiplier_float32_product():
    """uint8 kernels multiply input and filter scales in float32; int8 kernels in double."""
    s_in, s_w, s_out = f32(0.02352848), f32(0.34369552), f32(0.02352848)
    legacy = tflite_quantize_multiplier(f32(s_in * s_w) / s_out)
    double = tflite_quantize_multiplier(s_in * s_w / s_out)
    assert legacy != double  # this case tells the two apart
    m, s = conv_multipliers(s_in, [s_w], s_out, legacy_float_product=True)
    assert (int(m[0]), int(s[0])) == legacy
    m, s = conv_multipliers(s_in, [s_w, s_w / 2], s_out)
    assert (int(m[0]), int(s[0])) == double and int(s[1]) == double[1] - 1


def test_add_parameters():
    left, m, s = add_parameters(0.25, 0.25, 0.25)
    assert left == 20
    # each input: 0.25 / 0.5 = 0.5 -> (2**30, 0); output: 0.5 / (2**20 * 0.25) = 2**-19 -> (2**30, -18)
    assert m.tolist() == [1 << 30] * 3 and s.tolist() == [0, 0, -18]
    left, m, s = add_parameters(0.1, 0.3, 0.2)
    twice = 2 * f32(0.3)
    expected = [tflite_quantize_multiplier(r) for r in (f32(0.1) / twice, f32(0.3) / twice,
                                                          twice / (2**20 * f32(0.2)))]
    assert list(zip(m.tolist(), s.tolist())) == expected


@pytest.mark.parametrize("activation, scale, zp, qmin, qmax, expected", [
    ("NONE", 0.1, 3, -128, 127, (-128, 127)),
    ("RELU6", 6 / 255, 0, 0, 255, (0, 255)),
    ("RELU6", 0.1, -128, -128, 127, (-128, -68)),
    ("RELU6", 12.0, 0, 0, 255, (0, 1)),         # 6 / 12 = 0.5 rounds away from zero
    ("RELU", 0.1, -20, -128, 127, (-20, 127)),
    ("RELU_N1_TO_1", 0.25, 0, -128, 127, (-4, 4)),
])
def test_activation_range(activation, scale, zp, qmin, qmax, expected):
    assert activation_range(activation, scale, zp, qmin, qmax) == expected


def test_mean_parameters():
    # s_in / s_out = 1 -> (2**30, 1); n = 49: k = floor(log2 49) = 5; M = 2**35 // 49; shift 1 - 5
    assert mean_parameters(0.5, 0.5, 49) == ((1 << 35) // 49, -4)
    m, s = mean_parameters(0.023529412, 0.019077832, 49)
    assert abs(m * 2.0 ** (s - 31) - f32(0.023529412) / f32(0.019077832) / 49) < 1e-9
    assert mean_parameters(0.5, 0.5, 1) == (1 << 30, 1)


# ------------------------------------------------- tiny .tflite files


TinyTflite = FlatbufferGraph  # the tests' name for the package's writer


def tiny_mobilenet(dtype, pool, seed, size=12, classes=5, classifier="conv"):
    """A random MobileNetV2-shaped quantized graph -> .tflite bytes.

    uint8 input -> [QUANTIZE to int8] -> stem 3x3/2 SAME relu6 -> depthwise 3x3 relu6 -> project
    -> expand relu6 -> depthwise 3x3 relu6 -> project -> ADD -> expand -> depthwise 3x3/2 -> project
    -> last 1x1 relu6 -> AVERAGE_POOL_2D or MEAN -> classifier -> RESHAPE.  dtype 'uint8':
    per-tensor uint8 weights with non-zero zero points; 'int8': per-channel int8 weights.
    classifier: 'conv' (1x1 CONV_2D, as both MobileNetV2 files), 'fc' (FULLY_CONNECTED,
    per-tensor weights) or 'fc_pc' (FULLY_CONNECTED, per-channel int8 weights).  Scales and
    zero points are random but keep values spread out.
    """
    rng = np.random.default_rng(seed)
    g = TinyTflite()
    u8 = dtype == "uint8"
    qmin, qmax = (0, 255) if u8 else (-128, 127)
    act_type = "UINT8" if u8 else "INT8"

    def act(shape, scale, zp=None):
        if zp is None:
            zp = int(rng.integers(qmin + 40, qmax - 40))
        return g.tensor(shape, act_type, np.float32(scale), zp), np.float32(scale), zp

    def relu_act(shape):
        # relu6 outputs: zero point near the bottom, 6 / scale sometimes below the type's range
        scale = np.float32(6.0 / rng.uniform(150, 320))
        return act(shape, scale, qmin + int(rng.integers(0, 20)))

    in_scale = np.float32(rng.uniform(0.005, 0.02))
    in_zp_u8 = int(rng.integers(100, 156))
    x = g.tensor([1, size, size, 3], "UINT8", in_scale, in_zp_u8, name="input")
    graph_input = x
    if not u8:
        q = g.tensor([1, size, size, 3], "INT8", in_scale, in_zp_u8 - 128)
        g.op("QUANTIZE", [x], [q])
        x = q
    cur = (x, in_scale, size, 3)

    def weighted(kind, cout, kernel=1, stride=1, relu=False, out_scale_gain=1.0):
        nonlocal cur
        src, s_in, hw, cin = cur
        depthwise = kind == "dw"
        fan_in = kernel * kernel * (1 if depthwise else cin)
        if depthwise:
            cout = cin
            wshape = [1, kernel, kernel, cin]
        else:
            wshape = [cout, kernel, kernel, cin]
        if u8:
            zw = int(rng.integers(90, 166))
            w = rng.integers(0, 256, wshape).astype(np.uint8)
            w_scales = np.float32(rng.uniform(0.002, 0.05))
            wt = g.tensor(wshape, "UINT8", w_scales, zw, data=w)
            w_scales = np.full(cout, w_scales, np.float32)
        else:
            w = rng.integers(-127, 128, wshape).astype(np.int8)
            w_scales = rng.uniform(0.002, 0.05, cout).astype(np.float32)
            wt = g.tensor(wshape, "INT8", w_scales, np.zeros(cout, np.int64), qdim=3 if depthwise else 0, data=w)
        bias_scales = (s_in * w_scales).astype(np.float32)
        bias = rng.integers(-3000, 3000, cout).astype(np.int32)
        if u8:  # per-tensor
            bt = g.tensor([cout], "INT32", bias_scales[0], 0, data=bias)
        else:
            bt = g.tensor([cout], "INT32", bias_scales, np.zeros(cout, np.int64), data=bias)
        # output scale: accumulator std ~ sqrt(fan_in) * 60 * 70 -> about 40 output steps
        out_hw = -(-hw // stride)
        real_gain = float(np.mean(s_in * w_scales)) * math.sqrt(fan_in) * 60 * 70 / 40 * out_scale_gain
        if relu:
            out, s_out, zp = relu_act([1, out_hw, out_hw, cout])
        else:
            out, s_out, zp = act([1, out_hw, out_hw, cout], real_gain * rng.uniform(0.7, 1.4))
        options = "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions"
        fields = dict(Padding=0, StrideW=stride, StrideH=stride, FusedActivationFunction=3 if relu else 0,
                      DilationWFactor=1, DilationHFactor=1)
        if depthwise:
            fields["DepthMultiplier"] = 1
        g.op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [src, wt, bt], [out], options, **fields)
        cur = (out, s_out, out_hw, cout)
        return cur

    def add(a, b):
        nonlocal cur
        s_out = np.float32(max(a[1], b[1]) * rng.uniform(1.0, 1.8))
        out, s_out, zp = act([1, a[2], a[2], a[3]], s_out)
        g.op("ADD", [a[0], b[0]], [out], "AddOptions", FusedActivationFunction=0)
        cur = (out, s_out, a[2], a[3])

    weighted("conv", 8, kernel=3, stride=2, relu=True)                 # stem: 12 -> 6, pads (0, 1)
    weighted("dw", 0, kernel=3, relu=True)                             # block 1 (t = 1)
    block_in = weighted("conv", 8)
    weighted("conv", 24, relu=True)                                    # block 2, residual
    weighted("dw", 0, kernel=3, relu=True)
    project = weighted("conv", 8)
    add(block_in, project)
    weighted("conv", 24, relu=True)                                    # block 3, stride 2: 6 -> 3
    weighted("dw", 0, kernel=3, stride=2, relu=True)
    weighted("conv", 12)
    src, s_in, hw, c = weighted("conv", 16, relu=True)                 # last conv
    if pool == "avgpool":
        out, s_out, zp = g.tensor([1, 1, 1, c], act_type, s_in, g.tensors[src]["zero_point"]), s_in, None
        g.op("AVERAGE_POOL_2D", [src], [out], "Pool2DOptions", Padding=1, StrideW=1, StrideH=1,
             FilterWidth=hw, FilterHeight=hw, FusedActivationFunction=0)
    else:
        axis = g.tensor([2], "INT32", data=np.array([1, 2], np.int32))
        out, s_out, zp = act([1, 1, 1, c], s_in * rng.uniform(0.5, 1.5))
        g.op("MEAN", [src, axis], [out], "ReducerOptions", KeepDims=True)
    cur = (out, s_out, 1, c)
    if classifier == "conv":
        src, _, _, _ = weighted("conv", classes)
    else:
        if u8:
            zw = int(rng.integers(90, 166))
            wt = g.tensor([classes, c], "UINT8", np.float32(rng.uniform(0.002, 0.05)), zw,
                          data=rng.integers(0, 256, (classes, c)).astype(np.uint8))
        elif classifier == "fc":
            wt = g.tensor([classes, c], "INT8", np.float32(rng.uniform(0.002, 0.05)), 0,
                          data=rng.integers(-127, 128, (classes, c)).astype(np.int8))
        else:
            wt = g.tensor([classes, c], "INT8", rng.uniform(0.002, 0.05, classes).astype(np.float32),
                          np.zeros(classes, np.int64), data=rng.integers(-127, 128, (classes, c)).astype(np.int8))
        w_scales = np.atleast_1d(g.tensors[wt]["scale"])
        bias_scale = (s_out * w_scales).astype(np.float32)
        bt = g.tensor([classes], "INT32", bias_scale if bias_scale.size > 1 else bias_scale[0],
                      np.zeros(bias_scale.size, np.int64) if bias_scale.size > 1 else 0,
                      data=rng.integers(-3000, 3000, classes).astype(np.int32))
        src, _, _ = act([1, classes], float(s_out * w_scales.mean()) * math.sqrt(c) * 60 * 70 / 40)
        g.op("FULLY_CONNECTED", [out, wt, bt], [src], "FullyConnectedOptions", FusedActivationFunction=0,
             KeepNumDims=False)
    shape_t = g.tensor([2], "INT32", data=np.array([1, classes], np.int32))
    logits = g.tensor([1, classes], act_type, g.tensors[src]["scale"], g.tensors[src]["zero_point"])
    g.op("RESHAPE", [src, shape_t], [logits])
    return g.build([graph_input], [logits])


@pytest.fixture(scope="module")
def litert():
    pytest.importorskip("tflite", reason="needs the 'tflite' package (pip install tflite)")
    return pytest.importorskip("ai_edge_litert.interpreter",
                               reason="needs LiteRT (pip install ai-edge-litert)")


@pytest.fixture(params=["numpy", "numba"])
def backend(request):
    """promref backend under test: numpy (the reference) always, numba when it is available."""
    from promref.interop.tflite.litert_compare import default_backend

    if request.param == "numba" and default_backend() != "numba":
        pytest.skip("the numba backend (promref.kernels.fast) is not available")
    return request.param


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
@pytest.mark.parametrize("pool", ["avgpool", "mean"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tiny_models_match_litert(litert, backend, tmp_path, dtype, pool, seed):
    from promref.interop import import_tflite
    from promref.interop.tflite.litert_compare import compare

    path = tmp_path / f"tiny_{dtype}_{pool}_{seed}.tflite"
    path.write_bytes(tiny_mobilenet(dtype, pool, seed))
    model = import_tflite(path)
    kinds = [layer.kind for layer in model.layers]
    assert kinds[:3] == ["stem", "depthwise", "project"] and kinds[-2:] == ["pool", "classifier"]
    assert kinds.count("expand") == 2 and kinds.count("add") == 1 and "last_conv" in kinds
    assert model.layer("stem").padding == (0, 1, 0, 1)
    images = np.random.default_rng(100 + seed).integers(0, 256, (16, 12, 12, 3), dtype=np.uint8)
    # images of one flat colour drive the clamps and the extremes of every layer
    images[:4] = np.array([0, 255, 128, 37], np.uint8)[:, None, None, None]
    result = compare(model, path, images, backend=backend)
    assert result.total_mismatches == 0, result.table()
    assert result.top1_agree == len(images)
    # the random scales must leave the layers non-degenerate (not one constant value)
    _, trace = model.forward((images.astype(np.int16) - 128).astype(np.int8), backend=backend, trace=True)
    assert all(len(np.unique(v)) > 1 for v in trace.values())


def reference_fully_connected(model, layer, pooled):
    """LiteRT's reference FULLY_CONNECTED, transcribed: the accumulator is requantized in double,
    round_half_away((double)acc * ((double)s_in * (double)s_w[c] / (double)s_out)) + zp_out."""
    src = model.layer(layer.inputs[0])
    acc = layer.bias.astype(np.int64) + ((pooled.astype(np.int64) - src.out_zero_point)
                                         @ (layer.weights.astype(np.int64) - layer.weight_zero_point).T)
    scale = np.array([float(np.float32(src.out_scale)) * float(w) / float(np.float32(layer.out_scale))
                      for w in layer.weight_scale])
    product = acc.astype(np.float64) * scale
    rounded = np.where(product >= 0, np.floor(product + 0.5), np.ceil(product - 0.5)).astype(np.int64)
    return np.clip(rounded + layer.out_zero_point, layer.out_min, layer.out_max)


@pytest.mark.parametrize("dtype, classifier", [("uint8", "fc"), ("int8", "fc"), ("int8", "fc_pc")])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tiny_fully_connected_is_a_declared_approximation(litert, tmp_path, dtype, classifier, seed):
    """FULLY_CONNECTED: LiteRT's reference kernel requantizes in floating point.  The importer
    marks the layer inexact; every other layer stays exact, the classifier is off by at most 1,
    and the floating-point formula above (what a core op would need) reproduces LiteRT exactly."""
    from promref.interop import import_tflite
    from promref.interop.tflite.litert_compare import compare, litert_interpreter

    path = tmp_path / f"fc_{dtype}_{classifier}_{seed}.tflite"
    path.write_bytes(tiny_mobilenet(dtype, "mean", seed, classifier=classifier))
    model = import_tflite(path)
    assert model.metadata["tflite"]["inexact"] == ["classifier"]
    images = np.random.default_rng(200 + seed).integers(0, 256, (128, 12, 12, 3), dtype=np.uint8)
    result = compare(model, path, images, backend="numpy")
    assert result.exact_mismatches == 0, result.table()
    assert all(s.max_abs_diff <= 1 for s in result.layers), result.table()

    x = (images.astype(np.int16) - 128).astype(np.int8)
    _, trace = model.forward(x, backend="numpy", trace=True)
    fc = model.layers[-1]
    expected = reference_fully_connected(model, fc, trace[fc.inputs[0]])
    interpreter = litert_interpreter(path)
    tensor = model.metadata["tflite"]["tensors"][fc.name]
    for n in range(len(images)):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images[n:n + 1])
        interpreter.invoke()
        got = interpreter.get_tensor(tensor).astype(np.int64).ravel() - (128 if dtype == "uint8" else 0)
        np.testing.assert_array_equal(got, expected[n])


def test_tiny_uint8_even_average_pool_is_refused(litert, tmp_path):
    from promref.interop import import_tflite

    path = tmp_path / "even.tflite"
    path.write_bytes(tiny_mobilenet("uint8", "avgpool", 0, size=16))  # last map 4x4: an even count
    with pytest.raises(TfliteImportError, match="even count"):
        import_tflite(path)


def test_tiny_int8_even_average_pool_matches(litert, tmp_path):
    """int8 AVERAGE_POOL rounds half away from zero, like promref: even counts are fine."""
    from promref.interop import import_tflite
    from promref.interop.tflite.litert_compare import compare

    path = tmp_path / "even8.tflite"
    path.write_bytes(tiny_mobilenet("int8", "avgpool", 3, size=16))  # last map 4x4
    model = import_tflite(path)
    images = np.random.default_rng(7).integers(0, 256, (32, 16, 16, 3), dtype=np.uint8)
    result = compare(model, path, images, backend="numpy")
    assert result.total_mismatches == 0, result.table()


def test_rescaling_quantize_is_refused(litert, tmp_path):
    from promref.interop import import_tflite

    g = TinyTflite()
    x = g.tensor([1, 4, 4, 3], "UINT8", np.float32(0.01), 120)
    y = g.tensor([1, 4, 4, 3], "INT8", np.float32(0.02), 0)
    g.op("QUANTIZE", [x], [y])
    path = tmp_path / "rq.tflite"
    path.write_bytes(g.build([x], [y]))
    with pytest.raises(TfliteImportError, match="requantize"):
        import_tflite(path)


# ------------------------------------------------ the real models, 30 + 10 images


def _image_count(backend):
    """Images compared per model: 30 on the fast backend, 10 on the slow reference one (CI's time)."""
    name = "PROMREF_TFLITE_IMAGES" if backend == "numba" else "PROMREF_TFLITE_REF_IMAGES"
    return int(os.environ.get(name, 30 if backend == "numba" else 10))


@pytest.fixture(scope="module")
def sample_images(litert):
    from promref.interop.tflite.litert_compare import load_sample_images

    if not os.path.isdir(os.path.join(DATA, "models")) or not os.path.isdir(os.path.join(DATA, "imagenet-samples")):
        pytest.skip(f"needs the shared data in {DATA} (models/ and imagenet-samples/)")
    _, images = load_sample_images(os.path.join(DATA, "imagenet-samples"))
    return images


@pytest.mark.parametrize("filename", MODELS)
def test_real_model_matches_litert_at_every_layer(sample_images, backend, filename):
    from promref.interop import import_tflite
    from promref.interop.tflite.litert_compare import compare

    images = sample_images[:_image_count(backend)]
    path = os.path.join(DATA, "models", filename)
    model = import_tflite(path, labels=os.path.join(DATA, "models", "imagenet_labels.txt"))
    assert model.rounding == "double" and len(model.labels) == model.num_classes == 1001
    assert model.layer("stem").padding == (0, 1, 0, 1)
    assert sum(layer.kind == "add" for layer in model.layers) == 10
    assert model.metadata["tflite"]["inexact"] == []
    result = compare(model, path, images, backend=backend)
    print(result.table())
    assert len(result.layers) >= 64
    assert result.total_mismatches == 0, result.table()
    assert result.top1_agree == len(images)


def test_real_models_structure(litert):
    from promref.interop import import_tflite

    path = os.path.join(DATA, "models", MODELS[1])
    if not os.path.exists(path):
        pytest.skip(f"needs {path}")
    model = import_tflite(path)
    meta = model.metadata["tflite"]
    # uint8 input tensor 0 -> QUANTIZE -> int8: the same integers as promref's input
    assert model.input.zero_point == -1 and "input" in meta["aliases"].values()
    # MEAN with a rescale: an all-ones 7x7 depthwise, then a flattening global_avgpool
    mean = model.layer("pool.mean")
    assert mean.op == "depthwise_conv2d" and mean.kernel == 7 and np.all(mean.weights == 1)
    assert model.layer("pool").inputs == ("pool.mean",)
    assert model.layers[-1].op == "fully_connected" and model.layers[-1].kind == "classifier"


# ------------------------------------------- hostile files (issue #15, class 7)


def _import_outcome(path, **kwargs):
    """'ok', or the TfliteImportError message; any other exception fails the test."""
    from promref.interop import import_tflite

    try:
        import_tflite(path, **kwargs)
        return "ok"
    except TfliteImportError as e:
        return str(e)


def test_unreadable_paths_and_foreign_files_give_tflite_import_errors(tmp_path):
    pytest.importorskip("tflite", reason="needs the 'tflite' package (pip install tflite)")
    png = tmp_path / "photo.tflite"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    assert "cannot read" in _import_outcome(tmp_path / "missing.tflite")
    assert "not a regular file" in _import_outcome(tmp_path)
    assert "not a TFLite flatbuffer" in _import_outcome(png)
    assert "not a TFLite flatbuffer" in _import_outcome(empty)
    good = tmp_path / "good.tflite"
    good.write_bytes(tiny_mobilenet("int8", "mean", 0))
    binary_labels = tmp_path / "labels.txt"
    binary_labels.write_bytes(bytes(range(256)) * 4)
    assert "not UTF-8" in _import_outcome(good, labels=binary_labels)
    assert "cannot read" in _import_outcome(good, labels=tmp_path / "nolabels.txt")
    assert "labels" in _import_outcome(good, labels=tmp_path)


def test_truncated_and_flipped_files_give_tflite_import_errors(tmp_path):
    """Every truncation and many single-byte flips of a valid file: a model or a TfliteImportError,
    never struct.error, TypeError, IndexError... (and never a hang: vector lengths are checked)."""
    pytest.importorskip("tflite", reason="needs the 'tflite' package (pip install tflite)")
    data = tiny_mobilenet("int8", "mean", 0)
    path = tmp_path / "m.tflite"
    outcomes = []
    for cut in range(0, len(data), max(1, len(data) // 150)):
        path.write_bytes(data[:cut])
        outcomes.append(_import_outcome(path))
    rng = np.random.default_rng(0)
    for position in rng.choice(len(data), size=200, replace=False):
        for flip in (0xFF, 0x80):
            mutated = bytearray(data)
            mutated[position] ^= flip
            path.write_bytes(bytes(mutated))
            outcomes.append(_import_outcome(path))
    errors = [o for o in outcomes if o != "ok"]
    assert len(errors) > len(outcomes) // 4  # the corruptions are mostly caught, each as TfliteImportError
    assert any("corrupt" in o for o in errors)
