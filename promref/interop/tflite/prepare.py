"""TFLite's Prepare-time arithmetic, transcribed: float32 scales -> the integers its kernels use.

The importer uses these to derive promref's integers from a ``.tflite`` file;
the exporter uses the very same functions to check that the float32 scales it
writes make TFLite derive exactly the model's integers.  Each function names
the TFLite routine it reproduces (``tensorflow/lite/kernels/kernel_util.cc``,
``internal/quantization_util.cc``, ``add.cc``, ``reduce.cc``).
"""
import math

import numpy as np

from ... import arith
from ...errors import PromrefError

__all__ = ["TfliteImportError", "quantize_multiplier", "same_padding", "valid_output_size", "conv_multipliers",
           "add_parameters", "activation_range", "mean_parameters", "FUSED_ACTIVATIONS"]


class TfliteImportError(PromrefError):
    """The .tflite file is unreadable, or uses something promref cannot reproduce exactly."""


#: the fused activations promref can express (a clamp of the int8 output)
FUSED_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def quantize_multiplier(real):
    """``tflite::QuantizeMultiplier`` (double rounding build): -> (multiplier, shift).

    Same as :func:`promref.arith.quantize_multiplier`: ``frexp``, the fraction
    rounded half away from zero to 31 bits; shifts below -31 give (0, 0).
    """
    try:
        return arith.quantize_multiplier(real)
    except ValueError as e:  # a scale ratio TFLite's kernels could not use either
        raise TfliteImportError(f"real multiplier {real!r} has no 31-bit multiplier and shift: {e}") from None


def same_padding(in_size, kernel, stride, dilation=1):
    """TF/TFLite ``SAME`` padding of one spatial dimension -> (before, after, out_size).

    ``out = ceil(in / stride)``; ``total = max((out - 1) * stride + k_eff - in, 0)``;
    ``before = total // 2`` and ``after = total - before`` (the odd pixel goes
    to the bottom/right), as ``ComputePaddingWithOffset``.
    """
    effective = (kernel - 1) * dilation + 1
    out = (in_size + stride - 1) // stride
    total = max((out - 1) * stride + effective - in_size, 0)
    return total // 2, total - total // 2, out


def valid_output_size(in_size, kernel, stride, dilation=1):
    """TF/TFLite ``VALID`` output size: ``ceil((in - k_eff + 1) / stride)``."""
    effective = (kernel - 1) * dilation + 1
    return (in_size - effective + stride) // stride


def conv_multipliers(input_scale, filter_scales, output_scale, legacy_float_product=False):
    """Per-output-channel (multiplier int32, shift int32) of a conv / FC layer.

    ``legacy_float_product=False``: ``(double)s_in * (double)s_w[c] / (double)s_out``
    (int8 conv and depthwise, per-channel FC).  ``True``: the float32 product
    ``(double)(s_in * s_w) / (double)s_out`` (uint8 conv/depthwise,
    per-tensor FC): TFLite's ``GetQuantizedConvolutionMultipler``.
    """
    s_in = np.float32(input_scale)
    s_out = np.float32(output_scale)
    reals = []
    for s_w in np.asarray(filter_scales, dtype=np.float32).ravel():
        if legacy_float_product:
            reals.append(float(np.float32(s_in * s_w)) / float(s_out))
        else:
            reals.append(float(s_in) * float(s_w) / float(s_out))
    pairs = [quantize_multiplier(r) for r in reals]
    return (np.array([m for m, _ in pairs], np.int32), np.array([s for _, s in pairs], np.int32))


def add_parameters(scale1, scale2, output_scale, left_shift=20):
    """TFLite ADD (uint8/int8) Prepare -> (left_shift, multiplier int32 [3], shift int32 [3]).

    ``twice_max = 2 * max(s1, s2)`` (float32, exact), then
    ``QuantizeMultiplierSmallerThanOneExp`` of ``s1 / twice_max``,
    ``s2 / twice_max`` and ``twice_max / ((1 << left_shift) * s_out)``, all
    in double.
    """
    s1, s2, so = np.float32(scale1), np.float32(scale2), np.float32(output_scale)
    twice_max = float(np.float32(2) * max(s1, s2))
    reals = (float(s1) / twice_max, float(s2) / twice_max,
             twice_max / float(np.float32((1 << left_shift) * so)))
    multipliers, shifts = [], []
    for real in reals:
        if not 0.0 < real < 1.0:
            raise TfliteImportError(f"ADD rescale {real!r} is outside (0, 1)")
        m, s = quantize_multiplier(real)
        if s > 0:  # pragma: no cover - impossible for real < 1
            raise TfliteImportError(f"ADD rescale {real!r} gives a positive shift")
        multipliers.append(m)
        shifts.append(s)
    return left_shift, np.array(multipliers, np.int32), np.array(shifts, np.int32)


def _round_half_away(x):
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def activation_range(activation, scale, zero_point, qmin, qmax):
    """``CalculateActivationRangeQuantized`` -> (act_min, act_max) in the tensor's own type.

    activation: 'NONE', 'RELU', 'RELU6' or 'RELU_N1_TO_1'.  ``f / scale`` is a
    float32 division, rounded half away from zero (``TfLiteRound``).
    """
    def quantize(f):
        return zero_point + _round_half_away(float(np.float32(f) / np.float32(scale)))

    if activation == "NONE":
        return qmin, qmax
    if activation == "RELU":
        return max(qmin, quantize(0.0)), qmax
    if activation == "RELU6":
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    raise TfliteImportError(f"unsupported fused activation {activation}")


def mean_parameters(input_scale, output_scale, count):
    """TFLite MEAN (int8/uint8, reference ``QuantizedMeanOrSum``) -> (multiplier, shift).

    The 1/count of the mean is folded into the rescale of the *sum*::

        M0, s0 = QuantizeMultiplier((double)s_in / (double)s_out)
        k = min(floor(log2(count)), 32, 31 + s0)
        M = (M0 << k) // count;  s = s0 - k
        y = clamp(zp_out + MultiplyByQuantizedMultiplier(sum(x) - count * zp_in, M, s))
    """
    m0, s0 = quantize_multiplier(float(np.float32(input_scale)) / float(np.float32(output_scale)))
    k = min(int(count).bit_length() - 1, 32, 31 + s0)
    return int((m0 << k) // count), s0 - k
