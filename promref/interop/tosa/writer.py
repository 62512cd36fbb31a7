"""promref Model -> TOSA 1.0 flatbuffer, integer ops only (docs/deploy-tosa.md).

Op mapping (every layer's int8 output is also a graph output, in layer order):

================== =====================================================================
promref op          TOSA
================== =====================================================================
conv2d              CONV2D int8 x int8 -> int32 (bias int32, input_zp, weight_zp), RESCALE
pointwise_ternary   CONV2D 1x1 with int8 weights in {-1, 0, 1}, RESCALE
depthwise_conv2d    DEPTHWISE_CONV2D (weights [kh, kw, C, 1]), RESCALE
fully_connected     RESHAPE to [N, 1, 1, C], CONV2D 1x1, RESCALE, RESHAPE to [N, K]
add                 per input: RESCALE int8 -> int32 (subtract zp, << left_shift, exact),
                    RESCALE int32 -> int32 (the model's rounding); ADD; RESCALE -> int8
global_avgpool      AVG_POOL2D over the whole map (zero points 0), RESHAPE to [N, C]
================== =====================================================================

Every requantizing RESCALE uses the model's rounding mode (SINGLE_ROUND or
DOUBLE_ROUND) and is followed by CLAMP when the layer's output range is
narrower than int8 (ReLU6).  Padding positions add nothing in TOSA's
convolutions (the input zero point is subtracted only inside the image), as
in promref.
"""
from dataclasses import replace
from functools import lru_cache

from ... import arith
from ...model import tensor_shapes
from ...validate import accumulator_bound, scaled_bound, validate
from .graph import TosaGraph
from .rescale import TosaExportError, avg_pool2d_matches, tosa_rescale_parameters

#: RESCALE int8 -> int32 that only subtracts the zero point and shifts left by L:
#: (v * 2**(L + 9) + 2**8) >> 9 == v << L exactly for |v| <= 255 < 2**8 (TOSA's range rule)
_WIDEN_SHIFT = 9


def _requantize_parameters(layer, bounds, rounding):
    """Per-channel TOSA (multipliers, shifts) of a weighted layer's requantization."""
    pairs = [tosa_rescale_parameters(m, s, rounding, b, f"layer {layer.name!r}, output channel {o}")
             for o, (m, s, b) in enumerate(zip(layer.multiplier, layer.shift, bounds))]
    return [m for m, _ in pairs], [n for _, n in pairs]


def _finish_int8(g, acc, shape, layer, multipliers, shifts, rounding):
    """RESCALE int32 -> int8 (+ output zero point), then CLAMP to the layer's range if narrower."""
    out = g.rescale(acc, shape, g.D.INT32, g.D.INT8, multipliers, shifts, rounding, output_zp=layer.out_zero_point)
    if layer.out_min > arith.INT8_MIN or layer.out_max < arith.INT8_MAX:
        out = g.clamp(out, shape, layer.out_min, layer.out_max)
    return out


def _exact_geometry(size, kernel, stride, before, after):
    """TOSA needs ``(size - 1 + before + after - (kernel - 1))`` divisible by the stride; promref
    floors.  The rows that promref never reads are dropped: first from the padding after, then
    from the end of the input.  Returns (padding after, input rows kept)."""
    extra = (size + before + after - kernel) % stride
    cut = min(extra, after)
    return after - cut, size - (extra - cut)


def _convolution(g, layer, src, shape, zx):
    """CONV2D / DEPTHWISE_CONV2D of a feature map -> (int32 accumulator name, its shape)."""
    n, h, w, _ = shape
    top, bottom, left, right = layer.padding
    k, s = layer.kernel, layer.stride
    bottom, h_kept = _exact_geometry(h, k, s, top, bottom)
    right, w_kept = _exact_geometry(w, k, s, left, right)
    if (h_kept, w_kept) != (h, w):
        src = g.slice(src, [0, 0, 0, 0], [n, h_kept, w_kept, shape[3]], g.D.INT8)
    out_shape = [n, (h_kept + top + bottom - k) // s + 1, (w_kept + left + right - k) // s + 1, layer.out_channels]
    if layer.op == "depthwise_conv2d":
        weights, op = layer.weights.reshape(k, k, layer.out_channels, 1), g.ts.Op.DEPTHWISE_CONV2D
    else:  # conv2d [Cout, k, k, Cin]; pointwise_ternary [Cout, Cin] is a 1x1 conv
        weights, op = layer.weights.reshape(layer.out_channels, k, k, layer.in_channels), g.ts.Op.CONV2D
    attr = g.attribute()
    make = attr.DepthwiseConv2dAttribute if layer.op == "depthwise_conv2d" else attr.Conv2dAttribute
    make([top, bottom, left, right], [s, s], [1, 1], False, g.D.INT32)
    inputs = [src, g.const(weights, g.D.INT8, "weights"), g.const(layer.bias, g.D.INT32, "bias"),
              g.zero_point(zx, g.D.INT8), g.zero_point(layer.weight_zero_point, g.D.INT8)]
    return g.op(op, inputs, out_shape, g.D.INT32, attr), out_shape


def _weighted(g, layer, src, shape, zx, rounding):
    """A weighted layer -> its int8 output tensor name (shape as promref's)."""
    multipliers, shifts = _requantize_parameters(layer, accumulator_bound(layer, zx), rounding)
    if layer.op == "fully_connected":
        n = shape[0]
        image = g.reshape(src, [n, 1, 1, layer.in_channels], g.D.INT8)
        acc, acc_shape = _convolution(g, _as_1x1(layer), image, [n, 1, 1, layer.in_channels], zx)
        out = _finish_int8(g, acc, acc_shape, layer, multipliers, shifts, rounding)
        return g.reshape(out, [n, layer.out_channels], g.D.INT8)
    acc, acc_shape = _convolution(g, layer, src, shape, zx)
    return _finish_int8(g, acc, acc_shape, layer, multipliers, shifts, rounding)


def _as_1x1(layer):
    """A fully connected layer seen as a 1x1 convolution (weights [Cout, Cin] unchanged)."""
    return replace(layer, op="conv2d", kernel=1, stride=1, padding=(0, 0, 0, 0), cache={})


def _add(g, layer, srcs, shape, zps, rounding):
    """Residual add in TFLite's structure, every step an exact TOSA op."""
    left = int(layer.left_shift)
    if left + _WIDEN_SHIFT > 30:
        raise TosaExportError(f"layer {layer.name!r}: left_shift {left} > {30 - _WIDEN_SHIFT} cannot be "
                              "applied exactly by one TOSA RESCALE int8 -> int32")
    scaled, total = [], 0
    for i, (src, zp) in enumerate(zip(srcs, zps)):
        widened = g.rescale(src, shape, g.D.INT8, g.D.INT32, [1 << (left + _WIDEN_SHIFT)], [_WIDEN_SHIFT],
                            "single", input_zp=zp)
        bound = max(arith.INT8_MAX - zp, zp - arith.INT8_MIN) << left
        m, n = tosa_rescale_parameters(layer.multiplier[i], layer.shift[i], rounding, bound,
                                       f"layer {layer.name!r}, input {i}")
        scaled.append(g.rescale(widened, shape, g.D.INT32, g.D.INT32, [m], [n], rounding))
        total += scaled_bound(bound, layer.multiplier[i], int(layer.shift[i]))
    attr = g.attribute()
    attr.AddAttribute()
    acc = g.op(g.ts.Op.ADD, scaled, shape, g.D.INT32, attr)
    m, n = tosa_rescale_parameters(layer.multiplier[2], layer.shift[2], rounding, total, f"layer {layer.name!r}, output")
    return _finish_int8(g, acc, shape, layer, [m], [n], rounding)


@lru_cache(maxsize=64)
def _pool_is_exact(count):
    return avg_pool2d_matches(count)


def _global_avgpool(g, layer, src, shape):
    """AVG_POOL2D with one window over the map: exact for this window size (checked exhaustively)."""
    n, h, w, c = shape
    if not _pool_is_exact(h * w):
        raise TosaExportError(f"layer {layer.name!r}: TOSA AVG_POOL2D over {h}x{w} values differs from promref's "
                              "integer mean for some input (its reciprocal multiplier is inexact)")
    attr = g.attribute()
    attr.AvgPool2dAttribute([h, w], [1, 1], [0, 0, 0, 0], g.D.INT32)
    pooled = g.op(g.ts.Op.AVG_POOL2D, [src, g.zero_point(0, g.D.INT8), g.zero_point(0, g.D.INT8)],
                  [n, 1, 1, c], g.D.INT8, attr)
    return g.reshape(pooled, [n, c], g.D.INT8)


def build_tosa(model, batch=1, every_layer=True):
    """A validated promref Model -> (TOSA flatbuffer bytes, [names of its outputs, in order]).

    The graph reads one int8 input ``[batch, H, W, 3]`` (promref's ``pixel - 128``).
    Outputs: every layer's int8 output in execution order, named after the
    layer (``every_layer``), or only the last layer's (the logits).
    Raises :class:`TosaExportError` naming the layer where TOSA cannot compute
    exactly what promref computes.
    """
    validate(model)
    if not (isinstance(batch, int) and 1 <= batch <= 1 << 16):
        raise TosaExportError(f"batch must be an integer in [1, 65536], got {batch!r}")
    if model.rounding not in ("single", "double"):
        raise TosaExportError(f"rounding mode {model.rounding!r} has no TOSA RESCALE equivalent")
    g = TosaGraph()
    shapes = {name: (batch, *shape) for name, shape in tensor_shapes(model).items()}
    tensors = {"input": g.input("input", shapes["input"], g.D.INT8)}
    for layer in model.layers:
        srcs = [tensors[name] for name in layer.inputs]
        zps = [model.zero_point_of(name) for name in layer.inputs]
        in_shape = list(shapes[layer.inputs[0]])
        if layer.op == "add":
            out = _add(g, layer, srcs, in_shape, zps, model.rounding)
        elif layer.op == "global_avgpool":
            out = _global_avgpool(g, layer, srcs[0], in_shape)
        else:
            out = _weighted(g, layer, srcs[0], in_shape, zps[0], model.rounding)
        tensors[layer.name] = out
    names = [layer.name for layer in model.layers] if every_layer else [model.layers[-1].name]
    for name in names:
        g.output(tensors[name])
    return g.serialize(), names


def export_tosa(model, path, batch=1, every_layer=True):
    """Write :func:`build_tosa`'s flatbuffer to ``path``; returns the output names."""
    data, names = build_tosa(model, batch=batch, every_layer=every_layer)
    with open(path, "wb") as f:
        f.write(data)
    return names
