"""Export a promref :class:`Model` to ONNX, and run it with ONNX Runtime.

Two exports, for two purposes (docs/onnx.md has the details):

``export_onnx(model, path, every_layer=False)`` -- **bit exact**
    An integer-only graph that computes exactly what promref computes, in
    either rounding mode.  Accumulation uses ``ConvInteger`` (the stem, any
    k x k conv2d, and the depthwise convolutions with ``group = C``) and
    ``MatMulInteger`` (1x1 stride-1 convolutions, ternary or int8, and the
    classifier), both with the input and weight zero points; the
    requantization is int64 ``Mul``/``Add`` plus a floor division by a power
    of two done as a ``BitShift`` on a non-negative uint64
    (:mod:`promref.interop.onnx.ops`); the clamp is ``Max``/``Min``; the
    residual add follows TFLite's ADD structure in integers; the global
    average pool is an int64 ``ReduceSum`` and a rounding division on
    non-negative values.  Nothing in the graph is floating point.  Input: int8
    ``[N, H, W, 3]`` named ``"input"`` (promref's NHWC ``pixel - 128``);
    output: int8 logits ``[N, classes]`` named ``"logits"``; with
    ``every_layer=True`` also every layer's int8 output, NHWC like promref's,
    named after the layer.

``export_onnx_qoperator(model, path, every_layer=False)`` -- **fast, not exact**
    The conventional ONNX Runtime int8 MobileNetV2 ("QOperator" format,
    per-channel weights): ``QLinearConv`` for every convolution (ternary
    weights as int8 {-1, 0, 1} with their per-channel scale), and the
    ``com.microsoft`` ops ``QLinearAdd``, ``QLinearGlobalAveragePool`` and
    ``QGemm`` (the classifier).  ONNX Runtime requantizes these with float
    scales (and rounds half to even), so the output differs from promref by
    a few LSB here and there; it exists for speed comparisons only.  Float
    scales: each tensor's scale is the file's (informational) ``out_scale``
    (``input.scale`` for the image); each weight channel's scale is chosen so
    that ``s_in * s_w[o] / s_out`` equals promref's integer multiplier
    ``M[o] * 2**(shift[o] - 31)``; biases are promref's int32 biases.

Both need the ``onnx`` package; running them needs ``onnxruntime``
(:func:`ort_session`, :func:`run_onnx`, :func:`compare`).  Neither is
imported by the rest of promref.

Command line: ``python -m promref.interop.onnx WEIGHTS.npz OUT.onnx
[--qoperator] [--every-layer]``.
"""
import argparse
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from ...errors import PromrefError
from ...fileio import output_file
from ...model import tensor_shapes
from ...validate import validate

__all__ = ["OnnxExportError", "OPSET", "MS_OPSET", "build_onnx", "export_onnx", "build_onnx_qoperator",
           "export_onnx_qoperator", "ort_session", "run_onnx", "compare", "TensorDiff", "OnnxAgreement"]

#: the default-domain opset of both exports (ConvInteger/MatMulInteger: 10, BitShift: 11, Where: 16)
OPSET = 17
#: the com.microsoft opset of the QOperator export
MS_OPSET = 1
#: ONNX IR version written (IR 8 goes with opset 17; ONNX Runtime >= 1.12 reads it)
IR_VERSION = 8

#: default operand type of MatMulInteger / ConvInteger in the exact export: uint8 x uint8
#: (values and zero points + 128) rather than int8 x int8.  Both are the same integers under
#: ONNX semantics, but ONNX Runtime's x86 kernels for u8 x s8 products use VPMADDUBSW, whose
#: int16 pair sums can saturate on CPUs without VNNI, and it may route int8 operands to
#: them; its u8 x u8 kernels widen to int16 first and are exact on every CPU (and faster
#: here).  docs/onnx.md, "Why uint8 operands".
UNSIGNED_PRODUCTS = True

NHWC_TO_NCHW = [0, 3, 1, 2]
NCHW_TO_NHWC = [0, 2, 3, 1]


class OnnxExportError(PromrefError):
    """The model uses something an export cannot express."""


def _onnx():
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise OnnxExportError("the ONNX export needs the 'onnx' package (pip install onnx)") from e
    return onnx


def _finish(onnx, builder, model, name, inputs, every_layer, shapes, extra_opsets=()):
    """Wrap nodes, initializers, input and outputs into a checked ModelProto."""
    from onnx import TensorProto, helper

    graph_outputs = [helper.make_tensor_value_info("logits", TensorProto.INT8, ["N", model.num_classes])]
    if every_layer:
        for layer in model.layers:
            graph_outputs.append(helper.make_tensor_value_info(layer.name, TensorProto.INT8,
                                                               ["N", *shapes[layer.name]]))
    graph = helper.make_graph(builder.nodes, name, inputs, graph_outputs, initializer=builder.initializers)
    opsets = [helper.make_opsetid("", OPSET), *extra_opsets]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="promref",
                              doc_string=f"{model.name} (rounding {model.rounding!r})")
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    return proto


def _graph_builder(model):
    """Validate ``model`` -> a GraphBuilder with the model's tensor names (input, logits, layers) reserved.

    Validation first: the exactness argument of both exports rests on the
    loader's overflow proof.
    """
    from . import ops
    validate(model)
    b = ops.GraphBuilder()
    for name in ("input", "logits", *(layer.name for layer in model.layers)):
        b.reserve(name)
    return b


def _input_info(model):
    from onnx import TensorProto, helper

    spec = model.input
    return helper.make_tensor_value_info("input", TensorProto.INT8, ["N", spec.height, spec.width, 3])


# ------------------------------------------------------------ exact export


class _Tensors:
    """Where each promref tensor lives in the graph.

    Every tensor exists as int8 NHWC (named after its layer); NCHW copies
    (for ConvInteger) and uint8 copies ``q + 128`` (for the integer products,
    see :data:`UNSIGNED_PRODUCTS`) are made on demand, once.
    """

    def __init__(self, builder):
        self.b = builder
        self.cache = {("input", False, False): "input"}

    def set(self, name, value, nchw=False):
        self.cache[(name, nchw, False)] = value

    def get(self, name, nchw=False, unsigned=False):
        key = (name, nchw, unsigned)
        if key not in self.cache:
            from onnx import TensorProto

            if unsigned:  # q + 128 in uint8: exact (Cast to int32, Add, Cast to uint8 of a value in [0, 255])
                x = self.b.cast(self.get(name, nchw), TensorProto.INT32, f"{name}.i32")
                x = self.b.op("Add", [x, self.b.const(np.int32(128), np.int32, "u8_offset")], f"{name}.plus128")
                self.cache[key] = self.b.cast(x, TensorProto.UINT8, f"{name}{'.nchw' if nchw else ''}.u8")
            else:
                self.cache[key] = self.b.op("Transpose", [self.get(name)], f"{name}.nchw", perm=NHWC_TO_NCHW)
        return self.cache[key]


def _product_operands(b, t, layer, src, zx, weights, nchw, unsigned):
    """(x, w, x zero point, w zero point) for MatMulInteger / ConvInteger.

    ``unsigned``: every operand is moved to uint8 by adding 128 to values
    *and* zero points, which leaves every ``(x - zx) * (w - zw)`` unchanged.
    """
    name = layer.name
    zw = int(layer.weight_zero_point)
    if unsigned:
        w = (weights.astype(np.int16) + 128).astype(np.uint8)
        return (t.get(src, nchw, unsigned=True), b.const(np.ascontiguousarray(w), np.uint8, f"{name}.weights"),
                b.const(np.uint8(zx + 128), np.uint8, f"{name}.x_zero_point"),
                b.const(np.uint8(zw + 128), np.uint8, f"{name}.w_zero_point"))
    return (t.get(src, nchw), b.const(np.ascontiguousarray(weights), np.int8, f"{name}.weights"),
            b.const(np.int8(zx), np.int8, f"{name}.x_zero_point"),
            b.const(np.int8(zw), np.int8, f"{name}.w_zero_point"))


def _is_matrix_product(layer):
    """The classifier, and 1x1 stride-1 unpadded convolutions: products on the channel axis."""
    return (layer.op in ("fully_connected", "pointwise_ternary")
            or (layer.op == "conv2d" and layer.kernel == 1 and layer.stride == 1 and not any(layer.padding)))


def build_onnx(model, every_layer=False, unsigned_products=UNSIGNED_PRODUCTS):
    """The bit-exact integer graph of ``model`` -> ``onnx.ModelProto`` (see the module docstring).

    unsigned_products: feed MatMulInteger / ConvInteger uint8 operands (the
    default, see :data:`UNSIGNED_PRODUCTS`) or promref's int8 values as they are.
    """
    onnx = _onnx()
    from onnx import TensorProto

    from . import ops

    b = _graph_builder(model)
    t = _Tensors(b)
    shapes = tensor_shapes(model)
    zero_points = {"input": int(model.input.zero_point)}
    rounding = model.rounding

    for layer in model.layers:
        src = layer.inputs[0]
        zx = zero_points[src]
        name = layer.name
        in_shape = shapes[src]
        if _is_matrix_product(layer):
            # x [.., Cin] @ W [Cin, Cout], both zero points subtracted by MatMulInteger
            w = layer.weights.reshape(layer.out_channels, layer.in_channels).T
            acc = b.op("MatMulInteger", _product_operands(b, t, layer, src, zx, w, False, unsigned_products),
                       f"{name}.acc32")
            t.set(name, ops.requantize(b, acc, name, layer, rounding, channel_shape=(-1,), name=name))
        elif layer.op in ("conv2d", "depthwise_conv2d"):
            if layer.op == "conv2d":
                w, group = layer.weights.transpose(0, 3, 1, 2), 1              # [Cout, Cin, k, k]
            else:
                w, group = layer.weights.transpose(2, 0, 1)[:, None], layer.out_channels  # [C, 1, k, k]
            top, bottom, left, right = (int(p) for p in layer.padding)
            # ConvInteger computes sum (w - zw) * (x - zx) over the zero-padded (x - zx): padding with zx
            acc = b.op("ConvInteger", _product_operands(b, t, layer, src, zx, w, True, unsigned_products),
                       f"{name}.acc32", kernel_shape=[layer.kernel, layer.kernel],
                       strides=[layer.stride, layer.stride], pads=[top, left, bottom, right], group=group)
            y = ops.requantize(b, acc, f"{name}.nchw", layer, rounding, channel_shape=(-1, 1, 1))
            t.set(name, y, nchw=True)
            t.set(name, b.op("Transpose", [y], name, name=name, perm=NCHW_TO_NHWC))
        elif layer.op == "add":
            za, zb = zero_points[layer.inputs[0]], zero_points[layer.inputs[1]]
            m, s, left_shift = layer.multiplier, layer.shift, int(layer.left_shift)
            rescaled = []
            for k, (src_k, z) in enumerate(((layer.inputs[0], za), (layer.inputs[1], zb))):
                x64 = b.cast(t.get(src_k), TensorProto.INT64, f"{name}.in{k}")
                # scale((x - z) << L, M[k], shift[k]) = scale(2**L * x + (-z * 2**L), ...)
                rescaled.append(ops.scale(b, x64, f"{name}.r{k}", int(m[k]), int(s[k]), rounding,
                                          x_factor=1 << left_shift, bias=-z << left_shift))
            total = b.op("Add", rescaled, f"{name}.sum")
            y = ops.scale(b, total, f"{name}.out", int(m[2]), int(s[2]), rounding,
                          add_after=layer.out_zero_point)
            t.set(name, ops.clamp_to_int8(b, y, layer.out_min, layer.out_max, name, name=name))
        elif layer.op == "global_avgpool":
            h, w_, _ = in_shape
            t.set(name, ops.global_average(b, t.get(src), name, axes=(1, 2), count=h * w_, name=name))
        else:
            raise OnnxExportError(f"layer {name!r}: op {layer.op!r} on input shape {in_shape} has no ONNX form")
        zero_points[name] = int(layer.out_zero_point)

    b.op("Identity", [t.get(model.layers[-1].name)], "logits", name="logits")
    return _finish(onnx, b, model, "promref_exact", [_input_info(model)], every_layer, shapes)


def export_onnx(model, path, every_layer=False, unsigned_products=UNSIGNED_PRODUCTS):
    """Write the bit-exact integer ONNX graph of ``model`` to ``path``; returns the ModelProto."""
    path = output_file(path, OnnxExportError, "ONNX file")
    proto = build_onnx(model, every_layer=every_layer, unsigned_products=unsigned_products)
    _onnx().save(proto, path)
    return proto


# -------------------------------------------------------- QOperator export


def _f32(value, hint):
    array = np.asarray(value, dtype=np.float32)
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise OnnxExportError(f"{hint}: scales must be finite and >= 0, got {value!r}")
    return array


def build_onnx_qoperator(model, every_layer=False, isolated=False):
    """The conventional (fast, not bit-exact) ONNX Runtime int8 graph of ``model`` -> ModelProto.

    isolated: a diagnostic variant in which every layer reads promref's own
    tensors (extra graph inputs named ``"<tensor>:in"``, NHWC int8, fed by
    :func:`compare`) instead of the outputs of the ONNX Runtime layers before
    it, so that each op's own disagreement is measured without the drift
    accumulated upstream.  Implies ``every_layer``.
    """
    onnx = _onnx()
    from onnx import TensorProto, helper

    from . import ops

    b = _graph_builder(model)
    shapes = tensor_shapes(model)
    scales = {"input": float(model.input.scale)}
    zero_points = {"input": int(model.input.zero_point)}
    current = {"input": b.op("Transpose", ["input"], "input.nchw", perm=NHWC_TO_NCHW)}  # NCHW / [N, C]
    ms = "com.microsoft"
    every_layer = every_layer or isolated
    inputs = [_input_info(model)]
    if isolated:  # every layer's inputs come from outside (promref's values)
        fed = {"input": current["input"]}
        for layer in model.layers:
            for src in layer.inputs:
                if src not in fed:
                    shape = shapes[src]
                    inputs.append(helper.make_tensor_value_info(b.reserve(f"{src}:in"), TensorProto.INT8,
                                                                ["N", *shape]))
                    fed[src] = (b.op("Transpose", [f"{src}:in"], f"{src}.nchw", perm=NHWC_TO_NCHW)
                                if len(shape) == 3 else f"{src}:in")

    def qparams(tensor):
        return (b.const(np.float32(scales[tensor]), np.float32, f"{tensor}.scale"),
                b.const(np.int8(zero_points[tensor]), np.int8, f"{tensor}.zero_point"))

    for layer in model.layers:
        name, src = layer.name, layer.inputs[0]
        if isolated:
            current.update({i: fed[i] for i in layer.inputs})
        if layer.op in ("conv2d", "depthwise_conv2d", "pointwise_ternary", "fully_connected") \
                and layer.weight_zero_point != 0:
            raise OnnxExportError(f"layer {name!r}: the QOperator export needs weight zero point 0 "
                                  f"(per-channel symmetric weights), got {layer.weight_zero_point}")
        scales[name] = float(layer.out_scale)
        zero_points[name] = int(layer.out_zero_point)
        if layer.op in ("conv2d", "depthwise_conv2d", "pointwise_ternary", "fully_connected"):
            real = layer.multiplier.astype(np.float64) * np.exp2(layer.shift.astype(np.float64) - 31)
            w_scale = _f32(real * scales[name] / scales[src], f"{name} weight scale")
            w_zp = np.zeros(layer.out_channels, np.int8)
            bias = b.const(layer.bias.astype(np.int32), np.int32, f"{name}.bias")
            if layer.op == "fully_connected":
                y = b.op("QGemm", [current[src], *qparams(src),
                                   b.const(layer.weights, np.int8, f"{name}.weights"),
                                   b.const(w_scale, np.float32, f"{name}.weight_scale"),
                                   b.const(w_zp, np.int8, f"{name}.weight_zero_point"), bias, *qparams(name)],
                         f"{name}.q", domain=ms, transA=0, transB=1, alpha=1.0)
            else:
                if layer.op == "depthwise_conv2d":
                    w, group = layer.weights.transpose(2, 0, 1)[:, None], layer.out_channels
                elif layer.op == "conv2d":
                    w, group = layer.weights.transpose(0, 3, 1, 2), 1
                else:
                    w, group = layer.weights[:, :, None, None], 1
                top, bottom, left, right = (int(p) for p in layer.padding)
                y = b.op("QLinearConv", [current[src], *qparams(src),
                                         b.const(np.ascontiguousarray(w), np.int8, f"{name}.weights"),
                                         b.const(w_scale, np.float32, f"{name}.weight_scale"),
                                         b.const(w_zp, np.int8, f"{name}.weight_zero_point"),
                                         *qparams(name), bias],
                         f"{name}.q", kernel_shape=[layer.kernel, layer.kernel],
                         strides=[layer.stride, layer.stride], pads=[top, left, bottom, right], group=group)
        elif layer.op == "add":
            a, c = layer.inputs
            y = b.op("QLinearAdd", [current[a], *qparams(a), current[c], *qparams(c), *qparams(name)],
                     f"{name}.q", domain=ms)
        elif layer.op == "global_avgpool":
            pooled = b.op("QLinearGlobalAveragePool", [current[src], *qparams(src), *qparams(name)],
                          f"{name}.q", domain=ms, channels_last=0)
            y = b.op("Flatten", [pooled], f"{name}.flat", axis=1)
        else:  # pragma: no cover - validate() admits no other op
            raise OnnxExportError(f"layer {name!r}: op {layer.op!r} has no QOperator form")
        if (layer.out_min, layer.out_max) != (-128, 127):
            # ReLU6 whose q(6) lies inside int8: an explicit int8 Clip (trained models need none)
            y = b.op("Clip", [y, b.const(np.int8(layer.out_min), np.int8, f"{name}.min"),
                              b.const(np.int8(layer.out_max), np.int8, f"{name}.max")], f"{name}.clip")
        current[name] = y
        if every_layer:
            if len(shapes[name]) == 3:
                b.op("Transpose", [y], name, name=name, perm=NCHW_TO_NHWC)
            else:
                b.op("Identity", [y], name, name=name)

    b.op("Identity", [current[model.layers[-1].name]], "logits", name="logits")
    return _finish(onnx, b, model, "promref_qoperator", inputs, every_layer, shapes,
                   extra_opsets=[helper.make_opsetid(ms, MS_OPSET)])


def export_onnx_qoperator(model, path, every_layer=False):
    """Write the QOperator (QLinearConv, per-channel int8) graph of ``model`` to ``path``; returns it."""
    path = output_file(path, OnnxExportError, "ONNX file")
    proto = build_onnx_qoperator(model, every_layer=every_layer)
    _onnx().save(proto, path)
    return proto


# ----------------------------------------------------------- ONNX Runtime


def ort_session(onnx_model, threads=None, optimization="all", spinning=None):
    """An ``onnxruntime.InferenceSession`` on the CPU for a path, bytes or ``ModelProto``.

    threads: intra-op threads (None: ONNX Runtime's default, one per core);
    inter-op parallelism is off (sequential execution).  optimization:
    'disable', 'basic', 'extended' or 'all' (graph optimizations; 'all'
    includes ONNX Runtime's NHWC layout transform of QLinearConv).
    spinning: False turns off the worker threads' busy-waiting between ops
    (``session.intra_op.allow_spinning = 0``); None leaves ONNX Runtime's default.
    """
    import onnxruntime as ort

    if hasattr(onnx_model, "SerializeToString"):
        onnx_model = onnx_model.SerializeToString()
    elif isinstance(onnx_model, os.PathLike):
        onnx_model = os.fspath(onnx_model)
    options = ort.SessionOptions()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    if spinning is not None:
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    if optimization not in levels:
        raise ValueError(f"unknown optimization level {optimization!r}; expected one of {tuple(levels)}")
    options.graph_optimization_level = levels[optimization]
    return ort.InferenceSession(onnx_model, sess_options=options, providers=["CPUExecutionProvider"])


def run_onnx(session, x, tensors=None):
    """Run a session from either export on int8 ``x`` [N, H, W, 3] -> (logits, {output name: array}).

    tensors: {promref tensor name: int8 array} feeding the ``"<name>:in"``
    inputs of an ``isolated`` QOperator graph (promref's trace).
    """
    feeds = {"input": np.ascontiguousarray(x, dtype=np.int8)}
    for info in session.get_inputs():
        if info.name != "input":
            if tensors is None or info.name[:-3] not in tensors:
                raise ValueError(f"the session needs promref's tensor {info.name[:-3]!r} (an isolated graph)")
            feeds[info.name] = np.ascontiguousarray(tensors[info.name[:-3]])
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, feeds)
    outputs = dict(zip(names, values))
    return outputs["logits"], outputs


@dataclass
class TensorDiff:
    """How one int8 tensor of an ONNX session differs from promref's."""
    name: str
    elements: int = 0
    mismatches: int = 0
    max_abs_diff: int = 0
    sum_abs_diff: int = 0

    @property
    def mean_abs_diff(self):
        """Mean |difference| over all values (0 when bit exact)."""
        return self.sum_abs_diff / self.elements if self.elements else 0.0

    def add(self, ours, theirs):
        if ours.shape != theirs.shape:
            raise ValueError(f"{self.name}: promref shape {ours.shape}, ONNX shape {theirs.shape}")
        diff = np.abs(ours.astype(np.int16) - theirs.astype(np.int16))
        self.elements += diff.size
        self.mismatches += int(np.count_nonzero(diff))
        self.max_abs_diff = max(self.max_abs_diff, int(diff.max()) if diff.size else 0)
        self.sum_abs_diff += int(diff.sum())


@dataclass
class OnnxAgreement:
    """Result of :func:`compare`: per-tensor differences and top-1 agreement."""
    images: int = 0
    tensors: list = field(default_factory=list)  # TensorDiff, in execution order, 'logits' last
    top1_agree: int = 0

    @property
    def mismatches(self):
        return sum(d.mismatches for d in self.tensors)

    def tensor(self, name):
        for d in self.tensors:
            if d.name == name:
                return d
        raise KeyError(name)

    def table(self):
        lines = [f"{'tensor':<16} {'values':>10} {'mismatches':>10} {'max|d|':>6} {'mean|d|':>8}"]
        for d in self.tensors:
            lines.append(f"{d.name:<16} {d.elements:>10} {d.mismatches:>10} {d.max_abs_diff:>6} "
                         f"{d.mean_abs_diff:>8.4f}")
        lines.append(f"total mismatches {self.mismatches}; top-1 agreement {self.top1_agree}/{self.images}")
        return "\n".join(lines)


def compare(model, session, x, backend="numpy", batch=8, agreement=None):
    """Run ``model`` (promref ``backend``) and an ONNX ``session`` on int8 ``x`` [N, H, W, 3].

    Compares the logits and every layer output the session has (from
    ``every_layer=True``).  Accumulates into ``agreement`` when given.
    """
    result = agreement if agreement is not None else OnnxAgreement()
    for start in range(0, len(x), batch):
        chunk = np.ascontiguousarray(x[start:start + batch])
        logits, trace = model.forward(chunk, backend=backend, trace=True)
        theirs_logits, outputs = run_onnx(session, chunk, tensors=trace)
        trace["logits"] = logits
        wanted = [layer.name for layer in model.layers if layer.name in outputs] + ["logits"]
        if not result.tensors:
            result.tensors = [TensorDiff(n) for n in wanted]
        for d in result.tensors:
            d.add(trace[d.name], outputs[d.name])
        result.images += len(chunk)
        result.top1_agree += int(np.sum(np.argmax(logits, axis=1) == np.argmax(theirs_logits, axis=1)))
    return result


# ---------------------------------------------------------------- command line


def main(argv=None):
    from ...format import load

    p = argparse.ArgumentParser(prog="python -m promref.interop.onnx",
                                description="Export a promref weights file to ONNX.")
    p.add_argument("weights", help="promref weights file (.npz)")
    p.add_argument("out", help="ONNX file to write")
    p.add_argument("--qoperator", action="store_true",
                   help="the fast QLinearConv graph (not bit exact) instead of the exact integer graph")
    p.add_argument("--every-layer", action="store_true", help="also output every layer's int8 tensor")
    args = p.parse_args(argv)
    export = export_onnx_qoperator if args.qoperator else export_onnx
    try:
        model = load(args.weights)
        proto = export(model, args.out, every_layer=args.every_layer)
    except (PromrefError, OSError) as e:  # OSError: e.g. a full disk while writing
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {len(proto.graph.node)} nodes, opset {OPSET}, rounding {model.rounding!r}"
          + (" (QOperator: not bit exact)" if args.qoperator else " (bit exact)"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
