"""The importer's op table: one handler per TFLite operator, each -> promref layer records.

A handler is ``handler(builder, op)``: ``op`` is an
:class:`~.reader.OperatorRecord` (plain data, already checked by the reader)
and ``builder`` the :class:`~.importer.Builder` that holds the tensors and
collects the layers.  Each derives promref's integers as TFLite's kernel does
in ``Prepare`` (see :mod:`.prepare` and the importer's docstring); anything it
cannot reproduce exactly raises :class:`TfliteImportError`.
"""
import numpy as np

from .prepare import (FUSED_ACTIVATIONS, TfliteImportError, add_parameters, conv_multipliers, mean_parameters,
                      same_padding, valid_output_size)

__all__ = ["OP_HANDLERS"]

PADDING_SAME, PADDING_VALID = 0, 1  # tflite.Padding


def _activation(op):
    name = op.options["activation"]
    if name not in FUSED_ACTIVATIONS:
        raise TfliteImportError(f"{op.where}: fused activation {name} is not supported")
    return name


def _operands(b, op, count):
    """The first ``count`` input tensor records and the output record (all must exist)."""
    if len(op.inputs) < count or len(op.outputs) < 1 or any(i < 0 for i in op.inputs[:count]):
        raise TfliteImportError(f"{op.where}: expected {count} input(s) and an output")
    return [b.t(i) for i in op.inputs[:count]], b.t(op.outputs[0])


def _int8_weights(w, cout, channel_axis, where):
    """(int8 weights, weight zero point, float32 filter scales [cout]) of a filter tensor.

    uint8 per-tensor filters become int8 with the zero point moved by 128; int8
    filters must have zero points 0 and per-tensor or per-output-channel scales.
    """
    data = w.constant(where)
    scales, zero_points = w.quantized(where)
    if w.type == "UINT8":
        if zero_points.size != 1 or scales.size != 1:
            raise TfliteImportError(f"{where}: uint8 filters must be per-tensor")
        weights, weight_zp = (data.astype(np.int16) - 128).astype(np.int8), int(zero_points[0]) - 128
    elif w.type == "INT8":
        if np.any(zero_points != 0):
            raise TfliteImportError(f"{where}: int8 filters need zero points 0 (TFLite requires it)")
        if scales.size not in (1, cout) or (scales.size > 1 and w.quantized_dimension != channel_axis):
            raise TfliteImportError(f"{where}: filter scales must be per-tensor or per output channel")
        weights, weight_zp = data.astype(np.int8), 0
    else:
        raise TfliteImportError(f"{where}: filter type {w.type} is not supported")
    return weights, weight_zp, np.broadcast_to(scales, (cout,)).astype(np.float32)


def _bias(b, op, cout):
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return np.zeros(cout, np.int32)
    bias = b.t(op.inputs[2])
    if bias.type != "INT32" or bias.data is None or bias.shape != (cout,):
        raise TfliteImportError(f"{op.where}: bias must be a constant int32 [{cout}]")
    return bias.data.astype(np.int32)


def _spatial_output(op, in_shape, kernel, stride):
    """(padding (top, bottom, left, right), (Ho, Wo)) from TFLite's SAME / VALID."""
    pads, out_hw = [], []
    for dim in (0, 1):
        if op.options["Padding"] == PADDING_SAME:
            before, after, size = same_padding(in_shape[dim], kernel, stride)
        elif op.options["Padding"] == PADDING_VALID:
            before, after, size = 0, 0, valid_output_size(in_shape[dim], kernel, stride)
        else:
            raise TfliteImportError(f"{op.where}: unknown padding {op.options['Padding']}")
        pads += [before, after]
        out_hw.append(size)
    return tuple(pads), tuple(out_hw)


def _geometry(op):
    """The stride of a convolution (equal in H and W, no dilation)."""
    o = op.options
    if o["DilationHFactor"] not in (0, 1) or o["DilationWFactor"] not in (0, 1):
        raise TfliteImportError(f"{op.where}: dilation is not supported")
    if o["StrideH"] != o["StrideW"] or o["StrideH"] < 1:
        raise TfliteImportError(f"{op.where}: strides {o['StrideH']}x{o['StrideW']} are not supported")
    return int(o["StrideH"])


def _requant_fields(b, op, x, out, filter_scales, weights, weight_zp, cin, cout):
    """The fields every weighted layer shares: output quantization, clamp, multipliers, bias."""
    if x.type != out.type:
        raise TfliteImportError(f"{op.where}: input {x.type} and output {out.type} types differ")
    zp_out, lo, hi, out_scale = b.out_params(out, _activation(op))
    legacy = x.type == "UINT8"  # uint8 kernels use the float32-product multiplier
    multiplier, shift = conv_multipliers(x.scale, filter_scales, out.scale, legacy_float_product=legacy)
    return dict(out_zero_point=zp_out, out_min=lo, out_max=hi, out_scale=out_scale, weight_zero_point=weight_zp,
                weight_scale=filter_scales.copy(), bias=_bias(b, op, cout), multiplier=multiplier, shift=shift,
                in_channels=int(cin), out_channels=int(cout))


def _check_output_shape(op, out, expected):
    if tuple(expected) != tuple(out.shape):
        raise TfliteImportError(f"{op.where}: output shape {list(out.shape)} != computed {list(expected)}")


def conv_2d(b, op):
    """CONV_2D: the stem (k > 1), a 1x1 conv, or a 1x1 conv on the pooled vector (the classifier)."""
    (x, w, ), out = _operands(b, op, 2)
    src = b.source(op.inputs[0], op.where)
    in_shape = b.shape_of[src]
    stride = _geometry(op)
    cout, kh, kw, cin = w.dims(4, op.where)
    if kh != kw:
        raise TfliteImportError(f"{op.where}: non-square kernel {kh}x{kw}")
    if cin != in_shape[-1]:
        raise TfliteImportError(f"{op.where}: filter has {cin} input channels, its input {in_shape[-1]}")
    weights, weight_zp, filter_scales = _int8_weights(w, cout, 0, op.where)
    fields = _requant_fields(b, op, x, out, filter_scales, weights, weight_zp, cin, cout)
    if len(in_shape) == 1:  # a 1x1 conv on the pooled vector is a fully connected layer (the classifier)
        if kh != 1:
            raise TfliteImportError(f"{op.where}: only 1x1 convolutions may follow the global pool")
        return b.emit(op.outputs[0], op="fully_connected", role="fc", inputs=(src,),
                      weights=weights.reshape(cout, cin), shape=(int(cout),), **fields)
    pads, out_hw = _spatial_output(op, in_shape, kh, stride)
    _check_output_shape(op, out, (1, *out_hw, cout))
    return b.emit(op.outputs[0], op="conv2d", role="conv1x1" if kh == 1 else "conv", inputs=(src,),
                  weights=weights, kernel=int(kh), stride=stride, padding=pads, shape=(*out_hw, int(cout)), **fields)


def depthwise_conv_2d(b, op):
    """DEPTHWISE_CONV_2D with depth multiplier 1: filter [1, kh, kw, C], per-channel along axis 3."""
    (x, w), out = _operands(b, op, 2)
    src = b.source(op.inputs[0], op.where)
    in_shape = b.shape_of[src]
    if len(in_shape) != 3:
        raise TfliteImportError(f"{op.where}: a depthwise convolution needs a feature map input")
    stride = _geometry(op)
    one, kh, kw, cout = w.dims(4, op.where)
    if one != 1:
        raise TfliteImportError(f"{op.where}: depthwise filter must have shape [1, kh, kw, C]")
    cin = in_shape[-1]
    if cout != cin:
        raise TfliteImportError(f"{op.where}: depth multiplier {cout / max(cin, 1):g} != 1 is not supported")
    if kh != kw:
        raise TfliteImportError(f"{op.where}: non-square kernel {kh}x{kw}")
    weights, weight_zp, filter_scales = _int8_weights(w, cout, 3, op.where)
    fields = _requant_fields(b, op, x, out, filter_scales, weights, weight_zp, cin, cout)
    pads, out_hw = _spatial_output(op, in_shape, kh, stride)
    _check_output_shape(op, out, (1, *out_hw, cout))
    return b.emit(op.outputs[0], op="depthwise_conv2d", role="depthwise", inputs=(src,),
                  weights=weights.reshape(kh, kw, cout), kernel=int(kh), stride=stride, padding=pads,
                  shape=(*out_hw, int(cout)), **fields)


def fully_connected(b, op):
    """FULLY_CONNECTED: imported as its nearest integer form and flagged inexact (see the importer)."""
    (x, w), out = _operands(b, op, 2)
    src = b.source(op.inputs[0], op.where)
    if op.options["WeightsFormat"] != 0:
        raise TfliteImportError(f"{op.where}: shuffled weights are not supported")
    if len(b.shape_of[src]) != 1:
        raise TfliteImportError(f"{op.where}: input must be a vector (after the global pool)")
    cout, cin = w.dims(2, op.where)
    if cin != b.shape_of[src][0]:
        raise TfliteImportError(f"{op.where}: weights have {cin} inputs, the vector {b.shape_of[src][0]}")
    weights, weight_zp, filter_scales = _int8_weights(w, cout, 0, op.where)
    # LiteRT's *reference* FULLY_CONNECTED (uint8, int8, per-tensor and per-channel) does not use
    # the integer multiplier of Prepare: it computes
    #     round_half_away((double)acc * ((double)s_in * (double)s_w[c] / (double)s_out)) + zp_out
    # in floating point.  promref's integer requantization cannot express that exactly; the
    # nearest integer form is QuantizeMultiplier of the same double effective scale, which
    # differs from LiteRT by 1 when acc * scale lies within ~2**-31 (relative) of a half.
    fields = _requant_fields(b, op, x, out, filter_scales, weights, weight_zp, cin, cout)
    fields["multiplier"], fields["shift"] = conv_multipliers(x.scale, filter_scales, out.scale)
    b.notes.append(f"{op.where}: FULLY_CONNECTED is not bit-exact: LiteRT's reference kernel requantizes "
                   "in double floating point (round((double)acc * s_in * s_w / s_out)); promref uses "
                   "the nearest integer multiplier (differences of 1 at rare near-ties)")
    b.inexact_tensors.append(op.outputs[0])
    b.emit(op.outputs[0], op="fully_connected", role="fc", inputs=(src,), weights=weights, shape=(int(cout),),
           **fields)


def add(b, op):
    """ADD of two same-shape maps: TFLite's 8-bit ADD parameters (left shift 20)."""
    (a, c), out = _operands(b, op, 2)
    src_a, src_b = b.source(op.inputs[0], op.where), b.source(op.inputs[1], op.where)
    if a.shape != c.shape or b.shape_of[src_a] != b.shape_of[src_b]:
        raise TfliteImportError(f"{op.where}: broadcasting ADD is not supported")
    if not (a.type == c.type == out.type):
        raise TfliteImportError(f"{op.where}: mixed input/output types")
    zp_out, lo, hi, out_scale = b.out_params(out, _activation(op))
    left_shift, multiplier, shift = add_parameters(a.scale, c.scale, out.scale)
    channels = b.shape_of[src_a][-1]
    b.emit(op.outputs[0], op="add", role="add", inputs=(src_a, src_b), out_zero_point=zp_out, out_min=lo,
           out_max=hi, out_scale=out_scale, multiplier=multiplier, shift=shift, left_shift=left_shift,
           in_channels=channels, out_channels=channels, shape=b.shape_of[src_a])


def average_pool_2d(b, op):
    """A global AVERAGE_POOL_2D (filter = the map, same quantization in and out) -> global_avgpool."""
    (x,), out = _operands(b, op, 1)
    src = b.source(op.inputs[0], op.where)
    shape = b.shape_of[src]
    if len(shape) != 3:
        raise TfliteImportError(f"{op.where}: the pool needs a feature map input")
    h, w, c = shape
    if (op.options["FilterHeight"], op.options["FilterWidth"]) != (h, w) or tuple(out.shape) != (1, 1, 1, c):
        raise TfliteImportError(f"{op.where}: only a global average pool (filter = input size) is supported")
    if x.type != out.type or x.scale != out.scale or x.zero_point != out.zero_point:
        raise TfliteImportError(f"{op.where}: AVERAGE_POOL_2D must keep its input's scale and zero point")
    zp, lo, hi, _ = b.out_params(out, _activation(op))
    if (lo, hi) != (-128, 127):
        raise TfliteImportError(f"{op.where}: a fused activation that clips the pool output is not supported")
    if x.type == "UINT8" and (h * w) % 2 == 0:
        # uint8 rounds (sum + n/2) / n, i.e. half up; promref's int8 mean rounds half away from
        # zero.  They agree unless a mean ends in exactly .5, which needs an even count.
        raise TfliteImportError(f"{op.where}: uint8 average pool over an even count ({h * w}) rounds ties "
                                "differently from promref's global_avgpool")
    b.emit(op.outputs[0], op="global_avgpool", role="pool", inputs=(src,), out_zero_point=zp,
           out_scale=float(out.scale), in_channels=c, out_channels=c, shape=(c,))


def mean(b, op):
    """MEAN over H, W with a rescale: an all-ones depthwise with QuantizedMeanOrSum's (M, s) + a flatten."""
    (x, axis), out = _operands(b, op, 2)  # keep_dims does not matter
    src = b.source(op.inputs[0], op.where)
    shape = b.shape_of[src]
    if (axis.data is None or len(shape) != 3 or axis.data.size != 2
            or sorted(int(a) % 4 for a in axis.data.ravel()) != [1, 2]):
        raise TfliteImportError(f"{op.where}: only MEAN over height and width of a feature map is supported")
    h, w, c = shape
    if h != w or h > 15:
        raise TfliteImportError(f"{op.where}: MEAN over a {h}x{w} map cannot be expressed (square, <= 15)")
    if x.type != out.type:
        raise TfliteImportError(f"{op.where}: MEAN input and output types differ")
    zp_out, lo, hi, out_scale = b.out_params(out, "NONE")
    multiplier, shift = mean_parameters(x.scale, out.scale, h * w)
    b.notes.append(f"{op.where}: MEAN rescales (input scale {float(x.scale):.8g} -> output scale "
                   f"{float(out.scale):.8g}); expressed exactly as depthwise_conv2d (all-ones kernel, "
                   "multiplier/shift of QuantizedMeanOrSum) + global_avgpool over the 1x1 result")
    name = b.emit(op.outputs[0], op="depthwise_conv2d", role="mean", inputs=(src,),
                  weights=np.ones((h, w, c), np.int8), kernel=h, stride=1, padding=(0, 0, 0, 0),
                  out_zero_point=zp_out, out_min=lo, out_max=hi, out_scale=out_scale, weight_zero_point=0,
                  bias=np.zeros(c, np.int32), multiplier=np.full(c, multiplier, np.int32),
                  shift=np.full(c, shift, np.int32), in_channels=c, out_channels=c, shape=(1, 1, c))
    # flatten the 1x1 map: global_avgpool of a single value is that value
    b.emit(op.outputs[0], op="global_avgpool", role="pool", inputs=(name,), out_zero_point=zp_out,
           out_scale=out_scale, in_channels=c, out_channels=c, shape=(c,))


def reshape(b, op):
    """RESHAPE / SQUEEZE of a vector (or a 1x1 map): the same integers under another name."""
    (x,), out = _operands(b, op, 1)
    src = b.source(op.inputs[0], op.where)
    shape = b.shape_of[src]
    if len(shape) == 3 and shape[:2] != (1, 1):
        raise TfliteImportError(f"{op.where}: reshaping a {shape} feature map is not supported")
    if int(np.prod(out.shape)) != int(np.prod(shape)):
        raise TfliteImportError(f"{op.where}: reshape changes the element count")
    if x.activation()[0] != out.activation()[0] or x.scale != out.scale:
        raise TfliteImportError(f"{op.where}: reshape changes the quantization")
    b.tensor_of[op.outputs[0]] = b.aliases[op.outputs[0]] = src


def quantize(b, op):
    """QUANTIZE uint8 <-> int8 at the same scale: the integer identity on q - 128."""
    (x,), out = _operands(b, op, 1)
    if x.type not in ("UINT8", "INT8") or out.type not in ("UINT8", "INT8"):
        raise TfliteImportError(f"{op.where}: QUANTIZE from {x.type} to {out.type} is not supported")
    # (TFLite's Requantize fast path flips the top bit; its general path multiplies by exactly 1)
    if x.scale != out.scale or x.activation()[0] != out.activation()[0]:
        raise TfliteImportError(f"{op.where}: a QUANTIZE that rescales ({float(x.scale)} -> {float(out.scale)}, "
                                f"zero point {x.zero_point} -> {out.zero_point}) needs a requantize op")
    b.tensor_of[op.outputs[0]] = b.aliases[op.outputs[0]] = b.source(op.inputs[0], op.where)
    b.notes.append(f"{op.where}: {x.type} -> {out.type} at the same scale is the identity on q - 128")


#: TFLite operator name -> handler(builder, op)
OP_HANDLERS = {
    "CONV_2D": conv_2d,
    "DEPTHWISE_CONV_2D": depthwise_conv_2d,
    "FULLY_CONNECTED": fully_connected,
    "ADD": add,
    "AVERAGE_POOL_2D": average_pool_2d,
    "MEAN": mean,
    "RESHAPE": reshape,
    "SQUEEZE": reshape,
    "QUANTIZE": quantize,
}
