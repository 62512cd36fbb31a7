"""Writing ``.tflite`` flatbuffers with the ``tflite`` package's generated builders.

The ``tflite`` package is the TFLite schema compiled by ``flatc`` for Python
(with the ``flatbuffers`` runtime), so the bytes written here follow the
schema LiteRT and TFLite Micro read.  Used by the exporter and by the tests'
hand-made models.
"""
import numpy as np

__all__ = ["FlatbufferGraph"]


class FlatbufferGraph:
    """A one-subgraph TFLite model being written: tensors, operators -> ``.tflite`` bytes.

    ``tensor()`` adds a tensor (constants carry ``data``; quantized ones a float32
    ``scale`` and int64 ``zero_point``, per-tensor or per-channel along ``qdim``) and
    returns its index; ``op()`` adds an operator with its builtin options class and
    fields; ``build()`` writes the flatbuffer with the ``tflite`` package's generated
    builders (file identifier ``TFL3``, schema version 3).
    """

    def __init__(self):
        self.tensors, self.ops, self.opcodes = [], [], []

    def tensor(self, shape, ttype, scale=None, zero_point=None, qdim=0, data=None, name=None):
        self.tensors.append(dict(shape=list(shape), type=ttype, scale=scale, zero_point=zero_point, qdim=qdim,
                                 data=data, name=name or f"t{len(self.tensors)}"))
        return len(self.tensors) - 1

    def op(self, opname, inputs, outputs, options=None, **fields):
        if opname not in self.opcodes:
            self.opcodes.append(opname)
        self.ops.append((self.opcodes.index(opname), inputs, outputs, options, fields))

    def build(self, inputs, outputs):
        import flatbuffers
        import tflite

        b = flatbuffers.Builder(4096)

        def vector(values, dtype):
            return b.CreateNumpyVector(np.asarray(values, dtype=dtype))

        buffers = [None]  # buffer 0: the empty buffer
        tensor_offsets = []
        for t in self.tensors:
            buffer_index = 0
            if t["data"] is not None:
                buffers.append(np.ascontiguousarray(t["data"]).tobytes())
                buffer_index = len(buffers) - 1
            quant = None
            if t["scale"] is not None:
                scale = vector(np.atleast_1d(t["scale"]), np.float32)
                zps = vector(np.atleast_1d(t["zero_point"]), np.int64)
                tflite.QuantizationParametersStart(b)
                tflite.QuantizationParametersAddScale(b, scale)
                tflite.QuantizationParametersAddZeroPoint(b, zps)
                tflite.QuantizationParametersAddQuantizedDimension(b, t["qdim"])
                quant = tflite.QuantizationParametersEnd(b)
            name = b.CreateString(t["name"])
            shape = vector(t["shape"], np.int32)
            tflite.TensorStart(b)
            tflite.TensorAddShape(b, shape)
            tflite.TensorAddType(b, getattr(tflite.TensorType, t["type"]))
            tflite.TensorAddBuffer(b, buffer_index)
            tflite.TensorAddName(b, name)
            if quant is not None:
                tflite.TensorAddQuantization(b, quant)
            tensor_offsets.append(tflite.TensorEnd(b))
        op_offsets = []
        for opcode, ins, outs, options, fields in self.ops:
            opts = None
            if options is not None:
                getattr(tflite, options + "Start")(b)
                for key, value in fields.items():
                    getattr(tflite, f"{options}Add{key}")(b, value)
                opts = getattr(tflite, options + "End")(b)
            ins_v, outs_v = vector(ins, np.int32), vector(outs, np.int32)
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, opcode)
            tflite.OperatorAddInputs(b, ins_v)
            tflite.OperatorAddOutputs(b, outs_v)
            if opts is not None:
                tflite.OperatorAddBuiltinOptionsType(b, getattr(tflite.BuiltinOptions, options))
                tflite.OperatorAddBuiltinOptions(b, opts)
            op_offsets.append(tflite.OperatorEnd(b))

        def table_vector(start, offsets):
            start(b, len(offsets))
            for off in reversed(offsets):
                b.PrependUOffsetTRelative(off)
            return b.EndVector()

        tensors_v = table_vector(tflite.SubGraphStartTensorsVector, tensor_offsets)
        ops_v = table_vector(tflite.SubGraphStartOperatorsVector, op_offsets)
        ins_v, outs_v = vector(inputs, np.int32), vector(outputs, np.int32)
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tensors_v)
        tflite.SubGraphAddOperators(b, ops_v)
        tflite.SubGraphAddInputs(b, ins_v)
        tflite.SubGraphAddOutputs(b, outs_v)
        subgraph = tflite.SubGraphEnd(b)
        code_offsets = []
        for name in self.opcodes:
            code = getattr(tflite.BuiltinOperator, name)
            tflite.OperatorCodeStart(b)
            tflite.OperatorCodeAddBuiltinCode(b, code)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            tflite.OperatorCodeAddVersion(b, 1)
            code_offsets.append(tflite.OperatorCodeEnd(b))
        buffer_offsets = []
        for data in buffers:
            vec = None if data is None else vector(np.frombuffer(data, np.uint8), np.uint8)
            tflite.BufferStart(b)
            if vec is not None:
                tflite.BufferAddData(b, vec)
            buffer_offsets.append(tflite.BufferEnd(b))
        codes_v = table_vector(tflite.ModelStartOperatorCodesVector, code_offsets)
        subgraphs_v = table_vector(tflite.ModelStartSubgraphsVector, [subgraph])
        buffers_v = table_vector(tflite.ModelStartBuffersVector, buffer_offsets)
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, codes_v)
        tflite.ModelAddSubgraphs(b, subgraphs_v)
        tflite.ModelAddBuffers(b, buffers_v)
        b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())
