"""Trainable units with hand-written forward and backward passes.

Each unit is one layer of the integer graph (a conv with its batch norm and
activation, a residual add, the pool, the classifier) and runs in one of two
modes:

``float``
    float32 tensors; batch norm uses batch statistics when training.
``qat``
    quantization-aware: tensors are :class:`QTensor` (int8 codes with scale and
    zero point).  Batch norm is frozen and folded into the weights, the folded
    weights are quantized, and the unit builds the very :class:`~promref.model.Layer`
    record that export writes -- then runs it with the integer engine's kernel.
    So the QAT forward *is* the integer model, bit for bit.  The backward pass
    treats rounding as identity (straight-through estimator) and passes no
    gradient where the output was clamped.

Shapes: float feature maps NHWC (int8 codes NHWC or channel-major: :class:`QTensor`);
pointwise weights [Cout, Cin]; depthwise [3, 3, C]; stem [Cout, 3, 3, Cin]; classifier [K, C].
"""
import numpy as np

from .. import arith
from ..engine import op_table
from ..interop.tflite.prepare import add_parameters, conv_multipliers
from ..kernels import fast
from ..model import Layer
from ..validate import bias_limit
from . import functional as F
from .quantizers import RELU6_SCALE, RELU6_ZERO_POINT, RangeObserver, quantize_weights

BN_EPS = 1e-5
BN_MOMENTUM = 0.1

#: how a unit derives its integer multipliers from its scales (TrainConfig.multipliers):
#: "float64": ``arith.quantize_multiplier`` of the float64 scale ratio (the round-1/2 models);
#: "tflite": every scale rounded to float32 first, then TFLite's Prepare rule
#: (``interop/tflite/prepare.py``: ``conv_multipliers``, ``add_parameters``), so that a
#: ``.tflite`` file's float32 scales make TFLite derive exactly the model's integers
MULTIPLIER_RULES = ("float64", "tflite")


def conv_rescale(in_scale, weight_scale, out_scale, rule):
    """-> (out_scale as stored, accumulator scale float64 [Cout], multiplier int32 [Cout], shift int32 [Cout])
    of a conv / FC layer: one accumulator unit is ``in_scale * weight_scale`` real."""
    if rule == "tflite":
        s_in, s_out = float(np.float32(in_scale)), float(np.float32(out_scale))
        multiplier, shift = conv_multipliers(s_in, weight_scale, s_out)
        return s_out, np.float64(s_in) * np.asarray(weight_scale, np.float32).astype(np.float64), multiplier, shift
    acc_scale = np.float64(in_scale) * weight_scale.astype(np.float64)  # real value of one accumulator unit
    multiplier, shift = arith.quantize_multipliers(acc_scale / out_scale)
    return float(out_scale), acc_scale, multiplier, shift


def add_rescale(scale_a, scale_b, out_scale, rule):
    """-> (out_scale as stored, multiplier int32 [3], shift int32 [3]) of a residual add."""
    if rule == "tflite":
        s_out = float(np.float32(out_scale))
        _, multiplier, shift = add_parameters(scale_a, scale_b, s_out, arith.ADD_LEFT_SHIFT)
        return s_out, multiplier, shift
    multiplier, shift = arith.add_multipliers(scale_a, scale_b, out_scale)
    return float(out_scale), multiplier, shift


#: how a QTensor's feature-map codes are stored: NHWC, or the fast backend's channel-major
#: [C, N, H, W] (kernels/fast/_layout.py), which its kernels read and write with no conversion
NHWC, CHANNEL_MAJOR = "nhwc", "channel_major"


def qat_kernels(backend):
    """-> (op table, layout) of the QAT forward on ``backend``: the Numba backend's
    channel-major kernels on channel-major codes (the integer engine's own, with no layout
    conversion per layer: they were 19 % of a QAT step), else the backend's NHWC table."""
    if backend == "numba":
        return fast.CHANNEL_MAJOR_OPS, CHANNEL_MAJOR
    return op_table(backend), NHWC


class QTensor:
    """int8 codes ``q`` standing for the real values ``scale * (q - zero_point)``, stored in
    ``layout`` (a feature map NHWC or channel-major; vectors [N, C] are always NHWC).  Its
    real values are computed once, when first asked for (a tensor read by two units, or by
    a unit and by its producer's straight-through backward, is dequantized once)."""
    __slots__ = ("q", "scale", "zero_point", "layout", "_real")

    def __init__(self, q, scale, zero_point, layout=NHWC):
        self.q, self.scale, self.zero_point, self.layout, self._real = q, scale, zero_point, layout, None

    def real(self):
        """float32 NHWC ``(q - zero_point) * scale`` (one fused pass, F.dequantize*; do not modify it)."""
        if self._real is None:
            dequantize = F.dequantize_channel_major if self.layout == CHANNEL_MAJOR else F.dequantize
            self._real = dequantize(self.q, self.zero_point, self.scale)
        return self._real

    def nhwc_codes(self):
        """The int8 codes, NHWC (as the engine's trace shows them)."""
        return fast.to_nhwc(self.q) if self.layout == CHANNEL_MAJOR else self.q


def straight_through(dy, out, lo, hi):
    """The straight-through gradient through the QTensor ``out``: ``dy`` (float32, NHWC or
    [N, C]) where ``lo < out.q < hi``, 0 where the output saturated.  Channel-major codes
    are compared through their NHWC real values (no transposed read of the codes)."""
    if out.layout != CHANNEL_MAJOR:
        return F.straight_through(dy, out.q, lo, hi)
    zp, scale = np.float32(out.zero_point), np.float32(out.scale)
    if not np.isfinite(scale) or scale < np.finfo(np.float32).tiny * 256:  # F.straight_through_real's premise
        return F.straight_through(dy, fast.to_nhwc(out.q), lo, hi)
    return F.straight_through_real(dy, out.real(), (np.float32(lo) - zp) * scale, (np.float32(hi) - zp) * scale)


def _he(rng, shape, fan_in):
    return (rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)).astype(np.float32)


class Unit:
    """Base class: ``name``, ``inputs``, ``params``/``grads`` dicts, ``buffers``."""

    def __init__(self, name, kind, op, inputs):
        self.name, self.kind, self.op, self.inputs = name, kind, op, tuple(inputs)
        self.params, self.grads, self.buffers = {}, {}, {}
        self.layer = None  # the integer Layer record built by the last QAT forward
        self.multipliers = "float64"  # MULTIPLIER_RULES; set by the Network

    def zero_grad(self):
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    # -- the one interface the Network calls (no dispatch on the unit's type there) --

    def forward(self, inputs, mode, training, ops=None, rounding=None, quantized_weights=False):
        """The unit's output from its ``inputs`` (float32 arrays, or QTensors in 'qat' mode).
        ``quantized_weights`` (float mode) concerns only the units that have weights to quantize."""
        if mode == "float":
            return self.forward_float(*inputs, training)
        return self.forward_qat(*inputs, training, ops, rounding)

    def backward(self, dy, mode, need_dx):
        """dL/d(each input) as a tuple, one per ``inputs`` (None where ``need_dx`` is false)."""
        return ((self.backward_float if mode == "float" else self.backward_qat)(dy, need_dx),)

    def use_batch_statistics(self, on):
        """QAT training steps fold each batch's statistics (``on``): only batch-norm units care."""


class ConvFloatUnit(Unit):
    """stem / pointwise / depthwise conv + batch norm + optional ReLU6: its parameters, the
    float32 forward and backward, batch statistics and the batch-norm fold (the float phase;
    :class:`ConvUnit` adds quantization, export and the QAT phase)."""

    def __init__(self, shape, ternary, rng):
        super().__init__(shape.name, shape.kind, shape.op, shape.inputs)
        self.stride, self.kernel, self.relu6 = shape.stride, shape.kernel, shape.relu6
        self.ternary = ternary
        cin, cout = shape.in_channels, shape.out_channels
        self.cin, self.cout = cin, cout
        if shape.op == "depthwise_conv2d":
            w = _he(rng, (3, 3, cout), 9)
        elif shape.kernel == 3:
            w = _he(rng, (cout, 3, 3, cin), 9 * cin)
        else:
            w = _he(rng, (cout, cin), cin)
        self.params = dict(w=w, gamma=np.ones(cout, np.float32), beta=np.zeros(cout, np.float32))
        self.buffers = dict(mean=np.zeros(cout, np.float32), var=np.ones(cout, np.float32))
        self.observer = RangeObserver()
        self.bn_momentum = BN_MOMENTUM
        self.qat_batch_stats = False  # QAT training steps fold batch statistics (forward_qat)

    def forward(self, inputs, mode, training, ops=None, rounding=None, quantized_weights=False):
        if mode == "float":
            return self.forward_float(*inputs, training, quantized_weights)
        return super().forward(inputs, mode, training, ops, rounding)

    def use_batch_statistics(self, on):
        self.qat_batch_stats = bool(on)

    # -- the linear map, float32 ------------------------------------------

    def _conv(self, x, w):
        """x [N, H, W, Cin] -> z [N, Ho, Wo, Cout] (no bias)."""
        if self.op == "depthwise_conv2d":
            return F.depthwise_forward(x, w, self.stride, 1)
        if self.kernel == 3:
            cols = F.im2col(x, 3, self.stride, 1)
            return cols @ w.reshape(self.cout, -1).T
        return (x.reshape(-1, self.cin) @ w.T).reshape(x.shape[:3] + (self.cout,))

    def _conv_backward(self, x, w, dz, need_dx):
        """-> (dx or None, dw) for z = conv(x, w)."""
        if self.op == "depthwise_conv2d":
            return F.depthwise_backward(x, w, dz, self.stride, 1)
        dz2 = dz.reshape(-1, self.cout)
        if self.kernel == 3:
            cols = F.im2col(x, 3, self.stride, 1)
            dw = (dz2.T @ cols.reshape(dz2.shape[0], -1)).reshape(w.shape)
            return None, dw  # the stem reads the image: no input gradient needed
        dw = dz2.T @ x.reshape(-1, self.cin)
        dx = (dz2 @ w).reshape(x.shape) if need_dx else None
        return dx, dw

    # -- float mode ----------------------------------------------------------

    def _batch_statistics(self, z2):
        """Batch mean and biased variance (float64 [C]) of z2 [P, C]; the running estimates
        follow them (momentum ``bn_momentum``, unbiased variance, as PyTorch's BatchNorm)."""
        mean, var = F.channel_mean_var(z2)
        n = z2.shape[0]
        self.buffers["mean"] += self.bn_momentum * (mean.astype(np.float32) - self.buffers["mean"])
        self.buffers["var"] += self.bn_momentum * ((var * n / max(n - 1, 1)).astype(np.float32) - self.buffers["var"])
        return mean, var

    def forward_float(self, x, training, quantized_weights=False):
        """Float forward.  ``quantized_weights`` uses the dequantized ternary/int8
        weights (before batch-norm folding): used to re-estimate batch-norm
        statistics for the quantized network before QAT starts."""
        w = self._dequantized(self.params["w"]) if quantized_weights else self.params["w"]
        z = self._conv(x, w)
        z2 = z.reshape(-1, self.cout)
        if training:
            mean, var = self._batch_statistics(z2)
        else:
            mean, var = self.buffers["mean"], self.buffers["var"]
        inv_std = (1.0 / np.sqrt(var + BN_EPS)).astype(np.float32)
        scale = self.params["gamma"] * inv_std
        shift = self.params["beta"] - mean.astype(np.float32) * scale
        y = F.affine_act_forward(z2, scale.astype(np.float32), shift.astype(np.float32), self.relu6)
        if training and not self.relu6:
            self.observer.update(y)
        self._saved = (x, z2, y, mean.astype(np.float32), inv_std, training)
        return y.reshape(z.shape)

    def backward_float(self, dy, need_dx):
        x, z2, y, mean, inv_std, batch_stats = self._saved
        dz, dgamma, dbeta = F.bn_act_backward(dy.reshape(z2.shape), y, z2, mean, inv_std,
                                              self.params["gamma"], self.relu6, batch_stats)
        dx, dw = self._conv_backward(x, self.params["w"], dz.reshape(dy.shape[:3] + (self.cout,)), need_dx)
        self.grads["w"] += dw
        self.grads["gamma"] += dgamma
        self.grads["beta"] += dbeta
        return dx

    # -- the batch-norm fold (QAT and export) -----------------------------

    def fold_batch_norm(self, stats=None):
        """Batch norm folded into the weights: w_fold = w * k, b_fold = beta - mean * k,
        k = gamma / sqrt(var + eps); (mean, var) float32 [C] are ``stats``, else the running ones."""
        mean, var = stats if stats is not None else (self.buffers["mean"], self.buffers["var"])
        k = self.params["gamma"] / np.sqrt(var + BN_EPS)
        w = self.params["w"]
        w_fold = w * k if self.op == "depthwise_conv2d" else w * k.reshape((-1,) + (1,) * (w.ndim - 1))
        return w_fold.astype(np.float32), (self.params["beta"] - mean * k).astype(np.float32), k


def _dequantize(op, codes, scale):
    """Integer weight codes times their per-output-channel scale, float32 (a depthwise conv's
    channels are its last axis, every other conv's its first)."""
    if op == "depthwise_conv2d":
        return codes.astype(np.float32) * scale
    return codes.astype(np.float32) * scale.reshape((-1,) + (1,) * (codes.ndim - 1))


class ConvUnit(ConvFloatUnit):
    """A :class:`ConvFloatUnit` that also quantizes: its integer layer (to_layer), the QAT
    forward through the integer kernels and its straight-through backward."""

    def layer_real_weights(self, layer):
        """The real (dequantized, folded) weights of ``layer``, in this unit's layout."""
        return _dequantize(self.op, layer.weights.reshape(self.params["w"].shape), layer.weight_scale)

    def _dequantized(self, w):
        return _dequantize(self.op, *self._quantized_weights(w))

    def _quantized_weights(self, w_fold):
        """-> (integer codes in the engine's layout, float32 scale per output channel)."""
        if self.op == "depthwise_conv2d":  # per-channel quantization along the last axis
            q, s = quantize_weights(np.moveaxis(w_fold, -1, 0), False)
            return np.ascontiguousarray(np.moveaxis(q, 0, -1)), s
        return quantize_weights(w_fold, self.ternary)

    def out_qparams(self):
        """(scale, zero point, clamp min, clamp max) of this unit's int8 output."""
        scale, zero_point = (RELU6_SCALE, RELU6_ZERO_POINT) if self.relu6 else self.observer.qparams()
        return scale, zero_point, -128, 127

    def to_layer(self, in_scale, in_zero_point):
        """The integer Layer this unit stands for, given its input's quantization."""
        return self._layer_and_folded_bias(in_scale, in_zero_point)[0]

    def _layer_and_folded_bias(self, in_scale, in_zero_point, stats=None):
        """-> (the integer Layer, the float folded bias b_fold [Cout]); ``stats``: fold_batch_norm's."""
        w_fold, b_fold, _ = self.fold_batch_norm(stats)
        w_int, w_scale = self._quantized_weights(w_fold)
        out_scale, out_zp, lo, hi = self.out_qparams()
        out_scale, acc_scale, multiplier, shift = conv_rescale(in_scale, w_scale, out_scale, self.multipliers)
        bound = bias_limit(self.op, w_int, in_zero_point, shift)
        bias = np.clip(np.rint(b_fold / acc_scale), -bound, bound).astype(np.int32)
        op = "pointwise_ternary" if self.ternary else self.op
        if op == "conv2d" and self.kernel == 1:
            w_int = w_int.reshape(self.cout, 1, 1, self.cin)  # the engine's [Cout, kh, kw, Cin]
        layer = Layer(name=self.name, kind=self.kind, op=op, inputs=self.inputs, in_channels=self.cin,
                      out_channels=self.cout, out_zero_point=out_zp, out_min=lo, out_max=hi,
                      out_scale=float(out_scale), kernel=self.kernel, stride=self.stride,
                      padding=(self.kernel // 2,) * 4, weights=w_int, weight_scale=w_scale.astype(np.float32),
                      bias=bias, multiplier=multiplier, shift=shift)
        return layer, b_fold

    def forward_qat(self, x, training, ops, rounding):
        """QAT forward: the integer Layer of the folded, quantized weights, run by the engine's kernel.

        With ``qat_batch_stats`` (set by the loop for the first ``batch_stats_epochs_qat`` QAT
        epochs) a training step folds *this batch's* statistics instead of the running ones:
        they are those of ``z = conv(x_real, Q(w))`` (quantizing then scaling by k equals
        folding then quantizing, so they are the statistics the fold renormalises), and the
        running estimates follow them.  Eval mode, and so export, always folds the running ones.
        """
        batch = None
        if training and self.qat_batch_stats:
            x_real = x.real()
            w_q = self._dequantized(self.params["w"])
            z2 = self._conv(x_real, w_q).reshape(-1, self.cout)
            mean, var = self._batch_statistics(z2)
            mean, var = mean.astype(np.float32), var.astype(np.float32)
            batch = (w_q, z2, mean, (1.0 / np.sqrt(var + BN_EPS)).astype(np.float32))
            layer, b_fold = self._layer_and_folded_bias(x.scale, x.zero_point, (mean, var))
        else:
            layer, b_fold = self._layer_and_folded_bias(x.scale, x.zero_point)
        out = QTensor(ops[layer.op](x.q, layer, x.zero_point, rounding), layer.out_scale, layer.out_zero_point,
                      x.layout)
        self.layer = layer
        if training and batch is not None:
            if not self.relu6:  # the real pre-activation (z - mean) * k + beta
                w_q, z2, mean, inv_std = batch
                self.observer.update((z2 - mean) * (self.params["gamma"] * inv_std) + self.params["beta"])
            self._saved = (x_real, None, out, batch)
        elif training:
            x_real = x.real()
            w_real = self.layer_real_weights(layer)
            if not self.relu6:  # track the unclamped real output range
                self.observer.update(self._conv(x_real, w_real) + b_fold)
            self._saved = (x_real, w_real, out, None)
        return out

    def backward_qat(self, dy, need_dx):
        x_real, w_real, out, batch = self._saved
        layer = self.layer
        # straight-through: d(acc_real) = dy where the output was not clamped
        dz = straight_through(dy, out, layer.out_min, layer.out_max)
        if batch is not None:
            return self._backward_batch_stats(x_real, dz, batch, need_dx)
        dx, dw_fold = self._conv_backward(x_real, w_real, dz, need_dx)
        db_fold = dz.reshape(-1, self.cout).sum(axis=0)
        k = self.params["gamma"] / np.sqrt(self.buffers["var"] + BN_EPS)
        inv_std = 1.0 / np.sqrt(self.buffers["var"] + BN_EPS)
        w = self.params["w"]
        if self.op == "depthwise_conv2d":
            self.grads["w"] += dw_fold * k
            wsum = (dw_fold * w).sum(axis=(0, 1))
        else:
            kb = k.reshape((-1,) + (1,) * (w.ndim - 1))
            self.grads["w"] += dw_fold * kb
            wsum = (dw_fold * w).reshape(self.cout, -1).sum(axis=1)
        self.grads["gamma"] += (wsum * inv_std - db_fold * self.buffers["mean"] * inv_std).astype(np.float32)
        self.grads["beta"] += db_fold.astype(np.float32)
        return dx

    def _backward_batch_stats(self, x_real, dz, batch, need_dx):
        """Backward of u = (z - mean_B) * gamma * inv_std_B + beta, z = conv(x_real, Q(w)), with the
        batch statistics depending on z (the usual batch-norm backward, F.bn_act_backward) and the
        straight-through estimator for Q (dL/dw = dL/dQ(w)); dz = dL/du [N, Ho, Wo, Cout]."""
        w_q, z2, mean, inv_std = batch
        dz2, dgamma, dbeta = F.bn_act_backward(dz.reshape(z2.shape), z2, z2, mean, inv_std,
                                               self.params["gamma"], False, True)
        dx, dw = self._conv_backward(x_real, w_q, dz2.reshape(dz.shape), need_dx)
        self.grads["w"] += dw
        self.grads["gamma"] += dgamma
        self.grads["beta"] += dbeta
        return dx


class AddUnit(Unit):
    """Residual add; in QAT mode TFLite's ADD structure (left shift 20)."""

    def __init__(self, shape):
        super().__init__(shape.name, shape.kind, "add", shape.inputs)
        self.channels = shape.out_channels
        self.observer = RangeObserver()

    def forward_float(self, a, b, training):
        y = a + b
        if training:
            self.observer.update(y)
        return y

    def backward_float(self, dy):
        return dy, dy

    def backward(self, dy, mode, need_dx):
        return (self.backward_float if mode == "float" else self.backward_qat)(dy)

    def to_layer(self, sa, sb):
        """Layer for inputs with scales ``sa`` and ``sb`` (zero points do not enter the parameters)."""
        out_scale, out_zp = self.observer.qparams()
        out_scale, multiplier, shift = add_rescale(sa, sb, out_scale, self.multipliers)
        return Layer(name=self.name, kind="add", op="add", inputs=self.inputs, in_channels=self.channels,
                     out_channels=self.channels, out_zero_point=out_zp, out_scale=float(out_scale),
                     multiplier=multiplier, shift=shift, left_shift=arith.ADD_LEFT_SHIFT)

    def forward_qat(self, a, b, training, ops, rounding):
        layer = self.to_layer(a.scale, b.scale)
        out = QTensor(ops["add"](a.q, b.q, layer, a.zero_point, b.zero_point, rounding), layer.out_scale,
                      layer.out_zero_point, a.layout)
        self.layer = layer
        if training:
            self.observer.update(a.real() + b.real())
            self._saved = out
        return out

    def backward_qat(self, dy):
        d = straight_through(dy, self._saved, self.layer.out_min, self.layer.out_max)
        return d, d


class PoolUnit(Unit):
    """Global average pool: keeps its input's quantization."""

    def __init__(self, shape):
        super().__init__(shape.name, shape.kind, "global_avgpool", shape.inputs)
        self.channels = shape.out_channels

    def forward_float(self, x, training):
        self._hw = x.shape[1:3]
        return x.mean(axis=(1, 2))

    def backward_float(self, dy):
        h, w = self._hw
        return np.broadcast_to((dy / (h * w))[:, None, None, :], (dy.shape[0], h, w, dy.shape[1])).astype(np.float32)

    def to_layer(self, in_scale, in_zero_point):
        return Layer(name=self.name, kind="pool", op="global_avgpool", inputs=self.inputs,
                     in_channels=self.channels, out_channels=self.channels, out_zero_point=in_zero_point,
                     out_scale=float(in_scale))

    def forward_qat(self, x, training, ops, rounding):
        self._hw = x.q.shape[2:4] if x.layout == CHANNEL_MAJOR else x.q.shape[1:3]
        self.layer = self.to_layer(x.scale, x.zero_point)
        return QTensor(ops["global_avgpool"](x.q, self.layer, x.zero_point, rounding), x.scale, x.zero_point)

    backward_qat = backward_float

    def backward(self, dy, mode, need_dx):
        return (self.backward_float(dy),)   # the same in both modes


class LinearUnit(Unit):
    """The classifier: int8 weights per output channel, int32 bias, no batch norm."""

    def __init__(self, shape, rng):
        super().__init__(shape.name, shape.kind, "fully_connected", shape.inputs)
        self.cin, self.cout = shape.in_channels, shape.out_channels
        self.params = dict(w=(rng.normal(0, 0.01, size=(self.cout, self.cin))).astype(np.float32),
                           b=np.zeros(self.cout, np.float32))
        self.observer = RangeObserver()

    def forward_float(self, x, training):
        y = x @ self.params["w"].T + self.params["b"]
        if training:
            self.observer.update(y)
        self._saved = x
        return y

    def backward_float(self, dy, need_dx=True):
        x = self._saved
        self.grads["w"] += dy.T @ x
        self.grads["b"] += dy.sum(axis=0)
        return dy @ self.params["w"]

    def to_layer(self, in_scale, in_zero_point):
        w_int, w_scale = arith.quantize_int8_symmetric(self.params["w"], axis=0)
        out_scale, out_zp = self.observer.qparams()
        out_scale, acc_scale, multiplier, shift = conv_rescale(in_scale, w_scale, out_scale, self.multipliers)
        bound = bias_limit("fully_connected", w_int, in_zero_point, shift)
        bias = np.clip(np.rint(self.params["b"] / acc_scale), -bound, bound).astype(np.int32)
        return Layer(name=self.name, kind="classifier", op="fully_connected", inputs=self.inputs,
                     in_channels=self.cin, out_channels=self.cout, out_zero_point=out_zp,
                     out_scale=float(out_scale), weights=w_int, weight_scale=w_scale, bias=bias,
                     multiplier=multiplier, shift=shift)

    def forward_qat(self, x, training, ops, rounding):
        layer = self.to_layer(x.scale, x.zero_point)
        q = ops["fully_connected"](x.q, layer, x.zero_point, rounding)
        self.layer = layer
        if training:
            x_real = x.real()
            w_real = layer.weights.astype(np.float32) * layer.weight_scale[:, None]
            self.observer.update(x_real @ w_real.T + self.params["b"])
            self._saved = (x_real, w_real, QTensor(q, layer.out_scale, layer.out_zero_point))
        return QTensor(q, layer.out_scale, layer.out_zero_point)

    def backward_qat(self, dy, need_dx=True):
        x_real, w_real, out = self._saved
        d = straight_through(dy, out, self.layer.out_min, self.layer.out_max)
        self.grads["w"] += d.T @ x_real
        self.grads["b"] += d.sum(axis=0)
        return d @ w_real
