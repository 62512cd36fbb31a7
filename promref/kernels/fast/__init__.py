"""The Numba backend: the reference's ops, compiled, parallel, bit-identical.

One op per file.  Each op has two faces:

* ``OPS`` -- the reference's signatures and NHWC tensors::

      op(x, layer, in_zero_point, rounding) -> int8 output
      add(a, b, layer, zero_point_a, zero_point_b, rounding) -> int8 output

* ``CHANNEL_MAJOR_OPS`` -- the same signatures on channel-major tensors
  ``[C, N, H, W]`` (``_layout``), what the engine runs: it converts the
  model input once, and ``OPS`` is each of these between two conversions.
  ``FUSED_OPS`` are the 1x1 convolutions that also take the residual add
  that follows them (``residual=``, ``table=``; see ``engine.fusion_plan``).

Shared design (see each file for its own):

* all arithmetic that rounds is :mod:`promref.arith` itself, called from the
  compiled code (``_requant``); the kernels only reorder exact integer additions;
* accumulators are int32 (int16 for short ternary partial sums), which the
  loader's overflow proof (``validate.accumulator_bound``) makes exact;
* derived arrays (CSR index lists, folded biases, widened weights) are built
  once per layer and kept in ``layer.cache`` (``_layer_cache``);
* every kernel splits its work into independent jobs that write disjoint
  outputs, spread over ``numba.prange`` workers, so results do not depend on
  the number of threads (``_options``);
* compiled once per dtype/rank signature (``cache=True``, ``_disk_cache``), never per shape.
"""
from ._layout import to_channel_major, to_nhwc
from .add import add, residual_table
from .conv2d import conv2d, conv2d_cm
from .depthwise_conv2d import depthwise_conv2d, depthwise_conv2d_cm
from .fully_connected import fully_connected
from .global_avgpool import global_avgpool, global_avgpool_cm
from .pointwise_ternary import pointwise_ternary, pointwise_ternary_cm

#: op name -> kernel on NHWC tensors, the same names as :data:`promref.kernels.reference.OPS`
OPS = {
    "add": add,
    "conv2d": conv2d,
    "depthwise_conv2d": depthwise_conv2d,
    "fully_connected": fully_connected,
    "global_avgpool": global_avgpool,
    "pointwise_ternary": pointwise_ternary,
}

#: op name -> kernel on channel-major [C, N, H, W] tensors (2-D tensors [N, C] as in OPS)
CHANNEL_MAJOR_OPS = {
    "add": add,
    "conv2d": conv2d_cm,
    "depthwise_conv2d": depthwise_conv2d_cm,
    "fully_connected": fully_connected,
    "global_avgpool": global_avgpool_cm,
    "pointwise_ternary": pointwise_ternary_cm,
}

#: ops that can fuse the residual add after them (1x1 stride 1 only, for conv2d)
FUSED_OPS = {"conv2d": conv2d_cm, "pointwise_ternary": pointwise_ternary_cm}

__all__ = ["OPS", "CHANNEL_MAJOR_OPS", "FUSED_OPS", "residual_table", "to_channel_major", "to_nhwc"] + list(OPS)
