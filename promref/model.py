"""What a promref model is: input description, a flat list of layer records,
and how to run it (architectures, the layer lists a model is built from, are
in :mod:`promref.architectures`).

A model is data, not code: ``Model.layers`` lists :class:`Layer` records in
execution order; each names the layers it reads (``"input"`` is the image).
The integer semantics of every op are in docs/spec.md; ``promref.engine``
runs the list on a backend.

Array layouts (all activations are int8, NHWC):

=================== ====================== ===================================
op                  ``weights``            notes
=================== ====================== ===================================
conv2d              int8 [Cout, kh, kw, Cin] stem 3x3, int8 1x1 convs
pointwise_ternary   int8 [Cout, Cin] in {-1, 0, 1} 1x1 conv, additions only
depthwise_conv2d    int8 [kh, kw, C]        one filter per channel
fully_connected     int8 [Cout, Cin]        the classifier
add                 --                      residual add, requantizes both inputs
global_avgpool      --                      mean over H and W, same scale/zero point
=================== ====================== ===================================
"""
from dataclasses import dataclass, field, fields
from typing import Optional

import numpy as np

from . import arith

#: layer kinds (the role in the network) and the ops they may use
KINDS = ("stem", "expand", "depthwise", "project", "last_conv", "add", "pool", "classifier")
OPS = ("conv2d", "pointwise_ternary", "depthwise_conv2d", "fully_connected", "add", "global_avgpool")
WEIGHTED_OPS = ("conv2d", "pointwise_ternary", "depthwise_conv2d", "fully_connected")

#: Python annotation -> the JSON type a weights file stores it as
_JSON_KINDS = {str: "str", int: "int", float: "float", tuple: "list"}


def _stored(position):
    """Field metadata: stored in the weights file's JSON layer record, at ``position``
    (the file's key order, fixed by format version 1)."""
    return {"record": position}


def record_fields(cls):
    """{field name: JSON kind ('str', 'int', 'float', 'list')} of the scalar fields of
    :class:`Layer` or :class:`InputSpec` that a weights file stores in JSON, in the
    file's order.  The schema lives in the dataclasses; promref.format derives its
    field lists from here.  (Layer's arrays are stored as .npy members.)"""
    stored = [f for f in fields(cls) if cls is InputSpec or "record" in f.metadata]
    if cls is not InputSpec:
        stored.sort(key=lambda f: f.metadata["record"])
    return {f.name: _JSON_KINDS[f.type] for f in stored}


@dataclass
class InputSpec:
    """How an RGB uint8 image becomes the int8 input tensor [H, W, 3].

    Pixels are resized (shorter side to ``resize``, then a centre crop of
    ``height`` x ``width``; ``resize == 0`` resizes straight to that size) and
    quantized as ``q = pixel - 128``.  The network reads them as the real
    values ``scale * (q - zero_point)``; ``mean``/``std`` record the float
    normalisation the network was trained with (already folded into the stem).
    """
    height: int
    width: int
    resize: int = 0
    resample: str = "bilinear"
    scale: float = 1.0 / 255.0
    zero_point: int = -128
    mean: tuple = (0.0, 0.0, 0.0)
    std: tuple = (1.0, 1.0, 1.0)


@dataclass(eq=False)
class Layer:
    """One op of the integer graph.

    Integer fields (``bias``, ``multiplier``, ``shift``, zero points, clamps)
    define the arithmetic; float fields (``out_scale``, ``weight_scale``) only
    document it (dequantisation for softmax, energy reports, exporters).

    Shapes: ``bias``, ``multiplier``, ``shift`` are [Cout] for weighted ops;
    for ``add`` ``multiplier`` and ``shift`` are [3] (input a, input b, output).
    """
    name: str = field(metadata=_stored(0))
    kind: str = field(metadata=_stored(1))
    op: str = field(metadata=_stored(2))
    inputs: tuple = field(metadata=_stored(3))
    in_channels: int = field(metadata=_stored(4))
    out_channels: int = field(metadata=_stored(5))
    out_zero_point: int = field(metadata=_stored(10))
    out_min: int = field(default=arith.INT8_MIN, metadata=_stored(11))
    out_max: int = field(default=arith.INT8_MAX, metadata=_stored(12))
    out_scale: float = field(default=1.0, metadata=_stored(9))
    kernel: int = field(default=1, metadata=_stored(6))
    stride: int = field(default=1, metadata=_stored(7))
    padding: tuple = field(default=(0, 0, 0, 0), metadata=_stored(8))  # top, bottom, left, right
    weights: Optional[np.ndarray] = None
    weight_zero_point: int = field(default=0, metadata=_stored(13))
    weight_scale: Optional[np.ndarray] = None
    bias: Optional[np.ndarray] = None
    multiplier: Optional[np.ndarray] = None
    shift: Optional[np.ndarray] = None
    left_shift: int = field(default=0, metadata=_stored(14))  # add only: inputs are scaled by 2**left_shift first
    cache: dict = field(default_factory=dict, repr=False)  # backends' derived arrays

    @property
    def weight_format(self):
        """'ternary', 'int8', or 'none' for ops without weights."""
        if self.op == "pointwise_ternary":
            return "ternary"
        return "int8" if self.op in WEIGHTED_OPS else "none"


@dataclass(eq=False)
class Model:
    """A quantized network: input spec, rounding mode, labels and layers."""
    name: str
    input: InputSpec
    layers: list
    labels: tuple
    rounding: str = arith.DEFAULT_ROUNDING
    arch: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    def layer(self, name):
        """The layer called ``name`` (KeyError if absent)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def output(self):
        """The last layer, whose output is the int8 logits."""
        return self.layers[-1]

    @property
    def num_classes(self):
        return self.output.out_channels

    def zero_point_of(self, name):
        """Zero point of the tensor called ``name`` ('input' or a layer name)."""
        return self.input.zero_point if name == "input" else self.layer(name).out_zero_point

    def forward(self, x, backend="numba", trace=False):
        """Run a batch of quantized images int8 [N, H, W, 3] -> int8 logits [N, classes].

        With ``trace=True`` returns ``(logits, {layer name: int8 output})``.
        """
        from .engine import run
        return run(self, x, backend=backend, trace=trace)


def tensor_shapes(model):
    """{tensor name: shape of one image's tensor}: (H, W, C) maps, (C,) vectors.

    Assumes a validated model (the validator checks the same geometry).
    """
    spec = model.input
    shapes = {"input": (spec.height, spec.width, 3)}
    for layer in model.layers:
        shape = shapes[layer.inputs[0]]
        if layer.op in ("conv2d", "depthwise_conv2d", "pointwise_ternary") and len(shape) == 3:
            top, bottom, left, right = layer.padding
            shape = ((shape[0] + top + bottom - layer.kernel) // layer.stride + 1,
                     (shape[1] + left + right - layer.kernel) // layer.stride + 1, layer.out_channels)
        elif layer.op in ("global_avgpool", "fully_connected"):
            shape = (layer.out_channels,)
        shapes[layer.name] = shape
    return shapes
