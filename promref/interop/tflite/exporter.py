"""promref model -> ``.tflite`` that LiteRT's reference kernels and TFLite Micro run exactly like promref.

Op mapping (every tensor int8, NHWC, batch 1; each layer's output tensor is
named after the layer, so a runner finds every layer's output by name):

==================== =========================================================
promref op           TFLite
==================== =========================================================
conv2d               CONV_2D, filter int8 OHWI [Cout, kh, kw, Cin], per channel
pointwise_ternary    CONV_2D 1x1, filter int8 {-1, 0, 1} [Cout, 1, 1, Cin]
                     (or INT4, packed two a byte, with ``ternary_int4``)
depthwise_conv2d     DEPTHWISE_CONV_2D, filter int8 [1, kh, kw, C], axis 3
fully_connected      CONV_2D 1x1 on the [1, 1, 1, Cin] vector (LiteRT's
                     reference FULLY_CONNECTED requantizes in double floating
                     point, not with the integer multiplier)
add                  ADD (left shift 20, TFLite's 8-bit ADD)
global_avgpool       AVERAGE_POOL_2D, filter = the map, VALID -> [1, 1, 1, C]
==================== =========================================================

Padding: SAME or VALID where promref's (top, bottom, left, right) equals
TFLite's; otherwise a PAD (which pads int8 with the zero point, the real 0)
and a VALID convolution.  Biases are int32 with float32 scales
``s_in * s_w`` and zero point 0.  Clamps are fused activations
(NONE, RELU, RELU6, RELU_N1_TO_1) whose TFLite range equals the layer's.
Scales come from :func:`.scales.plan_scales`.

Refused with :class:`TfliteExportError` naming the layer: rounding other than
"double" (LiteRT's reference kernels round twice), weight zero points other
than 0, a clamp no fused activation gives, multipliers no float32 scale
reproduces.
"""
import os
from dataclasses import dataclass

import numpy as np

from ...model import tensor_shapes
from .prepare import same_padding
from .scales import TfliteExportError, fused_activation, plan_scales
from .writer import FlatbufferGraph

__all__ = ["TfliteExport", "export_tflite", "build_tflite", "TfliteExportError", "pack_int4"]

PADDING_SAME, PADDING_VALID = 0, 1
ACTIVATION_CODES = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}


@dataclass
class TfliteExport:
    """A written model: the file's bytes and {promref layer name: TFLite tensor index}."""
    data: bytes
    tensors: dict
    model: object  # the promref model the file reproduces


class _Writer:
    """Emits one promref layer after another into a FlatbufferGraph."""

    def __init__(self, model, plan, ternary_int4=False):
        self.model, self.plan, self.g = model, plan, FlatbufferGraph()
        self.ternary_int4 = ternary_int4
        self.shapes = tensor_shapes(model)
        self.index = {}  # promref tensor name -> TFLite tensor index

    def activation_tensor(self, name, shape):
        zp = self.model.zero_point_of(name)
        t = self.g.tensor(shape, "INT8", np.float32(self.plan.tensor[name]), zp, name=name)
        self.index[name] = t
        return t

    def tflite_shape(self, name):
        """A promref tensor's TFLite shape: maps [1, H, W, C], vectors [1, 1, 1, C]."""
        shape = self.shapes[name]
        return [1, *shape] if len(shape) == 3 else [1, 1, 1, shape[0]]

    def activation_code(self, layer):
        name = fused_activation(layer, self.plan.tensor[layer.name])
        if name is None:
            raise TfliteExportError(f"layer {layer.name!r}: the clamp [{layer.out_min}, {layer.out_max}] is no "
                                    "TFLite fused activation at this scale (use the TFLite-derived variant)")
        return ACTIVATION_CODES[name]

    def padded_input(self, layer):
        """(input tensor, TFLite padding code): SAME / VALID, or a PAD followed by VALID."""
        src = layer.inputs[0]
        h, w = self.shapes[src][:2]
        if tuple(layer.padding) == (0, 0, 0, 0):
            return self.index[src], PADDING_VALID
        same = [same_padding(size, layer.kernel, layer.stride)[:2] for size in (h, w)]
        if tuple(layer.padding) == (*same[0], *same[1]):
            return self.index[src], PADDING_SAME
        top, bottom, left, right = layer.padding
        pads = self.g.tensor([4, 2], "INT32", data=np.array([[0, 0], [top, bottom], [left, right], [0, 0]], np.int32),
                             name=f"{layer.name}.paddings")
        out = self.g.tensor([1, h + top + bottom, w + left + right, self.shapes[src][2]], "INT8",
                            np.float32(self.plan.tensor[src]), self.model.zero_point_of(src), name=f"{layer.name}.pad")
        self.g.op("PAD", [self.index[src], pads], [out], "PadOptions")
        return out, PADDING_VALID

    def filter_and_bias(self, layer, weights, qdim):
        if layer.weight_zero_point != 0:
            raise TfliteExportError(f"layer {layer.name!r}: TFLite int8 filters need weight zero point 0, "
                                    f"the model has {layer.weight_zero_point}")
        s_w = self.plan.weight[layer.name]
        s_in = np.float32(self.plan.tensor[layer.inputs[0]])
        cout = s_w.size
        if self.ternary_int4 and layer.op == "pointwise_ternary":
            kind, data = "INT4", pack_int4(weights)
        else:
            kind, data = "INT8", np.ascontiguousarray(weights, np.int8)
        w = self.g.tensor(list(weights.shape), kind, s_w, np.zeros(cout, np.int64), qdim=qdim, data=data,
                          name=f"{layer.name}.weights")
        b = self.g.tensor([cout], "INT32", (s_in * s_w).astype(np.float32), np.zeros(cout, np.int64),
                          data=np.asarray(layer.bias, np.int32), name=f"{layer.name}.bias")
        return w, b

    def conv(self, layer):
        """conv2d, pointwise_ternary and the classifier: CONV_2D."""
        cin, cout = layer.in_channels, layer.out_channels
        if layer.op == "conv2d":
            weights = layer.weights
        else:  # pointwise_ternary [Cout, Cin] and fully_connected [Cout, Cin]: a 1x1 conv
            weights = layer.weights.reshape(cout, 1, 1, cin)
        if layer.op == "fully_connected":
            src, padding, stride = self.index[layer.inputs[0]], PADDING_VALID, 1
        else:
            (src, padding), stride = self.padded_input(layer), layer.stride
        w, b = self.filter_and_bias(layer, weights, 0)
        out = self.activation_tensor(layer.name, self.tflite_shape(layer.name))
        self.g.op("CONV_2D", [src, w, b], [out], "Conv2DOptions", Padding=padding, StrideW=stride, StrideH=stride,
                  FusedActivationFunction=self.activation_code(layer), DilationWFactor=1, DilationHFactor=1)

    def depthwise(self, layer):
        src, padding = self.padded_input(layer)
        w, b = self.filter_and_bias(layer, layer.weights.reshape(1, *layer.weights.shape), 3)
        out = self.activation_tensor(layer.name, self.tflite_shape(layer.name))
        self.g.op("DEPTHWISE_CONV_2D", [src, w, b], [out], "DepthwiseConv2DOptions", Padding=padding,
                  StrideW=layer.stride, StrideH=layer.stride, DepthMultiplier=1,
                  FusedActivationFunction=self.activation_code(layer), DilationWFactor=1, DilationHFactor=1)

    def add(self, layer):
        out = self.activation_tensor(layer.name, self.tflite_shape(layer.name))
        self.g.op("ADD", [self.index[i] for i in layer.inputs], [out], "AddOptions",
                  FusedActivationFunction=self.activation_code(layer))

    def pool(self, layer):
        h, w = self.shapes[layer.inputs[0]][:2]
        out = self.activation_tensor(layer.name, self.tflite_shape(layer.name))
        self.g.op("AVERAGE_POOL_2D", [self.index[layer.inputs[0]]], [out], "Pool2DOptions", Padding=PADDING_VALID,
                  StrideW=1, StrideH=1, FilterWidth=w, FilterHeight=h, FusedActivationFunction=0)


def pack_int4(values):
    """int8 values in [-8, 7] (any shape) -> TFLite's packed INT4 bytes: row-major, two a byte, the
    first in the low nibble, the last byte padded with 0."""
    nibbles = (np.asarray(values, np.int8).ravel() & 0xF).astype(np.uint8)
    if nibbles.size % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8)


OP_WRITERS = {"conv2d": _Writer.conv, "pointwise_ternary": _Writer.conv, "fully_connected": _Writer.conv,
              "depthwise_conv2d": _Writer.depthwise, "add": _Writer.add, "global_avgpool": _Writer.pool}


def build_tflite(model, ternary_int4=False):
    """promref Model (rounding "double") -> :class:`TfliteExport` (or TfliteExportError).

    ternary_int4: store ternary filters as TFLite INT4 (packed, two a byte) instead of
    int8; LiteRT's reference conv and TFLite Micro unpack them to the same int8 values.
    """
    if model.rounding != "double":
        raise TfliteExportError(f"model {model.name!r} uses rounding {model.rounding!r}; LiteRT's reference "
                                "kernels round twice (\"double\"): export a double-rounding model, or its "
                                "TFLite-derived variant (promref export tflite --tflite-derived)")
    plan = plan_scales(model)
    writer = _Writer(model, plan, ternary_int4)
    spec = model.input
    graph_input = writer.activation_tensor("input", [1, spec.height, spec.width, 3])
    for layer in model.layers:
        OP_WRITERS[layer.op](writer, layer)
    data = writer.g.build([graph_input], [writer.index[model.layers[-1].name]])
    return TfliteExport(data, {layer.name: writer.index[layer.name] for layer in model.layers}, model)


def export_tflite(model, path, derived=False, ternary_int4=False):
    """Write ``model`` as a ``.tflite`` file -> :class:`TfliteExport`.

    derived: export :func:`.scales.tflite_derived` of the model (rounding
    "double", integers re-derived from float32 scales) instead of refusing a
    model whose integers TFLite cannot derive; ``result.model`` is then that
    twin, the model the file reproduces bit for bit.
    """
    if derived:
        from .scales import tflite_derived
        model, _ = tflite_derived(model)
    result = build_tflite(model, ternary_int4)
    with open(os.fspath(path), "wb") as f:
        f.write(result.data)
    return result
