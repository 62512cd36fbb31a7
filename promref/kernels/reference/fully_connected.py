"""int8 fully connected layer (the classifier): see docs/spec.md, "fully_connected"."""
import numpy as np

from ._common import requantize_output


def fully_connected_accumulate(x, layer, in_zero_point):
    """acc[n, o] = bias[o] + sum_c (w[o, c] - zw) * (x[n, c] - zx).

    x: int8 [N, Cin]; layer.weights: int8 [Cout, Cin].  Returns int64 [N, Cout]."""
    w = layer.weights.astype(np.int64) - layer.weight_zero_point
    return layer.bias.astype(np.int64) + (x.astype(np.int64) - in_zero_point) @ w.T


def fully_connected(x, layer, in_zero_point, rounding):
    """int8 [N, Cin] -> int8 [N, Cout]."""
    return requantize_output(fully_connected_accumulate(x, layer, in_zero_point), layer, rounding)
