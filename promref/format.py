"""The promref weights file: an uncompressed ``.npz`` (a zip of ``.npy`` files),
read by :mod:`promref.npzread` (never ``np.load``, never pickles).  docs/format.md is the specification.

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

import numpy as np

from . import arith, limits
from .errors import WeightsFormatError
from .fileio import loads_json
from .limits import bounded_repr
from .model import InputSpec, Layer, Model, OPS, WEIGHTED_OPS, record_fields
from .npzread import NpzReader
from .validate import check_int, validate, weight_shape

FORMAT_NAME = "promref"
FORMAT_VERSION = 1
MAX_MEMBER_BYTES = limits.MAX_MEMBER_BYTES  # kept for callers; every limit lives in promref.limits

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


def _expected_members(path, layers_meta):
    """The member keys ``meta``'s layer list calls for (before any layer member is read).

    Each record needs a string ``name`` and a known ``op`` here already, so an
    unknown op is reported as such and not as "unexpected members".
    """
    expected, names = {"meta"}, set()
    for index, rec in enumerate(layers_meta):
        where = f"{path}: layer {index}"
        if not isinstance(rec, dict):
            raise WeightsFormatError(f"{where}: expected a JSON object")
        name, op = _field(where, rec, "name", "str"), _field(where, rec, "op", "str")
        if name in names or name == "input":  # refused here, before a member is read twice
            raise WeightsFormatError(f"{where}: layer names must be unique non-empty strings (and not 'input'), "
                                     f"got {name[:100]!r} again")
        names.add(name)
        if op not in OPS:
            raise WeightsFormatError(f"{where} ({name[:100]!r}): unknown op {op[:100]!r}; expected one of {OPS}")
        fields = (("weights", "bias", "weight_scale") if op in WEIGHTED_OPS else ()) + \
            (("multiplier", "shift") if op in WEIGHTED_OPS or op == "add" else ())
        expected.update(f"{name}/{f}" for f in fields)
    return expected


def _open_weights(source):
    """An :class:`~promref.npzread.NpzReader` on ``source`` with the weights-file limits."""
    return NpzReader(source, WeightsFormatError, what="weights file", max_members=limits.MAX_MEMBERS,
                     max_member_bytes=limits.MAX_MEMBER_BYTES, max_total_bytes=limits.MAX_TOTAL_BYTES)


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
        raise WeightsFormatError(f"{where}.{name}: expected {kind}, got {bounded_repr(value)}")
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
        meta = loads_json(raw.tobytes(), allow_nan=True)  # NaN: refused per field
    except ValueError as e:
        raise WeightsFormatError(f"{path}: member 'meta' is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise WeightsFormatError(f"{path}: not a promref weights file (meta.format != {FORMAT_NAME!r})")
    version = meta.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise WeightsFormatError(f"{path}: unsupported format version {bounded_repr(version)} "
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
            raise WeightsFormatError(f"{where}.{name}: expected 3 numbers, got {bounded_repr(values[name])}")
        values[name] = tuple(float(v) for v in values[name])
    return InputSpec(**values)


def _build_layer(path, index, rec, reader):
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
        if key not in reader:
            if required:
                raise WeightsFormatError(f"{where}: missing array {key!r}")
            return None
        return reader.read(key)

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


def load(source):
    """Read, validate and return the :class:`~promref.model.Model` stored in ``source``.

    ``source``: a path (str, bytes or os.PathLike) of a regular file, or a
    binary file object (``read`` and ``seek``, e.g. ``io.BytesIO``).  Raises
    :class:`~promref.errors.WeightsFormatError` (naming the file, layer and
    field) for anything unreadable, inconsistent, unsafe or over the limits
    of docs/format.md ("Resource limits"), including weights whose int32
    accumulators could overflow; nothing is inflated before its size is known
    to be within the limits and its member is known to be called for.
    """
    with _open_weights(source) as reader:
        path = reader.where
        if "meta" not in reader:
            raise WeightsFormatError(f"{path}: missing member 'meta' (not a promref weights file?)")
        if reader.size("meta") > limits.MAX_META_BYTES:
            raise WeightsFormatError(f"{path}: member 'meta' is {reader.size('meta')} bytes "
                                     f"(limit {limits.MAX_META_BYTES})")
        meta = _parse_meta(path, reader.read("meta"))
        where = f"{path}: meta"
        _no_unknown_keys(where, meta, ("format", "format_version", "name", "arch", "rounding", "input", "labels",
                                       "metadata", "layers"))
        layers_meta = _field(where, meta, "layers", "list")
        if len(layers_meta) > limits.MAX_LAYERS:
            raise WeightsFormatError(f"{where}: {len(layers_meta)} layers, more than the limit of {limits.MAX_LAYERS}")
        extra = sorted(set(reader.names) - _expected_members(path, layers_meta))
        if extra:  # refused before a single layer member is inflated
            shown = ", ".join(repr(e[:100]) for e in extra[:10]) + (", ..." if len(extra) > 10 else "")
            raise WeightsFormatError(f"{path}: {len(extra)} unexpected member(s) not described by meta: {shown}")
        labels = _field(where, meta, "labels", "list")
        model = Model(
            name=_field(where, meta, "name", "str"),
            input=_build_input(path, meta),
            layers=[_build_layer(path, i, rec, reader) for i, rec in enumerate(layers_meta)],
            labels=tuple(labels),
            rounding=_field(where, meta, "rounding", "str"),
            arch=_field(where, meta, "arch", "dict"),
            metadata=_field(where, meta, "metadata", "dict"),
        )
    try:
        return validate(model)
    except WeightsFormatError as e:
        raise type(e)(f"{path}: {e}") from None


def member_nbytes(source):
    """{member key: bytes of its array} of a weights file, from the ``.npy`` headers alone.

    Read through the same bounded, pickle-free reader and limits as :func:`load`
    (nothing is inflated); raises :class:`~promref.errors.WeightsFormatError`.
    The energy report's storage table uses it for the bytes of weights, meta
    and overhead.
    """
    with _open_weights(source) as reader:
        return {key: reader.nbytes(key) for key in reader.names}
