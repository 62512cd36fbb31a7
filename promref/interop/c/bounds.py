"""What the C library can express, proved once at generation (docs/deploy-c.md, "Bounds").

``promref.validate`` has already proved the arithmetic bounds of docs/spec.md
("Overflow bound"): every accumulator, the "double" mode's pre-shift and the
add's rescaled sum fit in int32.  This module adds what the C types need on
top, so that the generated code checks nothing at run time; a model outside
these bounds is refused with a :class:`~promref.errors.PromrefError` naming the
layer and the reason.
"""
import numpy as np

from ...errors import PromrefError
from ...model import tensor_shapes

#: ops with a C kernel in csrc/prom_runtime.c
C_OPS = ("conv2d", "depthwise_conv2d", "pointwise_ternary", "fully_connected", "add", "global_avgpool")
INT32_MAX = (1 << 31) - 1
#: ternary partial sums P - N stay within 128 * Cin, which must fit in int32
MAX_TERNARY_CIN = 1 << 24
#: global_avgpool sums H * W int8 values in int32
MAX_POOL_POSITIONS = 1 << 24


class CExportError(PromrefError):
    """A model cannot be written as the C library (the message names the layer and the bound)."""


def _fail(index, layer, reason):
    raise CExportError(f"C export: layer {index} ({layer.name!r}, {layer.op}): {reason}")


def check_expressible(model):
    """Raise CExportError unless every layer fits the C kernels' types; returns the bounds proved.

    Assumes ``model`` passed ``promref.validate``.  Returns a list of
    (bound, why it holds) strings for the generated README.
    """
    for index, layer in enumerate(model.layers):
        if layer.op not in C_OPS:
            _fail(index, layer, f"no C kernel for op {layer.op!r} (have {', '.join(C_OPS)})")
    shapes = tensor_shapes(model)
    if int(np.prod(shapes["input"])) > INT32_MAX:
        raise CExportError(f"C export: input {shapes['input']} has more than 2**31 - 1 elements")
    for index, layer in enumerate(model.layers):
        size = int(np.prod(shapes[layer.name]))
        if size > INT32_MAX:
            _fail(index, layer, f"output {shapes[layer.name]} has {size} elements > 2**31 - 1 (int32 indices)")
        if layer.weights is not None and layer.weights.size > INT32_MAX:
            _fail(index, layer, f"{layer.weights.size} weights > 2**31 - 1 (int32 indices)")
        if layer.op == "pointwise_ternary":
            if layer.in_channels > MAX_TERNARY_CIN:
                _fail(index, layer, f"in_channels {layer.in_channels} > 2**24: the int32 sum P - N could wrap")
            if layer.weights.size > (1 << 32) - 1:
                _fail(index, layer, "more than 2**32 - 1 ternary codes (uint32 code index)")
        if layer.op == "global_avgpool":
            h, w, _ = shapes[layer.inputs[0]]
            if h * w > MAX_POOL_POSITIONS:
                _fail(index, layer, f"pools {h}x{w} > 2**24 positions: the int32 sum could wrap")
    return [
        "every int32 accumulator and partial sum of conv2d, depthwise_conv2d, fully_connected: "
        "|bias| + sum|w - zw| * X(zx) <= 2**31 - 1 (promref.validate, spec 'Overflow bound' rule 1)",
        "pointwise_ternary: |folded bias| <= that bound, |P - N| <= 128 * Cin with Cin <= 2**24",
        "double rounding: acc << shift fits in int32 for every positive shift (rule 2)",
        "add: (x - z) << L fits (L <= 23, rule 3), ra + rb and its pre-shift fit (rules 4-6)",
        "z_out + scale(acc) is summed in int64, so it cannot wrap (spec 'Order of the final additions')",
        "every tensor and weight array has at most 2**31 - 1 elements (int32 indices)",
        "global_avgpool: H * W <= 2**24, so |T| <= 128 * H * W fits in int32",
        "multipliers in [0, 2**31 - 1], shifts in [-31, 30] (promref.validate)",
    ]
