"""The fast backend's activation layout: channel-major ``[C, N, H, W]``, and the NHWC conversions.

Inside the Numba backend every spatial tensor is stored channel-major over
the whole batch: channel c is one contiguous plane of ``N * H * W`` int8
values (images one after the other, rows inside each image).  Then

* a 1x1 convolution reads and writes whole rows (one input or output channel
  over a run of pixels) with no transposes, and a pixel block may span images;
* a depthwise 3x3 convolution is a stencil over one channel plane;
* the residual add and its fused form are elementwise in any layout.

The engine converts the model input once (``to_channel_major``) and the
trace back (``to_nhwc``); the NHWC op table (``fast.OPS``) wraps each
channel-major kernel in the two conversions.
"""
import numba
import numpy as np
from numba import prange

from ._options import JIT, workers_for

#: the side of the square tiles the transposes move (both arrays' tiles stay in L1)
TILE = 64


@numba.njit(**JIT)
def _transpose(x, workers, out):
    """out[c, p] = x[p, c] for int8 x [P, C]; jobs are TILE-row bands of ``x``."""
    pixels, channels = x.shape
    bands = (pixels + TILE - 1) // TILE
    for worker in prange(workers):
        for band in range(worker, bands, workers):
            p0 = band * TILE
            p1 = min(p0 + TILE, pixels)
            for c0 in range(0, channels, TILE):
                for c in range(c0, min(c0 + TILE, channels)):
                    row = out[c]
                    for p in range(p0, p1):
                        row[p] = x[p, c]


def transpose2d(x):
    """int8 [A, B] -> its C-contiguous transpose [B, A]."""
    x = np.ascontiguousarray(x)
    out = np.empty((x.shape[1], x.shape[0]), np.int8)
    _transpose(x, workers_for(-(-x.shape[0] // TILE), x.size), out)
    return out


def to_channel_major(x):
    """int8 [N, H, W, C] -> int8 [C, N, H, W] (C-contiguous)."""
    n, h, w, c = x.shape
    return transpose2d(x.reshape(n * h * w, c)).reshape(c, n, h, w)


def to_nhwc(x):
    """int8 [C, N, H, W] -> int8 [N, H, W, C] (C-contiguous)."""
    c, n, h, w = x.shape
    return transpose2d(x.reshape(c, n * h * w)).reshape(n, h, w, c)
