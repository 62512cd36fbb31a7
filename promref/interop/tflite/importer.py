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
import os

from ...errors import PromrefError
from ...model import InputSpec, Layer, Model
from ...validate import validate
from .import_ops import OP_HANDLERS
from .naming import layer_kinds, layer_names
from .prepare import TfliteImportError, activation_range
from .reader import read_labels, read_tflite

__all__ = ["import_tflite", "TfliteImportError", "Builder"]


class Builder:
    """Walks the operators in order and emits promref layer records (the op handlers call back here)."""

    def __init__(self, graph):
        self.graph = graph
        self.path = graph.path
        self.tensors = graph.tensors
        if len(graph.inputs) != 1:
            raise TfliteImportError(f"{self.path}: expected one graph input, found {len(graph.inputs)}")
        self.layers = []          # dicts, finalised into Layer records at the end
        self.tensor_of = {}       # tflite tensor index -> promref tensor name
        self.shape_of = {"input": None}  # promref tensor name -> (H, W, C) or (C,)
        self.zp_of = {}           # promref tensor name -> int8 zero point
        self.notes = []
        self.aliases = {}         # tflite tensors that are the same integers as a promref tensor
        self.inexact_tensors = []  # tflite tensors whose op promref can only approximate
        self.logits_tensor = None

    # -- helpers for the handlers
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

    # -- the graph input
    def add_input(self):
        index = self.graph.inputs[0]
        tensor = self.t(index)
        if len(tensor.shape) != 4 or tensor.shape[0] != 1 or tensor.shape[3] != 3:
            raise TfliteImportError(f"input {tensor.name!r}: expected shape [1, H, W, 3], got {list(tensor.shape)}")
        zp, _, _, _ = tensor.activation()
        self.input_tensor = tensor
        self.input_zp = zp
        self.tensor_of[index] = "input"
        self.shape_of["input"] = tensor.shape[1:]
        self.zp_of["input"] = zp

    # -- ops, through the op table
    def run(self):
        self.add_input()
        for op in self.graph.operators:
            if op.opname in ("SOFTMAX", "DEQUANTIZE"):
                if not op.inputs or op.inputs[0] < 0:
                    raise TfliteImportError(f"{op.where}: has no input")
                self.logits_tensor = op.inputs[0]
                self.notes.append(f"the integer graph ends at {op.where}; it and later operators run outside promref")
                break
            handler = OP_HANDLERS.get(op.opname)
            if handler is None:
                raise TfliteImportError(f"{op.where}: operator {op.opname} is not supported")
            handler(self, op)
        if self.logits_tensor is None:
            if not self.graph.outputs:
                raise TfliteImportError(f"{self.path}: the graph has no output")
            self.logits_tensor = self.graph.outputs[0]
        if not self.layers or self.tensor_of.get(self.logits_tensor) != self.layers[-1]["name"]:
            raise TfliteImportError("the logits must be the output of the last imported layer")

    # -- the model
    def finish(self, labels, name):
        """The emitted records -> an (unvalidated) :class:`Model` with its ``metadata["tflite"]`` map."""
        records = self.layers
        kinds = layer_kinds(records)
        rename = layer_names(records, kinds)
        layers, tensor_map = [], {}
        for r, kind in zip(records, kinds):
            fields = {k: v for k, v in r.items() if k not in ("role", "tflite_tensor", "name", "inputs")}
            layer = Layer(name=rename[r["name"]], kind=kind, inputs=tuple(rename[i] for i in r["inputs"]),
                          **fields)
            layers.append(layer)
            tensor_map[layer.name] = int(r["tflite_tensor"])
        if labels is None:
            labels = tuple(f"class {i}" for i in range(layers[-1].out_channels))
        return Model(name=name, input=input_spec(self.input_tensor, self.input_zp), layers=layers,
                     labels=tuple(labels), rounding="double", arch={"family": "mobilenetv2", "source": "tflite"},
                     metadata={"tflite": {
                         "file": os.path.basename(self.path),
                         "input_tensor": int(self.graph.inputs[0]),
                         "input_type": self.input_tensor.type.lower(),
                         "logits_tensor": int(self.logits_tensor),
                         "tensors": tensor_map,
                         # other TFLite tensors holding the same integers (RESHAPE, same-scale QUANTIZE)
                         "aliases": {str(k): rename[v] for k, v in self.aliases.items()},
                         "notes": list(self.notes),
                         # layers that cannot match LiteRT's reference kernels bit for bit
                         "inexact": [name for name, t in tensor_map.items() if t in self.inexact_tensors],
                     }})


def input_spec(tensor, zero_point):
    """The graph's [1, H, W, 3] input tensor and its int8 zero point -> promref's :class:`InputSpec`."""
    h, w = tensor.shape[1:3]
    scale = float(tensor.scale)
    # real = scale * (q - zp) with q = pixel - 128  ==  (pixel / 255 - mean) / std
    std = 1.0 / (255.0 * scale)
    mean = (128 + zero_point) / 255.0
    return InputSpec(height=int(h), width=int(w), resize=0, resample="bilinear", scale=scale,
                     zero_point=zero_point, mean=(mean,) * 3, std=(std,) * 3)


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
    builder = Builder(read_tflite(path))
    builder.run()
    if isinstance(labels, (str, os.PathLike)):
        labels = read_labels(labels)
    if name is None:
        name = os.path.splitext(os.path.basename(path))[0]
    model = builder.finish(labels, name)
    try:
        return validate(model)
    except TfliteImportError:
        raise
    except PromrefError as e:  # e.g. a corrupted scale that passes TFLite's rules but not promref's
        raise TfliteImportError(f"{path}: the imported model is invalid: {e}") from e
