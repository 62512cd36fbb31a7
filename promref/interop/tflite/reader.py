"""The checked reader: a ``.tflite`` file -> plain Python records, or a TfliteImportError.

Every byte of a file is read here and nowhere else.  The flatbuffer is
decoded with the ``tflite`` package's generated accessors, and all of them
run inside :func:`_decoding`, which turns what a corrupt buffer makes them
raise (``struct.error``, ``TypeError``, ``IndexError``, ``ValueError``,
``UnicodeDecodeError``...) into :class:`TfliteImportError`.  Before a vector
is walked its length is checked against the file size (a flipped byte must
not make the reader loop four billion times), every tensor index an operator
names is checked against the tensor count, and a constant's byte size
against its shape.  The op handlers (``import_ops``) then see only these
records, never the flatbuffer.

Limits: a file of at most :data:`MAX_FILE_BYTES`; tensor dimensions in
``[0, 2**24]`` with at most ``2**31`` elements.
"""
import contextlib
import os
import stat
import struct
from dataclasses import dataclass, field

import numpy as np

from ...errors import PromrefError
from .prepare import TfliteImportError

__all__ = ["TensorRecord", "OperatorRecord", "GraphRecord", "read_tflite", "read_labels", "MAX_FILE_BYTES"]

MAX_FILE_BYTES = 512 << 20
MAX_DIM = 1 << 24
MAX_ELEMENTS = 1 << 31
#: options each supported op's handler reads: op -> (options class, fields)
OPTION_FIELDS = {
    "CONV_2D": ("Conv2DOptions", ("Padding", "StrideW", "StrideH", "DilationWFactor", "DilationHFactor",
                                  "FusedActivationFunction")),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", ("Padding", "StrideW", "StrideH", "DilationWFactor",
                                                     "DilationHFactor", "FusedActivationFunction",
                                                     "DepthMultiplier")),
    "FULLY_CONNECTED": ("FullyConnectedOptions", ("FusedActivationFunction", "WeightsFormat")),
    "ADD": ("AddOptions", ("FusedActivationFunction",)),
    "AVERAGE_POOL_2D": ("Pool2DOptions", ("Padding", "StrideW", "StrideH", "FilterWidth", "FilterHeight",
                                          "FusedActivationFunction")),
}
_DTYPES = {"UINT8": "<u1", "INT8": "<i1", "INT32": "<i4", "INT64": "<i8", "FLOAT32": "<f4", "INT16": "<i2"}


@dataclass
class TensorRecord:
    """One tensor: type, shape, quantization and (for constants) its data (a read-only array)."""
    index: int
    name: str
    type: str
    shape: tuple
    scales: object = None          # float32 [k] or None
    zero_points: object = None     # int64 [k] or None
    quantized_dimension: int = 0
    data: object = None            # numpy array of ``shape`` or None

    def dims(self, rank, where):
        """The shape, which must have ``rank`` dimensions."""
        if len(self.shape) != rank:
            raise TfliteImportError(f"{where}: tensor {self.name!r} must have {rank} dimensions, "
                                    f"has shape {list(self.shape)}")
        return self.shape

    def constant(self, where):
        """The data of a constant tensor (error if the tensor is not constant)."""
        if self.data is None:
            raise TfliteImportError(f"{where}: tensor {self.name!r} must be a constant")
        return self.data

    def quantized(self, where):
        """(float32 scales [k], int64 zero points [k]) of a quantized tensor."""
        if self.scales is None:
            raise TfliteImportError(f"{where}: tensor {self.name!r} has no quantization parameters")
        return self.scales, self.zero_points

    @property
    def scale(self):
        """The per-tensor scale (float32); error if per-channel or absent."""
        if self.scales is None or self.scales.size != 1:
            raise TfliteImportError(f"tensor {self.name!r}: expected one (per-tensor) scale, got "
                                    f"{None if self.scales is None else self.scales.size}")
        return np.float32(self.scales[0])

    @property
    def zero_point(self):
        if self.zero_points is None or self.zero_points.size != 1:
            raise TfliteImportError(f"tensor {self.name!r}: expected one (per-tensor) zero point")
        return int(self.zero_points[0])

    def activation(self):
        """(int8 zero point, offset to add to raw values, qmin, qmax) of an activation tensor.

        uint8 tensors are moved to int8 by subtracting 128 (offset -128).
        """
        if self.type == "UINT8":
            return self.zero_point - 128, -128, 0, 255
        if self.type == "INT8":
            return self.zero_point, 0, -128, 127
        raise TfliteImportError(f"tensor {self.name!r}: activations must be uint8 or int8, got {self.type}")


@dataclass
class OperatorRecord:
    index: int
    opname: str
    inputs: list       # tensor indices, -1 for an omitted optional input
    outputs: list
    options: dict = field(default_factory=dict)   # the fields of OPTION_FIELDS; activation as its name

    @property
    def where(self):
        return f"operator {self.index} ({self.opname})"


@dataclass
class GraphRecord:
    """The one subgraph of a file."""
    path: str
    tensors: list
    operators: list
    inputs: list
    outputs: list


@contextlib.contextmanager
def _decoding(path, what):
    """Turn the exceptions a corrupt flatbuffer makes the accessors raise into TfliteImportError."""
    try:
        yield
    except PromrefError:
        raise
    except (struct.error, TypeError, IndexError, ValueError, KeyError, AttributeError, OverflowError,
            UnicodeDecodeError, MemoryError) as e:
        raise TfliteImportError(f"{path}: corrupt TFLite flatbuffer while reading {what} "
                                f"({type(e).__name__})") from None


def _read_file(path):
    """The file's bytes: a regular file of at most MAX_FILE_BYTES (a FIFO would block forever)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise TfliteImportError(f"{path}: not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise TfliteImportError(f"{path}: {info.st_size} bytes is over the limit of {MAX_FILE_BYTES}")
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise TfliteImportError(f"{path}: cannot read the file ({e.strerror or type(e).__name__})") from None
    if len(raw) < 8 or raw[4:8] != b"TFL3":
        raise TfliteImportError(f"{path}: not a TFLite flatbuffer (no 'TFL3' file identifier)")
    return raw


def _length(count, raw, element_bytes, what):
    """A vector length read from the file, checked against what the file can hold."""
    if not 0 <= count <= len(raw) // element_bytes:
        raise TfliteImportError(f"corrupt TFLite flatbuffer: {what} claims {count} entries")
    return count


def _enum_names(enum_class):
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


def _tflite():
    try:
        import tflite
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise TfliteImportError("reading .tflite files needs the 'tflite' package (pip install tflite)") from e
    return tflite


def _shape(tensor, raw, name):
    count = _length(tensor.ShapeLength(), raw, 4, f"the shape of {name!r}")
    shape = tuple(int(tensor.Shape(i)) for i in range(count))
    if any(not 0 <= d <= MAX_DIM for d in shape) or int(np.prod(shape, dtype=np.float64)) > MAX_ELEMENTS:
        raise TfliteImportError(f"tensor {name!r}: shape {list(shape)} is out of range")
    return shape


def _tensor(index, tensor, model, raw, type_names):
    name = tensor.Name().decode("utf-8", "replace") if tensor.Name() else f"tensor{index}"
    record = TensorRecord(index, name, type_names.get(tensor.Type(), str(tensor.Type())), _shape(tensor, raw, name))
    q = tensor.Quantization()
    if q is not None and q.ScaleLength():
        _length(q.ScaleLength(), raw, 4, f"the scales of {name!r}")
        record.scales = np.array(q.ScaleAsNumpy(), dtype=np.float32)
        if not np.all(np.isfinite(record.scales) & (record.scales > 0)):
            raise TfliteImportError(f"tensor {name!r}: scales must be finite and positive")
        zero_points = _length(q.ZeroPointLength(), raw, 8, f"the zero points of {name!r}")
        record.zero_points = (np.array(q.ZeroPointAsNumpy(), dtype=np.int64) if zero_points
                              else np.zeros(1, np.int64))
        record.quantized_dimension = int(q.QuantizedDimension())
    buffer_index = tensor.Buffer()
    if 0 < buffer_index < model.BuffersLength():
        record.data = _constant(record, model.Buffers(buffer_index), raw)
    return record


def _constant(record, buffer, raw):
    """The constant data of a tensor, from its buffer (inline, or after the flatbuffer in large models)."""
    if buffer.DataLength():
        data = buffer.DataAsNumpy().tobytes()
    elif buffer.Offset() > 1:
        start, size = int(buffer.Offset()), int(buffer.Size())
        if start + size > len(raw):
            raise TfliteImportError(f"tensor {record.name!r}: its data lie outside the file")
        data = raw[start:start + size]
    else:
        return None
    dtype = _DTYPES.get(record.type)
    if dtype is None:
        raise TfliteImportError(f"tensor {record.name!r}: constant of type {record.type} is not supported")
    count = int(np.prod(record.shape, dtype=np.int64))
    if len(data) != count * np.dtype(dtype).itemsize:
        raise TfliteImportError(f"tensor {record.name!r}: {len(data)} bytes of data for shape {list(record.shape)}")
    return np.frombuffer(data, dtype=dtype).reshape(record.shape)


def _indices(count_fn, item_fn, raw, n_tensors, what, optional=False):
    count = _length(count_fn(), raw, 4, what)
    values = [int(item_fn(i)) for i in range(count)]
    low = -1 if optional else 0
    if any(not low <= v < n_tensors for v in values):
        raise TfliteImportError(f"corrupt TFLite flatbuffer: {what} names a tensor out of range")
    return values


def _operator(k, op, opcodes, raw, n_tensors, tflite, activation_names):
    index = op.OpcodeIndex()
    if not 0 <= index < len(opcodes):
        raise TfliteImportError(f"operator {k}: opcode index {index} out of range")
    record = OperatorRecord(k, opcodes[index], [], [])
    record.inputs = _indices(op.InputsLength, op.Inputs, raw, n_tensors, f"{record.where} inputs", optional=True)
    record.outputs = _indices(op.OutputsLength, op.Outputs, raw, n_tensors, f"{record.where} outputs")
    if record.opname in OPTION_FIELDS:
        cls_name, fields = OPTION_FIELDS[record.opname]
        options = getattr(tflite, cls_name)()
        table = op.BuiltinOptions()
        if table is not None:
            options.Init(table.Bytes, table.Pos)
        for name in fields:
            record.options[name] = int(getattr(options, name)())
        if "FusedActivationFunction" in record.options:
            code = record.options.pop("FusedActivationFunction")
            record.options["activation"] = activation_names.get(code, str(code))
    return record


def read_tflite(path):
    """Decode a ``.tflite`` file -> :class:`GraphRecord` (one subgraph), or raise TfliteImportError."""
    path = os.fspath(path)
    raw = _read_file(path)
    tflite = _tflite()
    type_names = _enum_names(tflite.TensorType)
    op_names = _enum_names(tflite.BuiltinOperator)
    activation_names = _enum_names(tflite.ActivationFunctionType)
    with _decoding(path, "the model header"):
        model = tflite.Model.GetRootAsModel(raw, 0)
        _length(model.BuffersLength(), raw, 4, "the buffer list")
        subgraphs = _length(model.SubgraphsLength(), raw, 4, "the subgraph list")
        if subgraphs != 1:
            raise TfliteImportError(f"{path}: expected one subgraph, found {subgraphs}")
        graph = model.Subgraphs(0)
        opcodes = []
        for i in range(_length(model.OperatorCodesLength(), raw, 4, "the operator codes")):
            code = model.OperatorCodes(i)
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            opcodes.append(op_names.get(builtin, f"op{builtin}"))
    with _decoding(path, "the tensors"):
        n_tensors = _length(graph.TensorsLength(), raw, 4, "the tensor list")
        tensors = [_tensor(i, graph.Tensors(i), model, raw, type_names) for i in range(n_tensors)]
    with _decoding(path, "the operators"):
        n_ops = _length(graph.OperatorsLength(), raw, 4, "the operator list")
        operators = [_operator(k, graph.Operators(k), opcodes, raw, n_tensors, tflite, activation_names)
                     for k in range(n_ops)]
        inputs = _indices(graph.InputsLength, graph.Inputs, raw, n_tensors, "the graph inputs")
        outputs = _indices(graph.OutputsLength, graph.Outputs, raw, n_tensors, "the graph outputs")
    return GraphRecord(path, tensors, operators, inputs, outputs)


def read_labels(path):
    """One label a line of a UTF-8 text file (blank lines at the end dropped)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise TfliteImportError(f"{path}: the labels file is not a regular file")
        if info.st_size > (16 << 20):
            raise TfliteImportError(f"{path}: the labels file is over 16 MiB")
        with open(path, encoding="utf-8") as f:
            labels = [line.rstrip("\r\n") for line in f]
    except OSError as e:
        raise TfliteImportError(f"{path}: cannot read the labels file ({e.strerror or type(e).__name__})") from None
    except UnicodeDecodeError:
        raise TfliteImportError(f"{path}: the labels file is not UTF-8 text") from None
    while labels and not labels[-1].strip():
        labels.pop()
    return tuple(labels)
