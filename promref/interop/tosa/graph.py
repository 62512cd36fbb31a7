"""A thin layer over ``tosa_serializer``: constants, zero points and the few op
patterns the exporter repeats (RESCALE, CLAMP, RESHAPE, SLICE), each with its
TOSA 1.0 operand list in one place."""
import numpy as np

from .rescale import TosaExportError


def tosa_serializer():
    """The ``tosa_serializer`` module of the ``tosa-tools`` package, or a clear error."""
    try:
        import tosa_serializer
    except ImportError as e:
        raise TosaExportError("the TOSA export needs the 'tosa-tools' package "
                              "(pip install tosa-tools, or promref[interop])") from e
    return tosa_serializer


class TosaGraph:
    """One TOSA basic block under construction.

    Tensors are referred to by their serializer names; :meth:`output` marks a
    tensor as a graph output (outputs keep the order in which they are marked).
    """

    def __init__(self):
        self.ts = tosa_serializer()
        self.D = self.ts.DType
        self.ser = self.ts.TosaSerializer("")
        self.consts = 0
        self.tensors = {}  # name -> serializer tensor (intermediates, to mark as outputs)

    def input(self, name, shape, dtype):
        self.ser.addInputTensor(self.ts.TosaSerializerTensor(name, list(shape), dtype))
        return name

    def const(self, values, dtype, hint="const"):
        """A constant tensor; ``values`` is converted to the NumPy type of ``dtype``."""
        numpy_type = {self.D.INT8: np.int8, self.D.INT32: np.int32, self.D.SHAPE: np.int64}[dtype]
        array = np.ascontiguousarray(values, dtype=numpy_type)
        self.consts += 1
        self.ser.addConst(list(array.shape), dtype, array, name=f"{hint}_{self.consts}")
        return f"{hint}_{self.consts}"

    def zero_point(self, value, dtype):
        return self.const([int(value)], dtype, "zp")

    def op(self, op, inputs, shape, dtype, attr):
        """Add ``op`` reading ``inputs``; returns the name of its new output tensor."""
        tensor = self.ser.addIntermediate(list(shape), dtype)
        self.tensors[tensor.name] = tensor
        self.ser.addOperator(op, list(inputs), [tensor.name], attr)
        return tensor.name

    def output(self, name):
        self.ser.addOutputTensor(self.tensors[name])

    def attribute(self):
        return self.ts.TosaSerializerAttribute()

    def serialize(self):
        return bytes(self.ser.serialize())

    # ------------------------------------------------------------ patterns

    def rescale(self, src, shape, in_dtype, out_dtype, multipliers, shifts, rounding, input_zp=0, output_zp=0):
        """RESCALE (scale32) with per-channel (or one) TOSA multipliers and total right shifts.

        multipliers, shifts: sequences of length C (the last axis) or 1;
        rounding: 'single' or 'double' (TOSA SINGLE_ROUND / DOUBLE_ROUND).
        """
        mode = {"single": self.ts.RoundingMode.SINGLE_ROUND, "double": self.ts.RoundingMode.DOUBLE_ROUND}[rounding]
        attr = self.attribute()
        attr.RescaleAttribute(True, mode, len(multipliers) > 1, False, False)
        inputs = [src, self.const(multipliers, self.D.INT32, "multiplier"), self.const(shifts, self.D.INT8, "shift"),
                  self.zero_point(input_zp, in_dtype), self.zero_point(output_zp, out_dtype)]
        return self.op(self.ts.Op.RESCALE, inputs, shape, out_dtype, attr)

    def clamp(self, src, shape, lo, hi):
        """CLAMP an int8 tensor to [lo, hi]."""
        convert = self.ts.TosaSerializer.convertDataToUint8Vec
        attr = self.attribute()
        attr.ClampAttribute(convert(self.D.INT8, [int(lo)]), convert(self.D.INT8, [int(hi)]),
                            self.ts.NanPropagationMode.PROPAGATE)
        return self.op(self.ts.Op.CLAMP, [src], shape, self.D.INT8, attr)

    def reshape(self, src, shape, dtype):
        attr = self.attribute()
        attr.ReshapeAttribute()
        return self.op(self.ts.Op.RESHAPE, [src, self.const(list(shape), self.D.SHAPE, "shape")], shape, dtype, attr)

    def slice(self, src, start, size, dtype):
        attr = self.attribute()
        attr.SliceAttribute()
        inputs = [src, self.const(list(start), self.D.SHAPE, "start"), self.const(list(size), self.D.SHAPE, "size")]
        return self.op(self.ts.Op.SLICE, inputs, size, dtype, attr)
