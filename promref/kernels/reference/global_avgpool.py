"""Global average pool: see docs/spec.md, "global_avgpool"."""
import numpy as np

from ... import arith


def global_avgpool(x, layer, in_zero_point, rounding):
    """int8 [N, H, W, C] -> int8 [N, C]: the integer mean of the raw int8 values
    over H x W, rounded half away from zero.  The output keeps the input's scale
    and zero point, so no requantization (and no rounding mode) is involved."""
    n, h, w, c = x.shape
    total = x.astype(np.int64).sum(axis=(1, 2))
    return arith.global_average(total, h * w).astype(np.int8)
