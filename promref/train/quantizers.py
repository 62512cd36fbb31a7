"""Fake quantizers for QAT and the activation range observer.

Weights use the rules in :mod:`promref.arith` (``ternarize``: Ternary Weight
Networks threshold 0.7 * mean|w| per output channel, scale = mean |w| of the
kept weights; ``quantize_int8_symmetric``: per output channel, max|w| / 127).
The straight-through estimator passes the gradient of the quantized weight
unchanged to the float weight.

Activations are 8-bit: ReLU6 outputs use the fixed range [0, 6] (scale 6/255,
zero point -128, so the clamp is the whole int8 range); linear outputs
(projections, residual sums, logits) use a range tracked as an exponential
moving average of batch minima and maxima.
"""
from dataclasses import dataclass

import numpy as np

from .. import arith

RELU6_SCALE = 6.0 / 255.0
RELU6_ZERO_POINT = -128


def quantize_weights(w_fold, ternary):
    """Folded float weights [Cout, ...] -> (integer codes int8, float32 scale [Cout])."""
    if ternary:
        return arith.ternarize(w_fold)
    return arith.quantize_int8_symmetric(w_fold, axis=0)


def scale_zero_point(lo, hi):
    """Asymmetric int8 quantization of the real range [lo, hi] (widened to contain 0).

    scale = (hi - lo) / 255, zero point = round(-128 - lo / scale) in [-128, 127].
    """
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = max((hi - lo) / 255.0, 1e-8)
    zero_point = int(np.clip(np.floor(-128.0 - lo / scale + 0.5), -128, 127))
    return scale, zero_point


@dataclass
class RangeObserver:
    """EMA of a tensor's min and max (the first observation initialises it)."""
    momentum: float = 0.01
    lo: float = 0.0
    hi: float = 0.0
    seen: bool = False

    def update(self, x):
        lo, hi = float(np.min(x)), float(np.max(x))
        if not self.seen:
            self.lo, self.hi, self.seen = lo, hi, True
        else:
            self.lo += self.momentum * (lo - self.lo)
            self.hi += self.momentum * (hi - self.hi)

    def qparams(self):
        """(scale, zero_point) of the observed range."""
        if not self.seen:
            raise RuntimeError("an activation range was never observed: train (or calibrate) the "
                               "network in float mode before running it quantized or exporting it")
        return scale_zero_point(self.lo, self.hi)

    def state(self):
        return np.array([self.lo, self.hi, float(self.seen)], np.float64)

    def load(self, state):
        self.lo, self.hi, self.seen = float(state[0]), float(state[1]), bool(state[2])
