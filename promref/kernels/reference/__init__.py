"""The NumPy reference backend: one op per file, each a direct transcription
of its paragraph in docs/spec.md.  Clarity first; int64 throughout, so no
intermediate can wrap."""
from ._common import requantize_output
from .add import add
from .conv2d import conv2d, conv2d_accumulate
from .depthwise_conv2d import depthwise_conv2d, depthwise_conv2d_accumulate
from .fully_connected import fully_connected, fully_connected_accumulate
from .global_avgpool import global_avgpool
from .pointwise_ternary import pointwise_ternary, pointwise_ternary_accumulate

#: op name -> kernel: the table the engine dispatches through
OPS = {
    "add": add,
    "conv2d": conv2d,
    "depthwise_conv2d": depthwise_conv2d,
    "fully_connected": fully_connected,
    "global_avgpool": global_avgpool,
    "pointwise_ternary": pointwise_ternary,
}

#: op name -> its exact int64 accumulator (bias included), for the ops that requantize one:
#: ``acc = ACCUMULATE[op](x, layer, in_zero_point)``; the kernel is ``requantize(acc)``
ACCUMULATE = {
    "conv2d": conv2d_accumulate,
    "depthwise_conv2d": depthwise_conv2d_accumulate,
    "fully_connected": fully_connected_accumulate,
    "pointwise_ternary": pointwise_ternary_accumulate,
}

__all__ = ["OPS", "ACCUMULATE", "requantize_output"] + list(OPS)
