"""int8 fully connected layer, the classifier (docs/spec.md, "fully_connected").

``acc[n, o] = bias[o] + sum_c w'[o, c] * (x[n, c] - zx)`` with ``w' = w - zw``:
a dot product over contiguous channels per (image, output) pair,
requantized per output channel.  The classifier is a tiny part of the work,
so the kernel stays simple.
"""
import numba
import numpy as np
from numba import prange

from ._layer_cache import cached
from ._options import JIT, workers_for
from ._requant import is_double, requant_arrays, requantize


def prepare(layer):
    """(w' = w - zw as int32 [Cout, Cin], bias int64 [Cout])."""
    def build():
        return layer.weights.astype(np.int32) - layer.weight_zero_point, layer.bias.astype(np.int64)
    return cached(layer, ("fast.fully_connected", layer.weight_zero_point), build, layer.weights, layer.bias)


@numba.njit(**JIT)
def _fully_connected(x, w, bias, multiplier, shift, in_zero_point, zero_point, lo, hi, double, workers, out):
    """x: int8 [N, Cin] -> out: int8 [N, Cout]; jobs are (image, output channel) pairs."""
    n, cin = x.shape
    cout = w.shape[0]
    jobs = n * cout
    for worker in prange(workers):
        xc = np.empty(cin, np.int32)          # the centred input of the current image
        img_loaded = -1
        for job in range(worker, jobs, workers):
            img = job // cout
            o = job % cout
            if img != img_loaded:
                for c in range(cin):
                    xc[c] = np.int32(x[img, c]) - in_zero_point
                img_loaded = img
            acc = 0                           # int64; the int32 products cannot wrap it
            for c in range(cin):
                acc += w[o, c] * xc[c]
            out[img, o] = requantize(np.int64(acc) + bias[o], multiplier[o], shift[o], zero_point, lo, hi, double)


def fully_connected(x, layer, in_zero_point, rounding):
    """int8 [N, Cin] -> int8 [N, Cout]."""
    w, bias = prepare(layer)
    multiplier, shift = requant_arrays(layer)
    n = x.shape[0]
    out = np.empty((n, layer.out_channels), np.int8)
    _fully_connected(np.ascontiguousarray(x), w, bias, multiplier, shift, int(in_zero_point),
                     int(layer.out_zero_point), int(layer.out_min), int(layer.out_max), is_double(rounding),
                     workers_for(n * layer.out_channels, x.size * layer.out_channels), out)
    return out
