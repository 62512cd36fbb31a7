"""int8 depthwise 3x3 convolution: see docs/spec.md, "depthwise_conv2d"."""
import numpy as np

from ._common import output_size, pad_with_zero_point, requantize_output


def depthwise_conv2d_accumulate(x, layer, in_zero_point):
    """acc[n, i, j, c] = bias[c] + sum_{a, b} (w[a, b, c] - zw) * (xpad[n, s*i+a, s*j+b, c] - zx).

    x: int8 [N, H, W, C]; layer.weights: int8 [kh, kw, C].  Returns int64 [N, Ho, Wo, C].
    """
    w = layer.weights.astype(np.int64) - layer.weight_zero_point
    kh, kw, c = w.shape
    top, bottom, left, right = layer.padding
    s = layer.stride
    xp = pad_with_zero_point(x, layer.padding, in_zero_point) - in_zero_point
    n, h, wd, _ = x.shape
    ho = output_size(h, kh, s, top, bottom)
    wo = output_size(wd, kw, s, left, right)
    acc = np.broadcast_to(layer.bias.astype(np.int64), (n, ho, wo, c)).copy()
    for a in range(kh):
        for b in range(kw):
            acc += w[a, b, :] * xp[:, a:a + s * (ho - 1) + 1:s, b:b + s * (wo - 1) + 1:s, :]
    return acc


def depthwise_conv2d(x, layer, in_zero_point, rounding):
    """int8 [N, H, W, C] -> int8 [N, Ho, Wo, C]."""
    return requantize_output(depthwise_conv2d_accumulate(x, layer, in_zero_point), layer, rounding)
