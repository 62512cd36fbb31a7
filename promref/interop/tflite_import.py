"""Import a quantized TFLite (LiteRT) MobileNetV2 into a promref :class:`Model`.

``import_tflite(path)`` parses the ``.tflite`` flatbuffer with the ``tflite``
package (the schema's generated Python accessors) and builds the layer list of
promref's integer graph, with rounding mode ``"double"`` (TFLite's reference
``MultiplyByQuantizedMultiplier``).  The aim is bit exactness against LiteRT's
reference kernels (``OpResolverType.BUILTIN_REF``) at every layer, so every
integer is derived exactly as TFLite's kernels derive it in ``Prepare``:

* conv / depthwise, int8 (per-tensor or per-channel filter scales):
  ``QuantizeMultiplier((double)s_in * (double)s_w[c] / (double)s_out)``
  (``PopulateConvolutionQuantizationParams``);
* conv / depthwise with uint8 tensors: the legacy
  ``GetQuantizedConvolutionMultipler``, whose input*filter product is taken
  in **float32** before the division in double (the uint8 kernels read this
  per-tensor multiplier, not the per-channel array);
* ADD (uint8/int8): ``left_shift = 20``, ``twice_max = 2 * max(s1, s2)``,
  ``QuantizeMultiplierSmallerThanOneExp`` of ``s1 / twice_max``,
  ``s2 / twice_max`` and ``twice_max / (2**20 * s_out)``;
* FULLY_CONNECTED: LiteRT's reference kernel requantizes in double floating
  point, ``round((double)acc * s_in * s_w / s_out)``, which no integer
  multiplier reproduces for every accumulator; it is imported with the nearest
  integer multiplier and listed in ``metadata["tflite"]["inexact"]`` (the
  MobileNetV2 files use a 1x1 CONV_2D classifier instead, which is exact);
* fused activations: ``CalculateActivationRangeQuantized``, i.e.
  ``zp + round_half_away(f / scale)`` in float32 for f = 0 and 6 (or -1, 1);
* MEAN over H, W (int8/uint8): ``QuantizedMeanOrSum`` folds ``1/n`` into the
  multiplier: ``M0, s0 = QuantizeMultiplier((double)s_in / (double)s_out)``,
  ``k = min(floor(log2 n), 32, 31 + s0)``, ``M = (M0 << k) // n``,
  ``s = s0 - k``, then ``y = clamp(zp_out + MBQM(sum(x) - n * zp_in, M, s))``.
  promref's ``global_avgpool`` cannot rescale, so MEAN becomes an exact
  equivalent: a depthwise_conv2d with an all-ones HxW kernel, no padding, bias
  0 and that (M, s), followed by a ``global_avgpool`` over the resulting 1x1
  map (a pure flatten: the mean of one value is the value).

uint8 tensors become int8 by subtracting 128 from values *and* zero points,
which is exact because every op only sees ``q - zp``; uint8 weights with zero
point ``zw`` become ``w - 128`` with zero point ``zw - 128``.  A uint8 input
image ``p`` is promref's ``q = p - 128`` with zero point ``zp - 128``.  A
QUANTIZE that only re-types uint8 <-> int8 at the same scale (the TF2 model's
input) is therefore the identity.  RESHAPE/SQUEEZE of a vector (or a 1x1 map)
are no-ops; the integer graph stops at SOFTMAX or DEQUANTIZE (the logits are
the int8 tensor feeding it).

A global AVERAGE_POOL_2D (same scale and zero point in and out) is promref's
``global_avgpool``: int8 TFLite rounds the raw mean half away from zero, as
promref does; uint8 TFLite rounds ``(sum + n/2) / n``, which agrees with it
on ``u - 128`` whenever the count n is odd (no exact ties), so a uint8 pool
over an even count is refused.

Every construct whose TFLite semantics promref cannot express exactly is
refused with :class:`TfliteImportError`, except FULLY_CONNECTED (above),
which is imported as its nearest integer form and flagged as inexact.
"""
import math
import os

import numpy as np

from .. import arith
from ..errors import PromrefError
from ..model import InputSpec, Layer, Model
from ..validate import validate

__all__ = ["import_tflite", "TfliteImportError", "same_padding", "conv_multipliers", "add_parameters",
           "activation_range", "mean_parameters", "read_labels"]


class TfliteImportError(PromrefError):
    """The .tflite file uses something promref cannot reproduce exactly."""


# ------------------------------------------------ TFLite Prepare-time math


def same_padding(in_size, kernel, stride, dilation=1):
    """TF/TFLite ``SAME`` padding of one spatial dimension -> (before, after, out_size).

    ``out = ceil(in / stride)``; ``total = max((out - 1) * stride + k_eff - in, 0)``;
    ``before = total // 2`` and ``after = total - before`` (the odd pixel goes
    to the bottom/right), as ``ComputePaddingWithOffset``.
    """
    effective = (kernel - 1) * dilation + 1
    out = (in_size + stride - 1) // stride
    total = max((out - 1) * stride + effective - in_size, 0)
    return total // 2, total - total // 2, out


def valid_output_size(in_size, kernel, stride, dilation=1):
    """TF/TFLite ``VALID`` output size: ``ceil((in - k_eff + 1) / stride)``."""
    effective = (kernel - 1) * dilation + 1
    return (in_size - effective + stride) // stride


def conv_multipliers(input_scale, filter_scales, output_scale, legacy_float_product=False):
    """Per-output-channel (multiplier int32, shift int32) of a conv / FC layer.

    ``legacy_float_product=False``: ``(double)s_in * (double)s_w[c] / (double)s_out``
    (int8 conv and depthwise, per-channel FC).  ``True``: the float32 product
    ``(double)(s_in * s_w) / (double)s_out`` (uint8 conv/depthwise,
    per-tensor FC): TFLite's ``GetQuantizedConvolutionMultipler``.
    """
    s_in = np.float32(input_scale)
    s_out = np.float32(output_scale)
    reals = []
    for s_w in np.asarray(filter_scales, dtype=np.float32).ravel():
        if legacy_float_product:
            reals.append(float(np.float32(s_in * s_w)) / float(s_out))
        else:
            reals.append(float(s_in) * float(s_w) / float(s_out))
    return arith.quantize_multipliers(reals)


def add_parameters(scale1, scale2, output_scale, left_shift=20):
    """TFLite ADD (uint8/int8) Prepare -> (left_shift, multiplier int32 [3], shift int32 [3]).

    ``twice_max = 2 * max(s1, s2)`` (float32, exact), then
    ``QuantizeMultiplierSmallerThanOneExp`` of ``s1 / twice_max``,
    ``s2 / twice_max`` and ``twice_max / ((1 << left_shift) * s_out)``, all
    in double.
    """
    s1, s2, so = np.float32(scale1), np.float32(scale2), np.float32(output_scale)
    twice_max = float(np.float32(2) * max(s1, s2))
    reals = (float(s1) / twice_max, float(s2) / twice_max,
             twice_max / float(np.float32((1 << left_shift) * so)))
    multipliers, shifts = [], []
    for real in reals:
        if not 0.0 < real < 1.0:
            raise TfliteImportError(f"ADD rescale {real!r} is outside (0, 1)")
        m, s = arith.quantize_multiplier(real)
        if s > 0:  # pragma: no cover - impossible for real < 1
            raise TfliteImportError(f"ADD rescale {real!r} gives a positive shift")
        multipliers.append(m)
        shifts.append(s)
    return left_shift, np.array(multipliers, np.int32), np.array(shifts, np.int32)


def _round_half_away(x):
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def activation_range(activation, scale, zero_point, qmin, qmax):
    """``CalculateActivationRangeQuantized`` -> (act_min, act_max) in the tensor's own type.

    activation: 'NONE', 'RELU', 'RELU6' or 'RELU_N1_TO_1'.  ``f / scale`` is a
    float32 division, rounded half away from zero (``TfLiteRound``).
    """
    def quantize(f):
        return zero_point + _round_half_away(float(np.float32(f) / np.float32(scale)))

    if activation == "NONE":
        return qmin, qmax
    if activation == "RELU":
        return max(qmin, quantize(0.0)), qmax
    if activation == "RELU6":
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    raise TfliteImportError(f"unsupported fused activation {activation}")


def mean_parameters(input_scale, output_scale, count):
    """TFLite MEAN (int8/uint8, reference ``QuantizedMeanOrSum``) -> (multiplier, shift).

    The 1/count of the mean is folded into the rescale of the *sum*::

        M0, s0 = QuantizeMultiplier((double)s_in / (double)s_out)
        k = min(floor(log2(count)), 32, 31 + s0)
        M = (M0 << k) // count;  s = s0 - k
        y = clamp(zp_out + MultiplyByQuantizedMultiplier(sum(x) - count * zp_in, M, s))
    """
    m0, s0 = arith.quantize_multiplier(float(np.float32(input_scale)) / float(np.float32(output_scale)))
    k = min(int(count).bit_length() - 1, 32, 31 + s0)
    return int((m0 << k) // count), s0 - k


def read_labels(path):
    """One label a line (blank lines at the end dropped)."""
    with open(path, encoding="utf-8") as f:
        labels = [line.rstrip("\r\n") for line in f]
    while labels and not labels[-1].strip():
        labels.pop()
    return tuple(labels)


# ------------------------------------------------------ flatbuffer reading


def _tflite():
    try:
        import tflite
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise TfliteImportError("reading .tflite files needs the 'tflite' package (pip install tflite)") from e
    return tflite


def _enum_names(enum_class):
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


class _Tensor:
    """A tensor's type, shape, quantization and (for constants) data, read from the file."""

    def __init__(self, index, tensor, model, raw, names):
        self.index = index
        self.name = tensor.Name().decode("utf-8", "replace") if tensor.Name() else f"tensor{index}"
        self.type = names["type"].get(tensor.Type(), str(tensor.Type()))
        shape = tensor.ShapeAsNumpy()
        self.shape = tuple(int(d) for d in shape) if isinstance(shape, np.ndarray) else ()
        q = tensor.Quantization()
        scales = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else None
        zps = q.ZeroPointAsNumpy() if q is not None and q.ZeroPointLength() else None
        self.scales = None if scales is None else np.asarray(scales, dtype=np.float32)
        self.zero_points = (None if zps is None else np.asarray(zps, dtype=np.int64))
        if self.scales is not None and self.zero_points is None:
            self.zero_points = np.zeros(1, np.int64)
        self.quantized_dimension = q.QuantizedDimension() if q is not None else 0
        self.data = None
        buffer = model.Buffers(tensor.Buffer()) if tensor.Buffer() < model.BuffersLength() else None
        if buffer is not None:
            raw_bytes = None
            if buffer.DataLength():
                raw_bytes = buffer.DataAsNumpy().tobytes()
            elif getattr(buffer, "Offset", lambda: 0)() > 1:  # large models keep buffers after the flatbuffer
                raw_bytes = raw[buffer.Offset():buffer.Offset() + buffer.Size()]
            if raw_bytes is not None:
                dtype = {"UINT8": "<u1", "INT8": "<i1", "INT32": "<i4", "INT64": "<i8",
                         "FLOAT32": "<f4", "INT16": "<i2"}.get(self.type)
                if dtype is None:
                    raise TfliteImportError(f"tensor {self.name!r}: constant of type {self.type} is not supported")
                self.data = np.frombuffer(raw_bytes, dtype=dtype).reshape(self.shape)

    # -- quantization helpers
    @property
    def scale(self):
        """The per-tensor scale (float32); error if per-channel or absent."""
        if self.scales is None or self.scales.size != 1:
            raise TfliteImportError(f"tensor {self.name!r}: expected one (per-tensor) scale, got "
                                    f"{None if self.scales is None else self.scales.size}")
        return np.float32(self.scales[0])

    @property
    def zero_point(self):
        if self.zero_points is None or self.zero_points.size != 1:
            raise TfliteImportError(f"tensor {self.name!r}: expected one (per-tensor) zero point")
        return int(self.zero_points[0])

    def activation(self):
        """(int8 zero point, offset to add to raw values, qmin, qmax) of an activation tensor.

        uint8 tensors are moved to int8 by subtracting 128 (offset -128).
        """
        if self.type == "UINT8":
            return self.zero_point - 128, -128, 0, 255
        if self.type == "INT8":
            return self.zero_point, 0, -128, 127
        raise TfliteImportError(f"tensor {self.name!r}: activations must be uint8 or int8, got {self.type}")


def _options(op, tflite, cls_name):
    table = op.BuiltinOptions()
    opts = getattr(tflite, cls_name)()
    if table is not None:
        opts.Init(table.Bytes, table.Pos)
    return opts


# ----------------------------------------------------------------- import


class _Builder:
    """Walks the operators in order and emits promref layer records."""

    def __init__(self, path):
        tflite = self.tflite = _tflite()
        with open(path, "rb") as f:
            raw = f.read()
        model = tflite.Model.GetRootAsModel(raw, 0)
        if model.SubgraphsLength() != 1:
            raise TfliteImportError(f"{path}: expected one subgraph, found {model.SubgraphsLength()}")
        graph = self.graph = model.Subgraphs(0)
        self.path = path
        self.opnames = _enum_names(tflite.BuiltinOperator)
        self.actnames = _enum_names(tflite.ActivationFunctionType)
        names = {"type": _enum_names(tflite.TensorType)}
        self.tensors = [_Tensor(i, graph.Tensors(i), model, raw, names) for i in range(graph.TensorsLength())]
        self.opcodes = []
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            self.opcodes.append(self.opnames.get(builtin, f"op{builtin}"))
        if graph.InputsLength() != 1:
            raise TfliteImportError(f"{path}: expected one graph input, found {graph.InputsLength()}")
        self.layers = []          # dicts, finalised into Layer records at the end
        self.tensor_of = {}       # tflite tensor index -> promref tensor name
        self.shape_of = {"input": None}  # promref tensor name -> (H, W, C) or (C,)
        self.zp_of = {}           # promref tensor name -> int8 zero point
        self.notes = []
        self.aliases = {}         # tflite tensors that are the same integers as a promref tensor
        self.inexact_tensors = []  # tflite tensors whose op promref can only approximate
        self.logits_tensor = None

    # -- helpers
    def t(self, index):
        return self.tensors[index]

    def source(self, index, op_name):
        if index not in self.tensor_of:
            raise TfliteImportError(f"{op_name}: input tensor {self.t(index).name!r} is not produced by a "
                                    "supported op (constant or unknown activation)")
        return self.tensor_of[index]

    def emit(self, tensor_index, **record):
        name = f"L{len(self.layers)}"
        record["name"] = name
        record["tflite_tensor"] = tensor_index
        self.layers.append(record)
        self.tensor_of[tensor_index] = name
        self.shape_of[name] = record.pop("shape")
        self.zp_of[name] = record["out_zero_point"]
        return name

    def out_params(self, out, activation):
        """(int8 zero point, out_min, out_max, out_scale) of an op's output tensor."""
        zp, offset, qmin, qmax = out.activation()
        lo, hi = activation_range(activation, out.scale, out.zero_point, qmin, qmax)
        return zp, lo + offset, hi + offset, float(out.scale)

    def activation_name(self, opts, op_name):
        code = opts.FusedActivationFunction()
        name = self.actnames.get(code, str(code))
        if name not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
            raise TfliteImportError(f"{op_name}: fused activation {name} is not supported")
        return name

    # -- the graph input
    def add_input(self):
        index = self.graph.Inputs(0)
        tensor = self.t(index)
        if len(tensor.shape) != 4 or tensor.shape[0] != 1 or tensor.shape[3] != 3:
            raise TfliteImportError(f"input {tensor.name!r}: expected shape [1, H, W, 3], got {list(tensor.shape)}")
        zp, _, _, _ = tensor.activation()
        self.input_tensor = tensor
        self.input_zp = zp
        self.tensor_of[index] = "input"
        self.shape_of["input"] = tensor.shape[1:]
        self.zp_of["input"] = zp

    # -- ops
    def run(self):
        self.add_input()
        graph = self.graph
        for k in range(graph.OperatorsLength()):
            op = graph.Operators(k)
            opname = self.opcodes[op.OpcodeIndex()]
            ins = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
            outs = [int(i) for i in op.OutputsAsNumpy()] if op.OutputsLength() else []
            where = f"operator {k} ({opname})"
            if opname in ("SOFTMAX", "DEQUANTIZE"):
                self.logits_tensor = ins[0]
                self.notes.append(f"the integer graph ends at {where}; it and later operators run outside promref")
                break
            handler = getattr(self, "op_" + opname.lower(), None)
            if handler is None:
                raise TfliteImportError(f"{where}: operator {opname} is not supported")
            handler(op, ins, outs, where)
        if self.logits_tensor is None:
            self.logits_tensor = int(graph.Outputs(0))
        if self.tensor_of.get(self.logits_tensor) != (self.layers[-1]["name"] if self.layers else None):
            raise TfliteImportError("the logits must be the output of the last imported layer")

    def _conv_common(self, op, ins, outs, where, depthwise):
        tfl = self.tflite
        opts = _options(op, tfl, "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions")
        x, w, out = self.t(ins[0]), self.t(ins[1]), self.t(outs[0])
        bias = self.t(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
        src = self.source(ins[0], where)
        in_shape = self.shape_of[src]
        if opts.DilationHFactor() not in (0, 1) or opts.DilationWFactor() not in (0, 1):
            raise TfliteImportError(f"{where}: dilation is not supported")
        if opts.StrideH() != opts.StrideW():
            raise TfliteImportError(f"{where}: unequal strides {opts.StrideH()}x{opts.StrideW()}")
        stride = int(opts.StrideH())
        if w.data is None:
            raise TfliteImportError(f"{where}: the filter must be a constant tensor")
        if depthwise:
            one, kh, kw, cout = w.shape
            if one != 1:
                raise TfliteImportError(f"{where}: depthwise filter must have shape [1, kh, kw, C]")
            cin = in_shape[-1]
            if cout != cin:
                raise TfliteImportError(f"{where}: depth multiplier {cout // max(cin, 1)} != 1 is not supported")
            channel_axis = 3
        else:
            cout, kh, kw, cin = w.shape
            channel_axis = 0
        if kh != kw:
            raise TfliteImportError(f"{where}: non-square kernel {kh}x{kw}")
        activation = self.activation_name(opts, where)
        zp_out, lo, hi, out_scale = self.out_params(out, activation)

        # weights: uint8 per-tensor -> int8 with shifted zero point; int8 per-channel as is
        if w.type == "UINT8":
            if w.zero_points.size != 1:
                raise TfliteImportError(f"{where}: uint8 filters must be per-tensor")
            weights = (w.data.astype(np.int16) - 128).astype(np.int8)
            weight_zp = int(w.zero_points[0]) - 128
        elif w.type == "INT8":
            if np.any(w.zero_points != 0):
                raise TfliteImportError(f"{where}: int8 filters need zero points 0 (TFLite requires it)")
            weights = w.data.astype(np.int8)
            weight_zp = 0
            if w.scales.size not in (1, cout) or (w.scales.size > 1 and w.quantized_dimension != channel_axis):
                raise TfliteImportError(f"{where}: filter scales must be per-tensor or per output channel")
        else:
            raise TfliteImportError(f"{where}: filter type {w.type} is not supported")
        filter_scales = np.broadcast_to(w.scales, (cout,)).astype(np.float32)
        if x.type != out.type:
            raise TfliteImportError(f"{where}: input {x.type} and output {out.type} types differ")
        legacy = x.type == "UINT8"  # uint8 kernels use the float32-product multiplier
        multiplier, shift = conv_multipliers(x.scale, filter_scales, out.scale, legacy_float_product=legacy)
        if bias is None:
            bias_q = np.zeros(cout, np.int32)
        else:
            if bias.type != "INT32" or bias.data is None or bias.shape != (cout,):
                raise TfliteImportError(f"{where}: bias must be a constant int32 [{cout}]")
            bias_q = bias.data.astype(np.int32)

        common = dict(out_zero_point=zp_out, out_min=lo, out_max=hi, out_scale=out_scale,
                      weight_zero_point=weight_zp, weight_scale=filter_scales.copy(), bias=bias_q,
                      multiplier=multiplier, shift=shift, in_channels=int(cin), out_channels=int(cout))
        if len(in_shape) == 1:
            # a 1x1 conv on the pooled vector is a fully connected layer (the classifier)
            if kh != 1 or depthwise:
                raise TfliteImportError(f"{where}: only 1x1 convolutions may follow the global pool")
            return self.emit(outs[0], op="fully_connected", role="fc", inputs=(src,),
                             weights=weights.reshape(cout, cin), shape=(int(cout),), **common)
        # a spatial convolution
        padding_code = opts.Padding()
        pads, out_hw = [], []
        for dim in (0, 1):
            if padding_code == tfl.Padding.SAME:
                before, after, size = same_padding(in_shape[dim], kh, stride)
            elif padding_code == tfl.Padding.VALID:
                before, after, size = 0, 0, valid_output_size(in_shape[dim], kh, stride)
            else:
                raise TfliteImportError(f"{where}: unknown padding {padding_code}")
            pads += [before, after]
            out_hw.append(size)
        if (1, *out_hw, cout) != tuple(out.shape):
            raise TfliteImportError(f"{where}: output shape {list(out.shape)} != computed {[1, *out_hw, cout]}")
        if depthwise:
            weights = weights.reshape(kh, kw, cout)
            op_name, role = "depthwise_conv2d", "depthwise"
        else:
            op_name, role = "conv2d", ("conv1x1" if kh == 1 else "conv")
        return self.emit(outs[0], op=op_name, role=role, inputs=(src,), weights=weights, kernel=int(kh),
                         stride=stride, padding=tuple(pads), shape=(*out_hw, int(cout)), **common)

    def op_conv_2d(self, op, ins, outs, where):
        self._conv_common(op, ins, outs, where, depthwise=False)

    def op_depthwise_conv_2d(self, op, ins, outs, where):
        self._conv_common(op, ins, outs, where, depthwise=True)

    def op_fully_connected(self, op, ins, outs, where):
        tfl = self.tflite
        opts = _options(op, tfl, "FullyConnectedOptions")
        x, w, out = self.t(ins[0]), self.t(ins[1]), self.t(outs[0])
        src = self.source(ins[0], where)
        in_shape = self.shape_of[src]
        if opts.WeightsFormat() != 0:
            raise TfliteImportError(f"{where}: shuffled weights are not supported")
        if len(in_shape) != 1:
            raise TfliteImportError(f"{where}: input must be a vector (after the global pool)")
        cout, cin = w.shape
        activation = self.activation_name(opts, where)
        zp_out, lo, hi, out_scale = self.out_params(out, activation)
        if w.type == "UINT8":
            weights = (w.data.astype(np.int16) - 128).astype(np.int8)
            weight_zp = int(w.zero_points[0]) - 128
        elif w.type == "INT8":
            if np.any(w.zero_points != 0):
                raise TfliteImportError(f"{where}: int8 weights need zero points 0")
            weights, weight_zp = w.data.astype(np.int8), 0
        else:
            raise TfliteImportError(f"{where}: weight type {w.type} is not supported")
        filter_scales = np.broadcast_to(w.scales, (cout,)).astype(np.float32)
        # LiteRT's *reference* FULLY_CONNECTED (uint8, int8, per-tensor and per-channel) does not use
        # the integer multiplier of Prepare: it computes
        #     round_half_away((double)acc * ((double)s_in * (double)s_w[c] / (double)s_out)) + zp_out
        # in floating point.  promref's integer requantization cannot express that exactly; the
        # nearest integer form is QuantizeMultiplier of the same double effective scale, which
        # differs from LiteRT by 1 when acc * scale lies within ~2**-31 (relative) of a half.
        multiplier, shift = conv_multipliers(x.scale, filter_scales, out.scale, legacy_float_product=False)
        bias = self.t(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
        bias_q = np.zeros(cout, np.int32) if bias is None else bias.data.astype(np.int32)
        self.notes.append(f"{where}: FULLY_CONNECTED is not bit-exact: LiteRT's reference kernel requantizes "
                          "in double floating point (round((double)acc * s_in * s_w / s_out)); promref uses "
                          "the nearest integer multiplier (differences of 1 at rare near-ties)")
        self.inexact_tensors.append(outs[0])
        self.emit(outs[0], op="fully_connected", role="fc", inputs=(src,), weights=weights,
                  out_zero_point=zp_out, out_min=lo, out_max=hi, out_scale=out_scale, weight_zero_point=weight_zp,
                  weight_scale=filter_scales.copy(), bias=bias_q, multiplier=multiplier, shift=shift,
                  in_channels=int(cin), out_channels=int(cout), shape=(int(cout),))

    def op_add(self, op, ins, outs, where):
        opts = _options(op, self.tflite, "AddOptions")
        a, b, out = self.t(ins[0]), self.t(ins[1]), self.t(outs[0])
        src_a, src_b = self.source(ins[0], where), self.source(ins[1], where)
        if a.shape != b.shape or self.shape_of[src_a] != self.shape_of[src_b]:
            raise TfliteImportError(f"{where}: broadcasting ADD is not supported")
        if not (a.type == b.type == out.type):
            raise TfliteImportError(f"{where}: mixed input/output types")
        activation = self.activation_name(opts, where)
        zp_out, lo, hi, out_scale = self.out_params(out, activation)
        left_shift, multiplier, shift = add_parameters(a.scale, b.scale, out.scale)
        channels = self.shape_of[src_a][-1]
        self.emit(outs[0], op="add", role="add", inputs=(src_a, src_b), out_zero_point=zp_out, out_min=lo,
                  out_max=hi, out_scale=out_scale, multiplier=multiplier, shift=shift, left_shift=left_shift,
                  in_channels=channels, out_channels=channels, shape=self.shape_of[src_a])

    def op_average_pool_2d(self, op, ins, outs, where):
        opts = _options(op, self.tflite, "Pool2DOptions")
        x, out = self.t(ins[0]), self.t(outs[0])
        src = self.source(ins[0], where)
        shape = self.shape_of[src]
        h, w, c = shape
        if (opts.FilterHeight(), opts.FilterWidth()) != (h, w) or tuple(out.shape) != (1, 1, 1, c):
            raise TfliteImportError(f"{where}: only a global average pool (filter = input size) is supported")
        if x.type != out.type or x.scale != out.scale or x.zero_point != out.zero_point:
            raise TfliteImportError(f"{where}: AVERAGE_POOL_2D must keep its input's scale and zero point")
        activation = self.activation_name(opts, where)
        zp, lo, hi, _ = self.out_params(out, activation)
        if (lo, hi) != (-128, 127):
            raise TfliteImportError(f"{where}: a fused activation that clips the pool output is not supported")
        if x.type == "UINT8" and (h * w) % 2 == 0:
            # uint8 rounds (sum + n/2) / n, i.e. half up; promref's int8 mean rounds half away from
            # zero.  They agree unless a mean ends in exactly .5, which needs an even count.
            raise TfliteImportError(f"{where}: uint8 average pool over an even count ({h * w}) rounds ties "
                                    "differently from promref's global_avgpool")
        self.emit(outs[0], op="global_avgpool", role="pool", inputs=(src,), out_zero_point=zp,
                  out_scale=float(out.scale), in_channels=c, out_channels=c, shape=(c,))

    def op_mean(self, op, ins, outs, where):
        x, axis, out = self.t(ins[0]), self.t(ins[1]), self.t(outs[0])  # keep_dims does not matter
        src = self.source(ins[0], where)
        shape = self.shape_of[src]
        if axis.data is None or sorted(int(a) % 4 for a in axis.data.ravel()) != [1, 2] or len(shape) != 3:
            raise TfliteImportError(f"{where}: only MEAN over height and width of a feature map is supported")
        h, w, c = shape
        if h != w or h > 15:
            raise TfliteImportError(f"{where}: MEAN over a {h}x{w} map cannot be expressed (square, <= 15)")
        if x.type != out.type:
            raise TfliteImportError(f"{where}: MEAN input and output types differ")
        zp_out, lo, hi, out_scale = self.out_params(out, "NONE")
        multiplier, shift = mean_parameters(x.scale, out.scale, h * w)
        self.notes.append(
            f"{where}: MEAN rescales (input scale {float(x.scale):.8g} -> output scale {float(out.scale):.8g}); "
            "expressed exactly as depthwise_conv2d (all-ones kernel, multiplier/shift of QuantizedMeanOrSum) "
            "+ global_avgpool over the 1x1 result")
        name = self.emit(outs[0], op="depthwise_conv2d", role="mean", inputs=(src,),
                         weights=np.ones((h, w, c), np.int8), kernel=h, stride=1, padding=(0, 0, 0, 0),
                         out_zero_point=zp_out, out_min=lo, out_max=hi, out_scale=out_scale, weight_zero_point=0,
                         bias=np.zeros(c, np.int32), multiplier=np.full(c, multiplier, np.int32),
                         shift=np.full(c, shift, np.int32), in_channels=c, out_channels=c, shape=(1, 1, c))
        # flatten the 1x1 map: global_avgpool of a single value is that value
        self.emit(outs[0], op="global_avgpool", role="pool", inputs=(name,), out_zero_point=zp_out,
                  out_scale=out_scale, in_channels=c, out_channels=c, shape=(c,))

    def _alias(self, ins, outs, where, vector_only=True):
        src = self.source(ins[0], where)
        shape = self.shape_of[src]
        out = self.t(outs[0])
        if vector_only and len(shape) == 3 and shape[:2] != (1, 1):
            raise TfliteImportError(f"{where}: reshaping a {shape} feature map is not supported")
        if int(np.prod(out.shape)) != int(np.prod(shape)):
            raise TfliteImportError(f"{where}: reshape changes the element count")
        x = self.t(ins[0])
        if x.activation()[0] != out.activation()[0] or x.scale != out.scale:
            raise TfliteImportError(f"{where}: reshape changes the quantization")
        self.tensor_of[outs[0]] = src
        self.aliases[outs[0]] = src

    def op_reshape(self, op, ins, outs, where):
        self._alias(ins, outs, where)

    def op_squeeze(self, op, ins, outs, where):
        self._alias(ins, outs, where)

    def op_quantize(self, op, ins, outs, where):
        x, out = self.t(ins[0]), self.t(outs[0])
        if x.type not in ("UINT8", "INT8") or out.type not in ("UINT8", "INT8"):
            raise TfliteImportError(f"{where}: QUANTIZE from {x.type} to {out.type} is not supported")
        # uint8 <-> int8 at the same scale with zero points 128 apart: the integer identity
        # (TFLite's Requantize fast path flips the top bit; its general path multiplies by exactly 1)
        if x.scale != out.scale or x.activation()[0] != out.activation()[0]:
            raise TfliteImportError(f"{where}: a QUANTIZE that rescales ({float(x.scale)} -> {float(out.scale)}, "
                                    f"zero point {x.zero_point} -> {out.zero_point}) needs a requantize op")
        self.tensor_of[outs[0]] = self.aliases[outs[0]] = self.source(ins[0], where)
        self.notes.append(f"{where}: {x.type} -> {out.type} at the same scale is the identity on q - 128")

    # -- naming and kinds
    def finish(self, labels, name):
        records = self.layers
        by_name = {r["name"]: r for r in records}
        consumers = {r["name"]: [] for r in records}
        for r in records:
            for i in r["inputs"]:
                if i in consumers:
                    consumers[i].append(r)

        def kind_of(r):
            role = r["role"]
            if role == "conv":
                if r["inputs"] != ("input",):
                    raise TfliteImportError("only the stem (the first convolution) may have a kernel > 1")
                return "stem"
            if role == "conv1x1":
                src = by_name.get(r["inputs"][0])
                if src is not None and src["role"] == "depthwise":
                    return "project"
                if any(c["role"] == "depthwise" for c in consumers[r["name"]]):
                    return "expand"
                if any(c["role"] in ("pool", "mean") for c in consumers[r["name"]]):
                    return "last_conv"
                raise TfliteImportError(f"cannot tell the role of 1x1 convolution {r['name']}")
            if role == "mean":
                return "depthwise"
            if role == "fc":
                return "classifier"
            return role  # depthwise, add, pool

        block, rename = 0, {"input": "input"}
        for r in records:
            kind = r["kind"] = kind_of(r)
            if kind == "expand" or (kind == "depthwise" and r["role"] == "depthwise"
                                    and by_name.get(r["inputs"][0], {}).get("kind") != "expand"):
                block += 1
            if kind in ("expand", "depthwise", "project", "add") and r["role"] != "mean":
                new = f"b{block}.{kind}"
            elif r["role"] == "mean":
                new = "pool.mean"
            else:
                new = kind
            if new in rename.values():
                new = f"{new}.{r['name']}"
            rename[r["name"]] = new

        layers, tensor_map = [], {}
        for r in records:
            fields = {k: v for k, v in r.items() if k not in ("role", "tflite_tensor", "name", "inputs", "kind")}
            layer = Layer(name=rename[r["name"]], kind=r["kind"], inputs=tuple(rename[i] for i in r["inputs"]),
                          **fields)
            layers.append(layer)
            tensor_map[layer.name] = int(r["tflite_tensor"])

        tin = self.input_tensor
        h, w = tin.shape[1:3]
        scale = float(tin.scale)
        # real = scale * (q - zp) with q = pixel - 128  ==  (pixel / 255 - mean) / std
        std = 1.0 / (255.0 * scale)
        mean = (128 + self.input_zp) / 255.0
        spec = InputSpec(height=int(h), width=int(w), resize=0, resample="bilinear", scale=scale,
                         zero_point=self.input_zp, mean=(mean,) * 3, std=(std,) * 3)
        classes = layers[-1].out_channels
        if labels is None:
            labels = tuple(f"class {i}" for i in range(classes))
        model = Model(name=name, input=spec, layers=layers, labels=tuple(labels), rounding="double",
                      arch={"family": "mobilenetv2", "source": "tflite"},
                      metadata={"tflite": {
                          "file": os.path.basename(self.path),
                          "input_tensor": int(self.graph.Inputs(0)),
                          "input_type": tin.type.lower(),
                          "logits_tensor": int(self.logits_tensor),
                          "tensors": tensor_map,
                          # other TFLite tensors holding the same integers (RESHAPE, same-scale QUANTIZE)
                          "aliases": {str(k): rename[v] for k, v in self.aliases.items()},
                          "notes": list(self.notes),
                          # layers that cannot match LiteRT's reference kernels bit for bit
                          "inexact": [name for name, t in tensor_map.items() if t in self.inexact_tensors],
                      }})
        return model


def import_tflite(path, labels=None, name=None):
    """Read a quantized TFLite MobileNetV2 -> a validated promref :class:`Model`.

    path: the ``.tflite`` file.  labels: a sequence of class names, or the
    path of a text file with one label a line (must match the number of
    outputs); default ``"class i"``.  name: the model name (default: the file
    name without extension).

    The model uses rounding ``"double"``; its input is promref's usual
    ``pixel - 128`` int8 image (``zero_point`` = the file's uint8 input zero
    point - 128).  ``model.metadata["tflite"]["tensors"]`` maps every layer to
    the TFLite tensor index it reproduces (uint8 tensors hold the promref
    value + 128).  Raises :class:`TfliteImportError` for anything promref
    cannot reproduce exactly.
    """
    path = os.fspath(path)
    builder = _Builder(path)
    builder.run()
    if isinstance(labels, (str, os.PathLike)):
        labels = read_labels(labels)
    if name is None:
        name = os.path.splitext(os.path.basename(path))[0]
    model = builder.finish(labels, name)
    return validate(model)
