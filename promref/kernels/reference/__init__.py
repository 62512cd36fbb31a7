"""The NumPy reference backend: one op per file, each a direct transcription
of its paragraph in docs/spec.md.  Clarity first; int64 throughout, so no
intermediate can wrap."""
from .add import add
from .conv2d import conv2d
from .depthwise_conv2d import depthwise_conv2d
from .fully_connected import fully_connected
from .global_avgpool import global_avgpool
from .pointwise_ternary import pointwise_ternary

__all__ = ["add", "conv2d", "depthwise_conv2d", "fully_connected", "global_avgpool", "pointwise_ternary"]
