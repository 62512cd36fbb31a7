"""Checks that a :class:`~promref.model.Model` is well formed and safe to run.

``validate(model)`` is called by the loader on every file and by the builders
on every model they make.  It checks structure (names, inputs, channel and
spatial shapes), every array's dtype, shape and range, and proves from the
weights that **no int32 accumulator can overflow for any int8 input**
(docs/spec.md, "Overflow bound").  Every failure raises
:class:`~promref.errors.WeightsFormatError` naming the layer and field.
"""
import math
import numbers

import numpy as np

from . import arith, limits
from .errors import OverflowRiskError, WeightsFormatError
from .model import KINDS, OPS, WEIGHTED_OPS

#: which ops each layer kind may use
KIND_OPS = {
    "stem": ("conv2d",),
    "expand": ("conv2d", "pointwise_ternary"),
    "project": ("conv2d", "pointwise_ternary"),
    "last_conv": ("conv2d", "pointwise_ternary"),
    "depthwise": ("depthwise_conv2d",),
    "add": ("add",),
    "pool": ("global_avgpool",),
    "classifier": ("fully_connected", "conv2d"),
}
RESAMPLE = ("bilinear", "bicubic", "nearest", "lanczos", "box")
MAX_ADD_LEFT_SHIFT = 23  # 255 * 2**23 < 2**31: a centred int8 difference survives the shift
_BOUND_CHUNK = 1 << 20  # weights widened to int64 at a time by the overflow proof
#: the last layer's out_scale feeds the softmax: 255 * scale must stay far from float64's limits
SOFTMAX_SCALE_RANGE = (1e-12, 1e12)


def _fail(where, message, cls=WeightsFormatError):
    raise cls(f"{where}: {message}")


def check_int(where, value, lo, hi):
    """``value`` must be a Python/NumPy integer (not bool) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        _fail(where, f"must be an integer, got {value!r}")
    if not lo <= value <= hi:
        _fail(where, f"{value} is out of range [{lo}, {hi}]")
    return int(value)


def check_array(where, array, dtype, shape, lo=None, hi=None):
    """``array`` must be an ndarray of exactly ``dtype`` and ``shape``, values in [lo, hi]."""
    if not isinstance(array, np.ndarray):
        _fail(where, f"missing (expected {np.dtype(dtype).name} array of shape {shape})")
    if array.dtype != np.dtype(dtype):
        _fail(where, f"has dtype {array.dtype}, expected {np.dtype(dtype).name}")
    if array.shape != tuple(shape):
        _fail(where, f"has shape {array.shape}, expected {tuple(shape)}")
    if array.size and lo is not None and array.min() < lo:
        _fail(where, f"value {array.min()} below the minimum {lo}")
    if array.size and hi is not None and array.max() > hi:
        _fail(where, f"value {array.max()} above the maximum {hi}")


def check_field_types(layer, where):
    """Every layer field has its type, whether or not the op uses it (docs/format.md,
    "layers[i]"): ``kernel``, ``stride``, ``weight_zero_point``, ``left_shift`` are
    integers and ``padding`` is 4 integers.  Only the fields an op uses are range-checked."""
    for name in ("kernel", "stride", "weight_zero_point", "left_shift"):
        value = getattr(layer, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            _fail(f"{where}.{name}", f"must be an integer, got {value!r}")
    padding = layer.padding
    if (not isinstance(padding, (tuple, list)) or len(padding) != 4
            or any(isinstance(p, bool) or not isinstance(p, numbers.Integral) for p in padding)):
        _fail(f"{where}.padding", f"needs 4 values (top, bottom, left, right), all integers, got {padding!r}")


def weight_shape(layer):
    """Expected weight array shape of a weighted layer."""
    if layer.op == "conv2d":
        return (layer.out_channels, layer.kernel, layer.kernel, layer.in_channels)
    if layer.op == "depthwise_conv2d":
        return (layer.kernel, layer.kernel, layer.out_channels)
    return (layer.out_channels, layer.in_channels)  # pointwise_ternary, fully_connected


def weight_magnitude_sums(op, weights, weight_zero_point=0):
    """``sum |w - zw|`` over each output channel's weights: int64 [Cout].

    weights in the engine's layout for ``op`` (depthwise [kh, kw, C]: channels last;
    every other op [Cout, ...]).  The weights are widened to int64 in chunks of at
    most ``_BOUND_CHUNK`` elements, so the proof never allocates more than a few MB
    whatever the layer's size.
    """
    w = weights.reshape(-1, weights.shape[-1]).T if op == "depthwise_conv2d" else weights.reshape(weights.shape[0], -1)
    rows = max(1, _BOUND_CHUNK // max(1, w.shape[1]))
    sums = [np.abs(w[start:start + rows].astype(np.int64) - weight_zero_point).sum(axis=1)
            for start in range(0, w.shape[0], rows)]
    return np.concatenate(sums) if sums else np.zeros(0, np.int64)


def accumulator_bound(layer, in_zero_point):
    """Largest possible |int32 accumulator| per output channel, over all int8 inputs.

    ``|bias[o]| + sum |w[o, .] - zw| * max(|-128 - zx|, |127 - zx|)``; exact
    Python integers (a list), so the bound itself cannot overflow.
    """
    x_max = arith.max_centred_input(in_zero_point)
    weight_sum = weight_magnitude_sums(layer.op, layer.weights, layer.weight_zero_point)
    return [abs(int(b)) + int(s) * x_max for b, s in zip(layer.bias, weight_sum)]


def bias_limit(op, weights, in_zero_point, shift):
    """Largest |bias| per output channel that keeps :func:`accumulator_bound` within int32,
    also after a positive (left) ``shift`` (what :func:`check_scale_input` demands): int64 [Cout].

    weights: integer codes with zero point 0, in the engine's layout for ``op``;
    shift: int [Cout].  The trainer clips its biases to this, so every exported
    layer passes the overflow proof.
    """
    weight_sum = weight_magnitude_sums(op, weights)
    room = arith.INT32_MAX >> np.maximum(np.asarray(shift, np.int64), 0)
    return np.maximum(room - weight_sum * arith.max_centred_input(in_zero_point), 0)


def scaled_bound(bound, multiplier, shift):
    """Upper bound on |scale(acc, M, shift)| for |acc| <= bound (both rounding modes)."""
    up = max(shift, 0)
    down = 31 - min(shift, 0)
    return -((-bound * int(multiplier) << up) // (1 << down)) + 1


def check_scale_input(where, bound, shift):
    """A positive shift scales the accumulator up first: it must still fit in int32."""
    if bound << max(int(shift), 0) > arith.INT32_MAX:
        _fail(where, f"accumulator bound {bound} shifted left by {shift} overflows int32", OverflowRiskError)


def _check_weighted(layer, where, in_zero_point):
    cout = layer.out_channels
    if layer.op == "pointwise_ternary":
        check_array(f"{where}.weights", layer.weights, np.int8, weight_shape(layer), -1, 1)
        check_int(f"{where}.weight_zero_point", layer.weight_zero_point, 0, 0)
        if layer.kernel != 1 or layer.stride != 1 or any(layer.padding):
            _fail(where, "pointwise_ternary must be 1x1, stride 1, no padding")
    else:
        check_array(f"{where}.weights", layer.weights, np.int8, weight_shape(layer))
        check_int(f"{where}.weight_zero_point", layer.weight_zero_point, arith.INT8_MIN, arith.INT8_MAX)
    if layer.op == "depthwise_conv2d" and layer.in_channels != cout:
        _fail(where, f"depthwise in_channels {layer.in_channels} != out_channels {cout}")
    check_array(f"{where}.bias", layer.bias, np.int32, (cout,))
    check_array(f"{where}.multiplier", layer.multiplier, np.int32, (cout,), 0, arith.MULTIPLIER_MAX)
    check_array(f"{where}.shift", layer.shift, np.int32, (cout,), arith.SHIFT_MIN, arith.SHIFT_MAX)
    if layer.weight_scale is not None:
        check_array(f"{where}.weight_scale", layer.weight_scale, np.float32, (cout,))
    for o, bound in enumerate(accumulator_bound(layer, in_zero_point)):
        if bound > arith.INT32_MAX:
            _fail(f"{where}, output channel {o}",
                  f"int32 accumulator can overflow: |bias| + sum|w| * max|x - zx| = {bound} > 2**31 - 1",
                  OverflowRiskError)
        check_scale_input(f"{where}.shift[{o}]", bound, layer.shift[o])


def _check_add(layer, where, zero_points):
    check_array(f"{where}.multiplier", layer.multiplier, np.int32, (3,), 0, arith.MULTIPLIER_MAX)
    check_array(f"{where}.shift", layer.shift, np.int32, (3,), arith.SHIFT_MIN, arith.SHIFT_MAX)
    left = check_int(f"{where}.left_shift", layer.left_shift, 0, MAX_ADD_LEFT_SHIFT)
    total = 0
    for i, zp in enumerate(zero_points):
        bound = arith.max_centred_input(zp) << left
        check_scale_input(f"{where}.shift[{i}]", bound, layer.shift[i])
        total += scaled_bound(bound, layer.multiplier[i], int(layer.shift[i]))
    if total > arith.INT32_MAX:
        _fail(where, f"sum of the rescaled inputs can reach {total} > 2**31 - 1", OverflowRiskError)
    check_scale_input(f"{where}.shift[2]", total, layer.shift[2])


def validate(model):
    """Raise WeightsFormatError unless ``model`` is well formed and overflow-free.

    Also marks every array read-only and empties each layer's cache, so
    backends may cache arrays derived from a validated layer.
    """
    if model.rounding not in arith.ROUNDING_MODES:
        _fail("rounding", f"unknown rounding mode {model.rounding!r}; expected one of {arith.ROUNDING_MODES}")
    spec = model.input
    check_int("input.height", spec.height, 1, limits.MAX_INPUT_SIDE)
    check_int("input.width", spec.width, 1, limits.MAX_INPUT_SIDE)
    check_int("input.resize", spec.resize, 0, limits.MAX_INPUT_SIDE)
    check_int("input.zero_point", spec.zero_point, arith.INT8_MIN, arith.INT8_MAX)
    if spec.resample not in RESAMPLE:
        _fail("input.resample", f"unknown resampling {spec.resample!r}; expected one of {RESAMPLE}")
    if not (isinstance(spec.scale, float) and math.isfinite(spec.scale) and spec.scale > 0):
        _fail("input.scale", f"must be a finite positive float, got {spec.scale!r}")
    for name in ("mean", "std"):
        values = getattr(spec, name)
        if len(values) != 3 or not all(isinstance(v, float) and math.isfinite(v) for v in values):
            _fail(f"input.{name}", f"must be 3 finite floats, got {values!r}")
    if not model.layers:
        _fail("layers", "a model needs at least one layer")
    if len(model.layers) > limits.MAX_LAYERS:
        _fail("layers", f"{len(model.layers)} layers, more than the limit of {limits.MAX_LAYERS}")

    # shape of every tensor seen so far: (H, W, C) for feature maps, (C,) after pooling
    shapes = {"input": (spec.height, spec.width, 3)}
    zero_points = {"input": int(spec.zero_point)}  # a Python int: bounds below must not wrap
    scales = {"input": spec.scale}
    for index, layer in enumerate(model.layers):
        where = f"layer {index} ({layer.name!r})"
        if not isinstance(layer.name, str) or not layer.name or layer.name in shapes:
            _fail(where, "layer names must be unique non-empty strings (and not 'input')")
        if layer.kind not in KINDS:
            _fail(where, f"unknown kind {layer.kind!r}; expected one of {KINDS}")
        if layer.op not in OPS:
            _fail(where, f"unknown op {layer.op!r}; expected one of {OPS}")
        if layer.op not in KIND_OPS[layer.kind]:
            _fail(where, f"kind {layer.kind!r} cannot use op {layer.op!r}")
        n_inputs = 2 if layer.op == "add" else 1
        if (len(layer.inputs) != n_inputs or not all(isinstance(i, str) for i in layer.inputs)
                or any(i not in shapes for i in layer.inputs)):
            _fail(f"{where}.inputs", f"must name {n_inputs} earlier layer(s) or 'input', got {list(layer.inputs)}")
        in_shape = shapes[layer.inputs[0]]
        check_int(f"{where}.in_channels", layer.in_channels, 1, 1 << 20)
        check_int(f"{where}.out_channels", layer.out_channels, 1, 1 << 20)
        if in_shape[-1] != layer.in_channels:
            _fail(where, f"in_channels is {layer.in_channels} but input {layer.inputs[0]!r} has {in_shape[-1]} channels")
        zp = check_int(f"{where}.out_zero_point", layer.out_zero_point, arith.INT8_MIN, arith.INT8_MAX)
        lo = check_int(f"{where}.out_min", layer.out_min, arith.INT8_MIN, arith.INT8_MAX)
        hi = check_int(f"{where}.out_max", layer.out_max, arith.INT8_MIN, arith.INT8_MAX)
        if lo > hi:
            _fail(where, f"out_min {lo} > out_max {hi}")
        if not (isinstance(layer.out_scale, float) and math.isfinite(layer.out_scale) and layer.out_scale > 0):
            _fail(f"{where}.out_scale", f"must be a finite positive float, got {layer.out_scale!r}")
        in_zp = zero_points[layer.inputs[0]]
        check_field_types(layer, where)

        if layer.op in ("conv2d", "depthwise_conv2d", "pointwise_ternary"):
            if len(in_shape) != 3:
                _fail(where, f"{layer.op} needs a feature map input, got shape {in_shape}")
            k = check_int(f"{where}.kernel", layer.kernel, 1, 15)
            s = check_int(f"{where}.stride", layer.stride, 1, 15)
            if len(layer.padding) != 4:
                _fail(f"{where}.padding", f"needs 4 values (top, bottom, left, right), got {layer.padding!r}")
            top, bottom, left, right = (check_int(f"{where}.padding", p, 0, k - 1) for p in layer.padding)
            ho = (in_shape[0] + top + bottom - k) // s + 1
            wo = (in_shape[1] + left + right - k) // s + 1
            if ho < 1 or wo < 1:
                _fail(where, f"output would be empty for input {in_shape[:2]}")
            out_shape = (ho, wo, layer.out_channels)
        elif layer.op == "fully_connected":
            if len(in_shape) != 1:
                _fail(where, f"fully_connected needs a vector input, got shape {in_shape}")
            out_shape = (layer.out_channels,)
        elif layer.op == "global_avgpool":
            if len(in_shape) != 3 or layer.out_channels != layer.in_channels:
                _fail(where, "global_avgpool needs a feature map input and keeps its channels")
            if zp != in_zp or (lo, hi) != (arith.INT8_MIN, arith.INT8_MAX) or layer.out_scale != scales[layer.inputs[0]]:
                _fail(where, "global_avgpool keeps its input's scale, zero point and the full int8 range")
            if in_shape[0] * in_shape[1] * 128 > arith.INT32_MAX:
                _fail(where, f"the int32 sum over {in_shape[0]}x{in_shape[1]} positions can overflow",
                      OverflowRiskError)
            out_shape = (layer.out_channels,)
        else:  # add
            other = shapes[layer.inputs[1]]
            if other != in_shape or layer.out_channels != layer.in_channels:
                _fail(where, f"add inputs have shapes {in_shape} and {other}; they must match")
            _check_add(layer, where, [in_zp, zero_points[layer.inputs[1]]])
            out_shape = in_shape

        if math.prod(out_shape) > limits.MAX_ACTIVATION_ELEMENTS:
            _fail(where, f"output tensor {out_shape} has more than {limits.MAX_ACTIVATION_ELEMENTS} elements")
        if layer.op in WEIGHTED_OPS:
            _check_weighted(layer, where, in_zp)
        shapes[layer.name] = out_shape
        zero_points[layer.name] = zp
        scales[layer.name] = layer.out_scale
        for value in (layer.weights, layer.bias, layer.multiplier, layer.shift, layer.weight_scale):
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
        layer.cache.clear()  # anything a backend derived before validation may be stale

    if len(shapes[model.layers[-1].name]) != 1:
        _fail("layers", "the last layer must produce a vector of logits")
    last = model.layers[-1]
    lo, hi = SOFTMAX_SCALE_RANGE
    if not lo <= last.out_scale <= hi:
        _fail(f"layer {len(model.layers) - 1} ({last.name!r}).out_scale",
              f"{last.out_scale!r} is outside [{lo:g}, {hi:g}]: the softmax of the logits would be "
              "NaN, infinite or meaningless")
    if len(model.labels) != model.num_classes:
        _fail("labels", f"need {model.num_classes} labels (one per class), got {len(model.labels)}")
    for i, label in enumerate(model.labels):
        check_label(f"labels[{i}]", label)
    return model


def check_label(where, label):
    """A label is printable text: 1 to MAX_LABEL_CHARS characters, no control characters
    (no terminal escapes, newlines or tabs), no lone surrogates (not encodable as UTF-8)."""
    if not isinstance(label, str):
        _fail(where, f"every label must be a string, got {type(label).__name__}")
    if not 1 <= len(label) <= limits.MAX_LABEL_CHARS:
        _fail(where, f"must have 1 to {limits.MAX_LABEL_CHARS} characters, has {len(label)}")
    if not label.isprintable() or any(0xD800 <= ord(c) <= 0xDFFF for c in label):
        bad = next(c for c in label if not c.isprintable() or 0xD800 <= ord(c) <= 0xDFFF)
        _fail(where, f"contains the unprintable character U+{ord(bad):04X}; labels are printable text")
