"""Ternary 1x1 convolution with additions only: see docs/spec.md, "pointwise_ternary"."""
import numpy as np

from ._common import requantize_output


def folded_bias(layer, in_zero_point):
    """bias'[o] = bias[o] - zx * sum_c t[o, c]: the input zero point moved into the bias,
    so the loop only adds or subtracts raw int8 inputs.  int64 [Cout]."""
    return layer.bias.astype(np.int64) - in_zero_point * layer.weights.astype(np.int64).sum(axis=1)


def pointwise_ternary_accumulate(x, layer, in_zero_point):
    """acc[n, i, j, o] = bias'[o] + sum_{c: t=+1} x[n, i, j, c] - sum_{c: t=-1} x[n, i, j, c].

    x: int8 [N, H, W, Cin]; layer.weights: int8 [Cout, Cin] in {-1, 0, 1}.
    Equal to bias[o] + sum_c t[o, c] * (x[..., c] - zx).  Returns int64 [N, H, W, Cout].  No
    multiplication touches the data.
    """
    xs = x.astype(np.int64)
    acc = np.empty(x.shape[:-1] + (layer.out_channels,), np.int64)
    for o, row in enumerate(layer.weights):
        plus = xs[..., row == 1].sum(axis=-1)     # the inputs this output adds ...
        minus = xs[..., row == -1].sum(axis=-1)   # ... and the ones it subtracts
        acc[..., o] = plus - minus
    return acc + folded_bias(layer, in_zero_point)


def pointwise_ternary(x, layer, in_zero_point, rounding):
    """int8 [N, H, W, Cin] -> int8 [N, H, W, Cout]."""
    return requantize_output(pointwise_ternary_accumulate(x, layer, in_zero_point), layer, rounding)
