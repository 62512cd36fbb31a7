"""ONNX Runtime as a peer: promref.interop.onnx.

* The exact export (``export_onnx``): ONNX Runtime must reproduce promref's
  NumPy reference backend bit for bit, at the logits and at every layer, for
  random MobileNetV2s (cifar and imagenet, PROM and int8, both rounding
  modes) on random int8 inputs and on real photos, for the two real TFLite
  MobileNetV2s of ../shared/data/models (imported by promref), and for the
  shipped weights/mbv2_prom.npz when it exists.  The integer building blocks
  (requantization in both modes at the extremes of its ranges, the add's
  rescale, the pool's rounding) are also checked one by one, on ONNX Runtime
  and on the ONNX reference evaluator (the specification's own semantics).
* The QOperator export (``export_onnx_qoperator``, QLinearConv & co.): not
  bit exact by design; it must run, give int8 logits, and each op must stay
  within a fraction of an LSB of promref on average when fed promref's own
  inputs.  The measured disagreement is printed (pytest -s) and documented in
  docs/onnx.md.

Needs the optional packages ``onnx`` and ``onnxruntime``; the tests are
skipped without them.  The real-image tests also need ../shared/data.
"""
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the ONNX export tests need 'onnx' (pip install onnx onnxruntime)")
ort = pytest.importorskip("onnxruntime", reason="the ONNX export tests need 'onnxruntime' (pip install onnxruntime)")

from onnx import TensorProto, helper  # noqa: E402

from promref import arith  # noqa: E402
from promref.interop.onnx import ops  # noqa: E402
from promref.interop.onnx.export import (OnnxExportError, build_onnx, build_onnx_qoperator, compare,  # noqa: E402
                                         export_onnx, export_onnx_qoperator, main, ort_session, run_onnx)
from promref.kernels import reference as ref  # noqa: E402
from promref.preprocess import preprocess  # noqa: E402
from promref.synthetic import random_model  # noqa: E402
from promref.validate import validate  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
SAMPLES = os.path.join(DATA, "imagenet-samples")
DEMO = os.path.join(DATA, "demo")
SHIPPED = os.path.join(ROOT, "weights", "mbv2_prom.npz")
TFLITE_MODELS = ("mobilenet_v2_1.0_224_quant.tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite")


# ------------------------------------------------------------------ helpers


def _graph(b, inputs, outputs, opset=17):
    graph = helper.make_graph(b.nodes, "t", inputs, outputs, initializer=b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _run_both(model, feeds):
    """Outputs of ONNX Runtime and of the ONNX reference evaluator (which must agree)."""
    from onnx.reference import ReferenceEvaluator

    ours = ort_session(model).run(None, feeds)
    spec = ReferenceEvaluator(model).run(None, feeds)
    for a, b in zip(ours, spec):
        np.testing.assert_array_equal(a, b)
    return ours


def _assert_exact(model, x, optimization="all", unsigned_products=True):
    """Every layer and the logits of the exact export equal promref's NumPy backend."""
    session = ort_session(build_onnx(model, every_layer=True, unsigned_products=unsigned_products),
                          optimization=optimization)
    result = compare(model, session, x, backend="numpy")
    assert [d.name for d in result.tensors] == [layer.name for layer in model.layers] + ["logits"]
    assert result.mismatches == 0, result.table()
    assert result.top1_agree == result.images == len(x)
    return result


def _random_images(size, count, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(count, size, size, 3)).astype(np.int8)
    x[0] = -128  # an all-black and an all-white image drive clamps and saturations
    x[1] = 127
    return x


def _photos(model, directory, limit):
    """Real photos preprocessed by promref for this model's input spec -> int8 [N, H, W, 3]."""
    if not os.path.isdir(directory):
        pytest.skip(f"{directory} is not there (../shared/data)")
    names = sorted(n for n in os.listdir(directory) if n.lower().endswith((".jpeg", ".jpg", ".png")))[:limit]
    spec = model.input
    return np.stack([preprocess(os.path.join(directory, n), height=spec.height, width=spec.width,
                                resize=spec.resize, resample=spec.resample) for n in names])


# ------------------------------------------- integer blocks, one by one


def _scale_graph(multiplier, shift, rounding, x_factor=1, bias=0, add_after=0):
    b = ops.GraphBuilder()
    b.reserve("x")
    y = ops.scale(b, "x", "s", multiplier, shift, rounding, x_factor=x_factor, bias=bias, add_after=add_after)
    b.op("Identity", [y], "y", name="y")
    return _graph(b, [helper.make_tensor_value_info("x", TensorProto.INT64, ["rows", "channels"])],
                  [helper.make_tensor_value_info("y", TensorProto.INT64, ["rows", "channels"])])


@pytest.mark.parametrize("rounding", arith.ROUNDING_MODES)
def test_scale_spec_examples(rounding):
    """The requantization table of docs/spec.md, and the realistic multiplier example."""
    m = np.array([1 << 30] * 8 + [1690499128, 1690499128], np.int64)
    s = np.array([0, 0, -1, -1, -1, -1, -1, -1, -6, -6], np.int64)
    acc = np.array([[3, -3, 6, -6, 5, -5, 7, -7, 12345, -12345]], np.int64)
    (y,) = _run_both(_scale_graph(m, s, rounding), {"x": acc})
    single = [2, -1, 2, -1, 1, -1, 2, -2, 152, -152]
    double = [2, -1, 2, -2, 2, -1, 2, -2, 152, -152]
    assert y.tolist() == [single if rounding == "single" else double]
    np.testing.assert_array_equal(y, arith.scale_by_mode(acc, m, s, rounding))


def _extreme_channels(rng):
    """Per-channel (M, shift) over the whole legal range, with accumulators at the edges of
    what the loader allows (|acc| * 2**max(shift, 0) <= 2**31 - 1)."""
    shifts = np.repeat(np.arange(arith.SHIFT_MIN, arith.SHIFT_MAX + 1), 6)
    m = np.tile(np.array([0, 1, 1 << 30, (1 << 31) - 1, 1 << 29, 0], np.int64), len(shifts) // 6)
    m[5::6] = rng.integers(1 << 30, 1 << 31, size=len(shifts) // 6)
    bound = ((1 << 31) - 1) >> np.maximum(shifts, 0)
    rows = [bound, -bound, np.zeros_like(bound), np.ones_like(bound), -np.ones_like(bound),
            bound - 1, -bound + 1]
    for _ in range(40):
        rows.append(rng.integers(-bound, bound + 1))
    for _ in range(20):
        rows.append(rng.integers(-1000, 1001, size=bound.shape).clip(-bound, bound))
    # exact ties for the M = 2**30 channels (times 2**(shift - 1)): acc = (2k + 1) * 2**-shift; in
    # "double" these are ties of RoundingDivideByPOT after an exact SRDHM
    for k in range(-3, 3):
        rows.append(np.clip((2 * k + 1) * (1 << np.clip(-shifts, 0, 31)), -bound, bound))
    return m, shifts.astype(np.int64), np.stack(rows).astype(np.int64)


@pytest.mark.parametrize("rounding", arith.ROUNDING_MODES)
def test_scale_extremes(rounding):
    """Every shift in [-31, 30], multipliers 0, 1, 2**29, 2**30, 2**31 - 1 and random, accumulators
    at +-the largest magnitude the overflow proof admits: equal to promref.arith, in ONNX Runtime
    and in the ONNX reference evaluator."""
    m, s, acc = _extreme_channels(np.random.default_rng(0))
    (y,) = _run_both(_scale_graph(m, s, rounding), {"x": acc})
    np.testing.assert_array_equal(y, arith.scale_by_mode(acc, m, s, rounding))


@pytest.mark.parametrize("rounding", arith.ROUNDING_MODES)
def test_scale_with_bias_and_zero_point(rounding):
    """bias folded into the offset and the output zero point into the final subtraction."""
    rng = np.random.default_rng(1)
    m, s, acc = _extreme_channels(rng)
    bound = ((1 << 31) - 1) >> np.maximum(s, 0)
    bias = rng.integers(-bound // 2, bound // 2 + 1)
    acc = np.clip(acc, -(bound - np.abs(bias)), bound - np.abs(bias))  # |acc + bias| within the bound
    (y,) = _run_both(_scale_graph(m, s, rounding, bias=bias, add_after=-7), {"x": acc})
    np.testing.assert_array_equal(y, arith.scale_by_mode(acc + bias, m, s, rounding) - 7)


@pytest.mark.parametrize("rounding", arith.ROUNDING_MODES)
@pytest.mark.parametrize("left_shift", [0, 20, 23])
@pytest.mark.parametrize("zero_point", [-128, -5, 0, 127])
def test_add_rescale(rounding, left_shift, zero_point):
    """scale((a - z) << L, M, shift) for every int8 a, as the add layer computes it."""
    x_max = max(abs(-128 - zero_point), abs(127 - zero_point))
    room = (((1 << 31) - 1) // (x_max << left_shift)).bit_length() - 1  # largest legal positive shift
    a = np.arange(-128, 128, dtype=np.int64)[:, None]
    for m, shift in [(1 << 30, 0), ((1 << 31) - 1, -31), (1431655765, -1), (1789569707, -19),
                     ((1 << 31) - 1, min(room, 30)), (1 << 30, -20)]:
        (y,) = _run_both(_scale_graph(np.array([m]), np.array([shift]), rounding, x_factor=1 << left_shift,
                                      bias=np.array([-zero_point << left_shift])), {"x": a})
        np.testing.assert_array_equal(y, arith.scale_by_mode((a - zero_point) << left_shift, m, shift, rounding))


@pytest.mark.parametrize("height, width", [(1, 1), (2, 2), (4, 4), (7, 7), (3, 5)])
def test_global_average(height, width):
    """The pool's rounding (half away from zero) on random maps, extremes and exact ties."""
    rng = np.random.default_rng(height * 10 + width)
    x = rng.integers(-128, 128, size=(40, height, width, 6)).astype(np.int8)
    x[0], x[1] = -128, 127
    x[2, ..., 0] = np.resize(np.array([1, 2, 3, 4], np.int8), (height, width))  # ties for K = 4
    x[2, ..., 1] = -x[2, ..., 0]
    b = ops.GraphBuilder()
    b.reserve("x")
    ops.global_average(b, "x", "pool", count=height * width, name="y")
    model = _graph(b, [helper.make_tensor_value_info("x", TensorProto.INT8, list(x.shape))],
                   [helper.make_tensor_value_info("y", TensorProto.INT8, [x.shape[0], x.shape[3]])])
    (y,) = _run_both(model, {"x": x})
    np.testing.assert_array_equal(y, ref.global_avgpool(x, None, 0, "single"))


def test_exact_graph_is_integer_only(model):
    """No float tensor, no float op: the exact export is integer arithmetic through and through."""
    proto = build_onnx(model, every_layer=True)
    integer = {TensorProto.INT8, TensorProto.UINT8, TensorProto.INT32, TensorProto.INT64, TensorProto.UINT64}
    assert all(t.data_type in integer for t in proto.graph.initializer)
    for node in proto.graph.node:
        for attr in node.attribute:
            if attr.name == "to":
                assert attr.i in integer | {TensorProto.BOOL}, node
    inferred = onnx.shape_inference.infer_shapes(proto)
    for value in list(inferred.graph.value_info) + list(inferred.graph.output):
        assert value.type.tensor_type.elem_type in integer | {TensorProto.BOOL}, value.name
    assert {n.op_type for n in proto.graph.node} <= {
        "MatMulInteger", "ConvInteger", "Transpose", "Cast", "Add", "Sub", "Mul", "BitShift", "Less", "Where",
        "Max", "Min", "ReduceSum", "Abs", "Div", "Neg", "Identity"}


# ------------------------------------------------ whole models, exact


CONFIGS = [("cifar", "prom", "single"), ("cifar", "int8", "single"), ("cifar", "prom", "double"),
           ("cifar", "int8", "double"), ("imagenet", "prom", "single"), ("imagenet", "prom", "double"),
           ("imagenet", "int8", "single")]


@pytest.fixture(scope="module")
def random_models():
    cache = {}

    def get(config, scheme, rounding):
        key = (config, scheme, rounding)
        if key not in cache:
            cache[key] = random_model(config, 0.35, scheme, seed=3, rounding=rounding)
        return cache[key]
    return get


@pytest.mark.parametrize("config, scheme, rounding", CONFIGS)
def test_exact_random_inputs(random_models, config, scheme, rounding):
    model = random_models(config, scheme, rounding)
    _assert_exact(model, _random_images(model.input.height, 6 if config == "cifar" else 3, seed=7))


@pytest.mark.parametrize("config, scheme, rounding", CONFIGS)
def test_exact_real_images(random_models, config, scheme, rounding):
    """Photos preprocessed by promref: the demo photos at 32x32, ImageNet samples at 224x224."""
    model = random_models(config, scheme, rounding)
    x = _photos(model, DEMO, 4) if config == "cifar" else _photos(model, SAMPLES, 4)
    _assert_exact(model, x)


@pytest.mark.parametrize("rounding", arith.ROUNDING_MODES)
def test_exact_without_graph_optimizations(random_models, rounding):
    """Exactness is a property of the graph, not of ONNX Runtime's rewrites of it."""
    model = random_models("cifar", "int8", rounding)
    _assert_exact(model, _random_images(32, 4, seed=8), optimization="disable")


@pytest.mark.parametrize("scheme", ["prom", "int8"])
def test_exact_with_int8_operands(random_models, scheme):
    """The int8 x int8 form of the products (unsigned_products=False) is the same graph under ONNX
    semantics; on this CPU ONNX Runtime computes it exactly too (see docs/onnx.md on other CPUs)."""
    model = random_models("imagenet" if scheme == "prom" else "cifar", scheme, "single")
    _assert_exact(model, _random_images(model.input.height, 3, seed=10), unsigned_products=False)


@pytest.mark.parametrize("rounding", arith.ROUNDING_MODES)
def test_exact_under_onnx_reference_semantics(rounding):
    """The ONNX reference evaluator (the specification's semantics) gives promref's numbers too."""
    from onnx.reference import ReferenceEvaluator

    model = random_model("cifar", 0.1, "prom" if rounding == "single" else "int8", seed=5, rounding=rounding)
    proto = build_onnx(model, every_layer=True, unsigned_products=rounding == "single")
    x = _random_images(32, 2, seed=9)
    outputs = dict(zip([o.name for o in proto.graph.output], ReferenceEvaluator(proto).run(None, {"input": x})))
    logits, trace = model.forward(x, backend="numpy", trace=True)
    np.testing.assert_array_equal(outputs["logits"], logits)
    for name, value in trace.items():
        np.testing.assert_array_equal(outputs[name], value, err_msg=name)


def test_exact_batch_sizes_and_file(random_models, tmp_path):
    """A saved file loads and runs with any batch size; the graph's I/O is as documented."""
    model = random_models("cifar", "prom", "single")
    path = tmp_path / "model.onnx"
    export_onnx(model, path)
    proto = onnx.load(path)
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    session = ort_session(path, threads=1)
    for n in (1, 5):
        x = _random_images(32, max(n, 2), seed=n)[:n]
        logits, outputs = run_onnx(session, x)
        assert logits.dtype == np.int8 and logits.shape == (n, 10)
        np.testing.assert_array_equal(logits, model.forward(x, backend="numpy"))


def test_exact_hand_built_model(tiny):
    """Non-zero weight zero points, a 2x2 map, the tiny hand-built graph of the conftest."""
    model = tiny(channels=5)
    model.layers[0].weight_zero_point = 3
    model.layers[-1].weight_zero_point = -2
    validate(model)
    x = np.random.default_rng(0).integers(-128, 128, size=(16, 2, 2, 3)).astype(np.int8)
    _assert_exact(model, x)


@pytest.mark.parametrize("filename", TFLITE_MODELS)
def test_exact_real_tflite_models(filename):
    """The real MobileNetV2 1.0 TFLite models as promref imports them (rounding 'double', uint8
    zero points, a 7x7 MEAN as depthwise + pool): bit exact on ImageNet samples at every layer."""
    pytest.importorskip("tflite", reason="needs the 'tflite' package to import the TFLite models")
    from promref.interop.tflite import import_tflite

    path = os.path.join(DATA, "models", filename)
    if not os.path.exists(path):
        pytest.skip(f"{path} is not there (../shared/data)")
    model = import_tflite(path)
    x = np.concatenate([_photos(model, SAMPLES, 3), _random_images(224, 2, seed=11)])
    _assert_exact(model, x)


def test_exact_shipped_weights():
    """The trained weights/mbv2_prom.npz, when the repository ships it."""
    if not os.path.exists(SHIPPED):
        pytest.skip("weights/mbv2_prom.npz is not shipped yet")
    from promref.format import load

    model = load(SHIPPED)
    x = np.concatenate([_photos(model, DEMO, 4), _random_images(model.input.height, 4, seed=12)])
    _assert_exact(model, x)


# ------------------------------------------------------- QOperator export


def test_qoperator_graph_and_output(random_models, tmp_path):
    model = random_models("cifar", "prom", "single")
    path = tmp_path / "qop.onnx"
    proto = export_onnx_qoperator(model, path)
    kinds = {n.op_type for n in proto.graph.node}
    assert {"QLinearConv", "QLinearAdd", "QLinearGlobalAveragePool", "QGemm"} <= kinds
    assert not kinds & {"ConvInteger", "MatMulInteger", "BitShift"}
    convs = [n for n in proto.graph.node if n.op_type == "QLinearConv"]
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    ternary = [weights[n.input[3]] for n in convs if weights[n.input[3]].shape[2:] == (1, 1)]
    assert ternary and all(set(np.unique(w)) <= {-1, 0, 1} and w.dtype == np.int8 for w in ternary)
    assert all(weights[n.input[4]].shape == (weights[n.input[3]].shape[0],) for n in convs)  # per channel
    x = _random_images(32, 4, seed=13)
    logits, _ = run_onnx(ort_session(path, threads=1), x)
    assert logits.dtype == np.int8 and logits.shape == (4, 10)


QOP_CASES = [("cifar", "prom", "single"), ("cifar", "int8", "double"), ("imagenet", "prom", "single")]


@pytest.mark.parametrize("config, scheme, rounding", QOP_CASES)
def test_qoperator_disagreement(random_models, config, scheme, rounding, capsys):
    """Each QOperator op, fed promref's own inputs, stays within a fraction of an LSB of promref on
    average (float requantization, ties to even); end to end the differences accumulate."""
    model = random_models(config, scheme, rounding)
    size = model.input.height
    x = np.concatenate([_random_images(size, 3, seed=14),
                        _photos(model, DEMO, 4) if config == "cifar" else _photos(model, SAMPLES, 3)])
    isolated = compare(model, ort_session(build_onnx_qoperator(model, isolated=True)), x)
    end_to_end = compare(model, ort_session(build_onnx_qoperator(model, every_layer=True)), x)
    with capsys.disabled():
        values = sum(d.elements for d in isolated.tensors)
        worst = max(isolated.tensors, key=lambda d: d.mean_abs_diff)
        print(f"\nQOperator vs promref, {config} {scheme} {rounding}, {len(x)} images; each op on promref's "
              f"inputs: {isolated.mismatches}/{values} values differ, max "
              f"{max(d.max_abs_diff for d in isolated.tensors)} LSB, worst layer {worst.name} "
              f"({worst.mismatches}/{worst.elements}, mean {worst.mean_abs_diff:.4f})")
        logits = end_to_end.tensor("logits")
        print(f"end to end: logits differ in {logits.mismatches}/{logits.elements} values, max "
              f"{logits.max_abs_diff}, mean {logits.mean_abs_diff:.3f} LSB; top-1 agreement "
              f"{end_to_end.top1_agree}/{end_to_end.images}")
    for d in isolated.tensors:
        assert d.mean_abs_diff <= 0.5, isolated.table()
    assert end_to_end.tensor("logits").elements == len(x) * model.num_classes


def test_qoperator_real_tflite_model(capsys):
    """A trained network (the TF2 post-training-quantized MobileNetV2): end to end the logits stay
    close and the top-1 class agrees on nearly every sample."""
    pytest.importorskip("tflite", reason="needs the 'tflite' package to import the TFLite models")
    from promref.interop.tflite import import_tflite

    path = os.path.join(DATA, "models", TFLITE_MODELS[1])
    if not os.path.exists(path):
        pytest.skip(f"{path} is not there (../shared/data)")
    model = import_tflite(path)
    x = _photos(model, SAMPLES, 8)
    result = compare(model, ort_session(build_onnx_qoperator(model)), x, backend="numpy")
    logits = result.tensor("logits")
    with capsys.disabled():
        print(f"\nQOperator vs promref, {os.path.basename(path)}: logits differ in {logits.mismatches}/"
              f"{logits.elements}, max {logits.max_abs_diff}, mean {logits.mean_abs_diff:.3f} LSB; "
              f"top-1 agreement {result.top1_agree}/{result.images}")
    assert logits.mean_abs_diff <= 4
    assert result.top1_agree >= len(x) - 2


def test_qoperator_refuses_weight_zero_point(tiny):
    model = tiny()
    model.layers[0].weight_zero_point = 3
    validate(model)
    with pytest.raises(OnnxExportError, match="weight zero point"):
        build_onnx_qoperator(model)
    build_onnx(model)  # the exact export handles it


def test_command_line(good_file, tmp_path, capsys):
    out = tmp_path / "exact.onnx"
    assert main([str(good_file), str(out), "--every-layer"]) == 0
    assert "bit exact" in capsys.readouterr().out
    names = [o.name for o in onnx.load(out).graph.output]
    assert names[0] == "logits" and len(names) > 1
    out_q = tmp_path / "qop.onnx"
    assert main([str(good_file), str(out_q), "--qoperator"]) == 0
    assert "not bit exact" in capsys.readouterr().out
    session = ort_session(out_q)
    assert session.get_outputs()[0].name == "logits"
