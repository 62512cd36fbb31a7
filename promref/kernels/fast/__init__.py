"""The Numba backend: the reference's ops, compiled, parallel, bit-identical.

One op per file, same signatures as :mod:`promref.kernels.reference`::

    op(x, layer, in_zero_point, rounding) -> int8 output
    add(a, b, layer, zero_point_a, zero_point_b, rounding) -> int8 output

Shared design (see each file for its own):

* all arithmetic that rounds is :mod:`promref.arith` itself, called from the
  compiled code; the kernels only reorder exact integer additions;
* accumulators are int32 (int16 for short ternary partial sums), which the
  loader's overflow proof (``validate.accumulator_bound``) makes exact;
* derived arrays (CSR index lists, folded biases, widened weights) are built
  once per layer and kept in ``layer.cache``;
* every kernel splits its work into independent jobs that write disjoint
  outputs, spread over ``numba.prange`` workers, so results do not depend on
  the number of threads;
* compiled once per dtype/rank signature (``cache=True``), never per shape.
"""
from .add import add
from .conv2d import conv2d
from .depthwise_conv2d import depthwise_conv2d
from .fully_connected import fully_connected
from .global_avgpool import global_avgpool
from .pointwise_ternary import pointwise_ternary

#: op name -> kernel, the same names as :data:`promref.kernels.reference.OPS`
OPS = {
    "add": add,
    "conv2d": conv2d,
    "depthwise_conv2d": depthwise_conv2d,
    "fully_connected": fully_connected,
    "global_avgpool": global_avgpool,
    "pointwise_ternary": pointwise_ternary,
}

__all__ = ["OPS"] + list(OPS)
