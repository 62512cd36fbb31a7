"""promref's integer arithmetic written as ONNX nodes, exact under ONNX semantics.

This is :mod:`promref.arith` transcribed into a graph: the requantization in
both rounding modes, the residual add's rescaling and the global average's
rounding division.  :mod:`promref.interop.onnx.export` uses these blocks to
lay out whole models; docs/onnx.md explains why each one is exact.

Only operators whose integer semantics the ONNX specification pins down are
used:

* ``Cast`` between integer types: exact when the value fits the target type;
  every Cast below is applied to values proven to fit (int8 outputs are
  clamped first, uint64 values are non-negative and below ``2**63`` when
  cast back to int64).  No Cast relies on wrap-around.
* ``Add``, ``Sub``, ``Mul`` on int64 / uint64: exact when the true result fits
  the type, which the bounds in the comments below guarantee (they follow
  from the loader's overflow proof, docs/spec.md "Overflow bound").
* ``BitShift`` (unsigned types only): a logical right shift of a
  non-negative value, i.e. floor division by a power of two.
* ``Div`` on int64, only with non-negative operands, where truncation (the
  specification's rule for integers) and floor division agree.
* ``Where``, ``Less``, ``Abs``, ``Neg``, ``Max``, ``Min``, ``ReduceSum``,
  ``MatMulInteger``, ``ConvInteger``, ``Transpose``, ``Identity``.

The arithmetic right shift of a signed int64 ``v`` (floor division by
``2**n``), which ONNX has no operator for, is done by moving ``v`` into the
non-negative range first::

    floor(v / 2**n) = (uint64(v + 2**62) >> n) - 2**(62 - n)       # 0 <= n <= 62

exact because ``2**62`` is a multiple of ``2**n`` and ``|v| < 2**62``.
"""
import numpy as np
from onnx import TensorProto, helper, numpy_helper

from ... import arith

__all__ = ["GraphBuilder", "OFFSET_BITS", "scale", "requantize", "clamp_to_int8", "global_average",
           "floor_shift_constants"]

#: the offset 2**OFFSET_BITS that moves a signed int64 into the non-negative range
OFFSET_BITS = 62
OFFSET = 1 << OFFSET_BITS


class GraphBuilder:
    """Collects nodes and initializers of one ONNX graph, with unique names.

    ``const`` stores a NumPy array as an initializer (deduplicated by dtype,
    shape and bytes), ``op`` appends a node and returns its output name(s).
    """

    def __init__(self):
        self.nodes = []
        self.initializers = []
        self._constants = {}
        self._names = set()
        self._produced = set()

    def fresh(self, hint):
        """A tensor name based on ``hint`` that is not used yet."""
        name, i = hint, 1
        while name in self._names:
            i += 1
            name = f"{hint}_{i}"
        self._names.add(name)
        return name

    def reserve(self, name):
        """Claim an exact name (a graph input, output or promref layer name) before building."""
        if name in self._names:
            raise ValueError(f"tensor name {name!r} is used twice")
        self._names.add(name)
        return name

    def _exact_output(self, name):
        if name not in self._names:
            self.reserve(name)
        if name in self._produced:
            raise ValueError(f"tensor {name!r} is produced twice")
        self._produced.add(name)
        return name

    def const(self, value, dtype, hint="const"):
        """An initializer holding ``value`` as ``dtype`` (values must fit exactly)."""
        exact = np.asarray(value)
        array = exact.astype(dtype)
        if exact.dtype.kind in "iu" or exact.dtype == object:
            if not np.array_equal(array.astype(object), exact.astype(object)):
                raise OverflowError(f"constant {hint!r} does not fit {np.dtype(dtype).name}")
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            name = self.fresh(hint)
            self.initializers.append(numpy_helper.from_array(array, name))
            self._constants[key] = name
        return self._constants[key]

    def op(self, op_type, inputs, hint, outputs=1, name=None, domain=None, **attrs):
        """Append a node; returns the name of its output (a list when ``outputs > 1``)."""
        outs = [self._exact_output(name) if name and k == 0 else self.fresh(hint if outputs == 1 else f"{hint}_{k}")
                for k in range(outputs)]
        node = helper.make_node(op_type, list(inputs), outs, name=self.fresh(f"{hint}/{op_type}"),
                                domain=domain, **attrs)
        self.nodes.append(node)
        return outs[0] if outputs == 1 else outs

    def cast(self, x, to, hint, name=None):
        return self.op("Cast", [x], hint, name=name, to=to)


# ---------------------------------------------------------- requantization


def _exact(values):
    """Python-int object array (no wraparound in the constant arithmetic below)."""
    return np.array([int(v) for v in np.ravel(values)], dtype=object).reshape(np.shape(values))


def floor_shift_constants(shift_bits):
    """For shifts ``n`` (0..62): the uint64 shift amounts and the int64 ``2**(62 - n)``."""
    n = _exact(shift_bits)
    if np.any(n < 0) or np.any(n > OFFSET_BITS):
        raise ValueError("right shifts must be in [0, 62]")
    back = np.array([1 << (OFFSET_BITS - int(k)) for k in np.ravel(n)], dtype=object).reshape(n.shape)
    return n, back


def _shaped(values, channel_shape):
    """Per-channel constants reshaped to broadcast on the channel axis."""
    values = np.asarray(values, dtype=object)
    if values.ndim == 0 or values.size == 1:
        return values.reshape(())
    return values.reshape(channel_shape)


def scale(b, x, hint, multiplier, shift, rounding, x_factor=1, bias=0, add_after=0, channel_shape=(-1,)):
    """int64 tensor ``scale(x_factor * x + bias, M, shift) + add_after`` in ONNX nodes.

    ``x`` is an int64 tensor; ``multiplier``, ``shift``, ``bias`` and
    ``add_after`` are per channel (broadcast on ``channel_shape``) or scalars.
    Preconditions (the loader's overflow proof gives them for every layer):
    ``|x_factor * x + bias| * 2**max(shift, 0) <= 2**31 - 1`` and the same
    for ``|x_factor * x|`` alone; ``0 <= M <= 2**31 - 1``; ``-31 <= shift <= 30``.

    ``"single"``: ``floor((v*M + 2**(n-1)) / 2**n)`` with ``n = 31 - shift``.
    ``"double"``: SRDHM (``floor((a*M + 2**30) / 2**31)`` with
    ``a = v * 2**left``, which equals the nudge-and-truncate definition) then
    RoundingDivideByPOT (``floor((s + h) / 2**e)`` with ``h = 2**(e-1)`` for
    ``s >= 0``, ``2**(e-1) - 1`` for ``s < 0``, ``h = 0`` when ``e = 0``).
    """
    m = _exact(np.broadcast_to(np.asarray(multiplier), np.shape(shift)))
    sh = _exact(shift)
    bias = _exact(np.broadcast_to(np.asarray(bias), sh.shape)) if np.ndim(bias) else _exact(bias)
    add_after = _exact(add_after)
    if rounding == "single":
        n = 31 - sh
        left = np.zeros_like(sh)
    elif rounding == "double":
        left = np.array([max(int(s), 0) for s in np.ravel(sh)], dtype=object).reshape(sh.shape)
        n = np.full(sh.shape, 31, dtype=object) if sh.ndim else np.array(31, dtype=object)
    else:
        raise ValueError(f"unknown rounding mode {rounding!r}; expected one of {arith.ROUNDING_MODES}")
    factor = np.vectorize(lambda mm, ll: mm << ll, otypes=[object])(m, left)  # M * 2**left < 2**61
    # v = (x_factor * x + bias) * M * 2**left, |v| < 2**62; move it to (0, 2**63)
    mul = factor * int(x_factor)
    offset = bias * factor + OFFSET
    v = b.op("Mul", [x, b.const(_shaped(mul, channel_shape), np.int64, f"{hint}.mul")], f"{hint}.prod")
    v = b.op("Add", [v, b.const(_shaped(offset, channel_shape), np.int64, f"{hint}.offset")], f"{hint}.shifted")
    u = b.cast(v, TensorProto.UINT64, f"{hint}.u64")
    # + the rounding constant 2**(n-1) in uint64: stays below 2**63 + 2**61 < 2**64
    rounding_term = np.vectorize(lambda k: 1 << (int(k) - 1), otypes=[object])(n)
    u = b.op("Add", [u, b.const(_shaped(rounding_term, channel_shape), np.uint64, f"{hint}.half")], f"{hint}.rounded")
    shift_amount, back = floor_shift_constants(n)
    u = b.op("BitShift", [u, b.const(_shaped(shift_amount, channel_shape), np.uint64, f"{hint}.n")],
             f"{hint}.floor", direction="RIGHT")  # < 2**63 for n >= 1
    y = b.cast(u, TensorProto.INT64, f"{hint}.i64")
    if rounding == "single":
        return b.op("Sub", [y, b.const(_shaped(back - add_after, channel_shape), np.int64, f"{hint}.unshift")],
                    f"{hint}.scaled")
    # double: y = SRDHM + 2**31 (the offset 2**62 shifted by 31), SRDHM in int32 range, so y in [1, 2**32)
    e = -np.vectorize(lambda s: min(int(s), 0), otypes=[object])(sh)  # 0 .. 31
    half_pos = np.vectorize(lambda k: (1 << int(k)) >> 1, otypes=[object])(e)
    half_neg = np.vectorize(lambda k: max(((1 << int(k)) >> 1) - 1, 0), otypes=[object])(e)
    negative = b.op("Less", [y, b.const(np.int64(1 << 31), np.int64, f"{hint}.zero")], f"{hint}.negative")
    half = b.op("Where", [negative, b.const(_shaped(half_neg, channel_shape), np.int64, f"{hint}.half_neg"),
                          b.const(_shaped(half_pos, channel_shape), np.int64, f"{hint}.half_pos")], f"{hint}.h")
    y = b.op("Add", [y, half], f"{hint}.nudged")  # >= 1: non-negative, so the cast is exact
    u = b.cast(y, TensorProto.UINT64, f"{hint}.u64b")
    u = b.op("BitShift", [u, b.const(_shaped(e, channel_shape), np.uint64, f"{hint}.e")], f"{hint}.rdbpot",
             direction="RIGHT")
    y = b.cast(u, TensorProto.INT64, f"{hint}.i64b")
    # floor((s + h) / 2**e) = floor((s + 2**31 + h) / 2**e) - 2**(31 - e)
    back = np.vectorize(lambda k: 1 << (31 - int(k)), otypes=[object])(e)
    return b.op("Sub", [y, b.const(_shaped(back - add_after, channel_shape), np.int64, f"{hint}.unshift")],
                f"{hint}.scaled")


def clamp_to_int8(b, y, lo, hi, hint, name=None):
    """int64 ``y`` -> int8 ``clamp(y, lo, hi)`` (Max, Min, then an exact Cast)."""
    y = b.op("Max", [y, b.const(np.int64(lo), np.int64, f"{hint}.min")], f"{hint}.lo")
    y = b.op("Min", [y, b.const(np.int64(hi), np.int64, f"{hint}.max")], f"{hint}.hi")
    return b.cast(y, TensorProto.INT8, hint, name=name)


def requantize(b, acc, hint, layer, rounding, channel_shape=(-1,), name=None):
    """int32 accumulator (bias not yet added) -> the layer's int8 output.

    ``clamp(z_out + scale(acc + bias, M, shift), out_min, out_max)``.
    """
    acc64 = b.cast(acc, TensorProto.INT64, f"{hint}.acc")
    y = scale(b, acc64, hint, layer.multiplier, layer.shift, rounding, bias=layer.bias,
              add_after=layer.out_zero_point, channel_shape=channel_shape)
    return clamp_to_int8(b, y, layer.out_min, layer.out_max, hint, name=name)


def global_average(b, x, hint, axes=(1, 2), count=None, name=None):
    """int8 NHWC ``x`` -> int8 [N, C]: the raw mean, rounded half away from zero.

    ``q = (|T| + K // 2) / K`` on non-negative int64 (truncation = floor),
    then ``-q`` where ``T < 0`` (docs/spec.md, "global_avgpool").
    """
    x64 = b.cast(x, TensorProto.INT64, f"{hint}.x64")
    total = b.op("ReduceSum", [x64, b.const(np.array(axes, np.int64), np.int64, f"{hint}.axes")],
                 f"{hint}.sum", keepdims=0)
    magnitude = b.op("Abs", [total], f"{hint}.abs")
    magnitude = b.op("Add", [magnitude, b.const(np.int64(count // 2), np.int64, f"{hint}.half")], f"{hint}.rounded")
    q = b.op("Div", [magnitude, b.const(np.int64(count), np.int64, f"{hint}.count")], f"{hint}.quotient")
    negative = b.op("Less", [total, b.const(np.int64(0), np.int64, f"{hint}.zero")], f"{hint}.negative")
    mean = b.op("Where", [negative, b.op("Neg", [q], f"{hint}.neg"), q], f"{hint}.mean")
    return b.cast(mean, TensorProto.INT8, hint, name=name)  # a mean of int8 values fits int8
