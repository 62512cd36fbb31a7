"""int8 convolution (the stem 3x3 and int8 1x1 convs): see docs/spec.md, "conv2d"."""
import numpy as np

from ._common import requantize_output, output_size, pad_with_zero_point


def conv2d_accumulate(x, layer, in_zero_point):
    """acc[n, i, j, o] = bias[o] + sum_{a, b, c} (w[o, a, b, c] - zw) * (xpad[n, s*i+a, s*j+b, c] - zx).

    x: int8 [N, H, W, Cin]; layer.weights: int8 [Cout, kh, kw, Cin].
    Padding positions hold zx, so they add nothing.  Returns int64 [N, Ho, Wo, Cout].
    """
    w = layer.weights.astype(np.int64) - layer.weight_zero_point
    cout, kh, kw, cin = w.shape
    top, bottom, left, right = layer.padding
    s = layer.stride
    xp = pad_with_zero_point(x, layer.padding, in_zero_point) - in_zero_point
    n, h, wd, _ = x.shape
    ho = output_size(h, kh, s, top, bottom)
    wo = output_size(wd, kw, s, left, right)
    acc = np.broadcast_to(layer.bias.astype(np.int64), (n, ho, wo, cout)).copy()
    for a in range(kh):          # one tap of the kernel at a time:
        for b in range(kw):      # a strided window times a [Cin, Cout] matrix
            window = xp[:, a:a + s * (ho - 1) + 1:s, b:b + s * (wo - 1) + 1:s, :]
            acc += window @ w[:, a, b, :].T
    return acc


def conv2d(x, layer, in_zero_point, rounding):
    """int8 [N, H, W, Cin] -> int8 [N, Ho, Wo, Cout]: accumulate, then requantize."""
    return requantize_output(conv2d_accumulate(x, layer, in_zero_point), layer, rounding)
