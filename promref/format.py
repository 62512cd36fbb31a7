"""The promref weights file: an uncompressed ``.npz`` (a zip of ``.npy`` files)
read with ``allow_pickle=False`` only.  docs/format.md is the specification.

Members:

``meta``
    uint8 [n]: UTF-8 JSON with the format version, input spec, rounding mode,
    labels and one record per layer (op, kind, inputs, geometry, zero points,
    clamps, scales).
``<layer>/weights``
    int8 weights; for ``pointwise_ternary`` uint8 bytes holding 2-bit codes
    (4 per byte, see ``arith.pack_ternary``).
``<layer>/bias``, ``<layer>/multiplier``, ``<layer>/shift``
    int32 per output channel (``add``: multiplier and shift only, [3]).
``<layer>/weight_scale``
    float32 per output channel (optional, informational).
"""
import json
import os
import zipfile

import numpy as np

from . import arith
from .errors import WeightsFormatError
from .model import InputSpec, Layer, Model, WEIGHTED_OPS, record_fields
from .validate import check_int, validate, weight_shape

FORMAT_NAME = "promref"
FORMAT_VERSION = 1
MAX_MEMBER_BYTES = 1 << 30  # refuse zip members that would unpack to more than 1 GiB

#: {field: JSON kind} of a layer record and of the input record, from the dataclasses (the schema, once)
_LAYER_KINDS = record_fields(Layer)
_INPUT_KINDS = record_fields(InputSpec)
_LAYER_FIELDS = tuple(_LAYER_KINDS)
_INPUT_FIELDS = tuple(_INPUT_KINDS)


# ------------------------------------------------------------------ save


def _layer_record(layer):
    """The layer's JSON record: plain Python ints, floats and strings only."""
    record = {f: getattr(layer, f) for f in _LAYER_FIELDS}
    for f in (f for f, kind in _LAYER_KINDS.items() if kind == "int"):
        record[f] = int(record[f])
    record["out_scale"] = float(layer.out_scale)
    record["inputs"] = [str(i) for i in layer.inputs]
    record["padding"] = [int(p) for p in layer.padding]
    return record


def _layer_arrays(layer):
    arrays = {}
    if layer.op in WEIGHTED_OPS:
        arrays["weights"] = (arith.pack_ternary(layer.weights) if layer.op == "pointwise_ternary"
                             else layer.weights)
        arrays["bias"] = layer.bias
        if layer.weight_scale is not None:
            arrays["weight_scale"] = layer.weight_scale
    if layer.op in WEIGHTED_OPS or layer.op == "add":
        arrays["multiplier"] = layer.multiplier
        arrays["shift"] = layer.shift
    # C order always: a reader in another language expects fortran_order False
    return {f"{layer.name}/{k}": np.ascontiguousarray(v) for k, v in arrays.items()}


def save(model, path):
    """Validate ``model`` and write it to ``path`` (.npz, uncompressed, no pickles)."""
    validate(model)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "name": model.name,
        "arch": model.arch,
        "rounding": model.rounding,
        "input": dict(height=int(model.input.height), width=int(model.input.width),
                      resize=int(model.input.resize), resample=model.input.resample,
                      scale=float(model.input.scale), zero_point=int(model.input.zero_point),
                      mean=[float(v) for v in model.input.mean], std=[float(v) for v in model.input.std]),
        "labels": list(model.labels),
        "metadata": model.metadata,
        "layers": [_layer_record(layer) for layer in model.layers],
    }
    arrays = {"meta": np.frombuffer(json.dumps(meta, indent=1).encode("utf-8"), dtype=np.uint8)}
    for layer in model.layers:
        arrays.update(_layer_arrays(layer))
    with open(path, "wb") as f:  # a file object, so numpy does not append ".npz"
        np.savez(f, **arrays)


# ------------------------------------------------------------------ load


def _read_member(archive, info, path):
    """One ``.npy`` member -> ndarray.  The header is checked before any data is
    read: object dtypes (pickles) are refused, and the declared shape must
    match the member's size, so a lying header cannot make us allocate."""
    where = f"{path}: member {info.filename!r}"
    if not info.filename.endswith(".npy"):
        raise WeightsFormatError(f"{where}: not an .npy array")
    if info.file_size > MAX_MEMBER_BYTES:
        raise WeightsFormatError(f"{where}: unpacks to {info.file_size} bytes (limit {MAX_MEMBER_BYTES})")
    with archive.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f"unsupported .npy version {version}")
            shape, fortran_order, dtype = read_header(f)
        except Exception as e:  # numpy raises ValueError, SyntaxError, TokenError... on bad headers
            raise WeightsFormatError(f"{where}: corrupt .npy header: {e}") from None
        if dtype.hasobject:
            raise WeightsFormatError(f"{where}: contains pickled (object) data, which promref never loads")
        count = 1
        for n in shape:
            count *= n
        header_size = f.tell()
        if count * dtype.itemsize != info.file_size - header_size:
            raise WeightsFormatError(f"{where}: header declares {shape} {dtype} "
                                     f"({count * dtype.itemsize} bytes) but the member holds "
                                     f"{info.file_size - header_size} bytes")
        data = f.read()
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")
    return array.copy(order="C")  # writable, C order, 0-d arrays stay 0-d


def _read_members(path):
    """All arrays of the npz at ``path`` as a dict {name without .npy: array}.

    Reads the zip directly (never ``np.load``, never pickles): every member
    must be a plain ``.npy`` array whose header is sane.
    """
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":  # zipfile would accept data prepended to an archive
                raise WeightsFormatError(f"{path}: not a .npz file (it does not start with a zip header)")
        with zipfile.ZipFile(path) as archive:
            members = {}
            for info in archive.infolist():
                members[info.filename[:-4]] = _read_member(archive, info, path)
            return members
    except WeightsFormatError:
        raise
    except FileNotFoundError:
        raise WeightsFormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise WeightsFormatError(f"{path}: is a directory, not a weights file") from None
    except zipfile.BadZipFile as e:
        raise WeightsFormatError(f"{path}: not a valid .npz (zip) file: {e}") from None
    except (OSError, EOFError, zipfile.LargeZipFile, KeyError, RuntimeError, ValueError, NotImplementedError) as e:
        raise WeightsFormatError(f"{path}: corrupt or truncated file: {e}") from None


def _field(where, record, name, kind):
    if name not in record:
        raise WeightsFormatError(f"{where}: missing field {name!r}")
    value = record[name]
    ok = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "list": lambda v: isinstance(v, list),
        "dict": lambda v: isinstance(v, dict),
    }[kind](value)
    if not ok:
        raise WeightsFormatError(f"{where}.{name}: expected {kind}, got {value!r}")
    if kind == "float":
        try:
            return float(value)
        except OverflowError:
            raise WeightsFormatError(f"{where}.{name}: number {value} is too large") from None
    return value


def _no_unknown_keys(where, record, known):
    unknown = sorted(set(record) - set(known))
    if unknown:
        raise WeightsFormatError(f"{where}: unknown field(s) {unknown}")


def _parse_meta(path, raw):
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise WeightsFormatError(f"{path}: member 'meta' must be a 1-D uint8 array of JSON bytes")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise WeightsFormatError(f"{path}: member 'meta' is not valid UTF-8 JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise WeightsFormatError(f"{path}: not a promref weights file (meta.format != {FORMAT_NAME!r})")
    version = meta.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise WeightsFormatError(f"{path}: unsupported format version {version!r} "
                                 f"(this promref reads version {FORMAT_VERSION})")
    return meta


def _build_input(path, meta):
    rec = _field(f"{path}: meta", meta, "input", "dict")
    where = f"{path}: input"
    kinds = _INPUT_KINDS
    values = {name: _field(where, rec, name, kind) for name, kind in kinds.items()}
    _no_unknown_keys(where, rec, kinds)
    for name in ("mean", "std"):
        if len(values[name]) != 3 or not all(isinstance(v, (int, float)) for v in values[name]):
            raise WeightsFormatError(f"{where}.{name}: expected 3 numbers, got {values[name]!r}")
        values[name] = tuple(float(v) for v in values[name])
    return InputSpec(**values)


def _build_layer(path, index, rec, members, used):
    where = f"{path}: layer {index}"
    if not isinstance(rec, dict):
        raise WeightsFormatError(f"{where}: expected a JSON object")
    kinds = _LAYER_KINDS
    values = {name: _field(where, rec, name, kind) for name, kind in kinds.items()}
    _no_unknown_keys(where, rec, kinds)
    values["inputs"] = tuple(values["inputs"])
    values["padding"] = tuple(values["padding"])
    layer = Layer(**values)
    where = f"{path}: layer {layer.name!r}"

    def take(field, required=True):
        key = f"{layer.name}/{field}"
        if key not in members:
            if required:
                raise WeightsFormatError(f"{where}: missing array {key!r}")
            return None
        used.add(key)
        return members[key]

    if layer.op in WEIGHTED_OPS:
        weights = take("weights")
        if layer.op == "pointwise_ternary":
            weights = _unpack_ternary(where, weights, layer)
        layer.weights = weights
        layer.bias = take("bias")
        layer.weight_scale = take("weight_scale", required=False)
    if layer.op in WEIGHTED_OPS or layer.op == "add":
        layer.multiplier = take("multiplier")
        layer.shift = take("shift")
    return layer


def _unpack_ternary(where, packed, layer):
    check_int(f"{where}.in_channels", layer.in_channels, 1, 1 << 20)
    check_int(f"{where}.out_channels", layer.out_channels, 1, 1 << 20)
    shape = weight_shape(layer)
    count = int(np.prod(shape))
    nbytes = (count + 3) // 4
    if packed.dtype != np.uint8 or packed.shape != (nbytes,):
        raise WeightsFormatError(f"{where}.weights: packed ternary weights must be uint8 [{nbytes}], "
                                 f"got {packed.dtype} {packed.shape}")
    codes, padding = arith.unpack_ternary_codes(packed, count)
    if np.any(codes == 3):
        first = int(np.argmax(codes == 3))
        raise WeightsFormatError(f"{where}.weights: ternary code 0b11 (invalid) at weight {first}; "
                                 "codes are 00 = 0, 01 = +1, 10 = -1")
    if np.any(padding):
        raise WeightsFormatError(f"{where}.weights: padding bits after the last weight must be zero")
    return arith.codes_to_ternary(codes).reshape(shape)


def load(path):
    """Read, validate and return the :class:`~promref.model.Model` stored at ``path``.

    Raises :class:`~promref.errors.WeightsFormatError` (naming the file, layer
    and field) for anything unreadable, inconsistent or unsafe, including
    weights whose int32 accumulators could overflow.
    """
    path = os.fspath(path)
    members = _read_members(path)
    if "meta" not in members:
        raise WeightsFormatError(f"{path}: missing member 'meta' (not a promref weights file?)")
    meta = _parse_meta(path, members["meta"])
    where = f"{path}: meta"
    _no_unknown_keys(where, meta, ("format", "format_version", "name", "arch", "rounding", "input", "labels",
                                   "metadata", "layers"))
    layers_meta = _field(where, meta, "layers", "list")
    labels = _field(where, meta, "labels", "list")
    used = {"meta"}
    model = Model(
        name=_field(where, meta, "name", "str"),
        input=_build_input(path, meta),
        layers=[_build_layer(path, i, rec, members, used) for i, rec in enumerate(layers_meta)],
        labels=tuple(labels),
        rounding=_field(where, meta, "rounding", "str"),
        arch=_field(where, meta, "arch", "dict"),
        metadata=_field(where, meta, "metadata", "dict"),
    )
    extra = sorted(set(members) - used)
    if extra:
        raise WeightsFormatError(f"{path}: unexpected member(s) {extra} not described by meta")
    try:
        return validate(model)
    except WeightsFormatError as e:
        raise type(e)(f"{path}: {e}") from None
