"""The conformance suite on disk: array files and the JSON manifest.

docs/conformance.md is the specification; this module is its code.

Array files are NumPy ``.npy`` version 1.0, little-endian, C order, written
by :func:`write_npy` itself (not ``np.save``) so that the bytes do not depend
on the NumPy version::

    offset 0   6 bytes   magic "\\x93NUMPY"
    offset 6   2 bytes   version 1, 0
    offset 8   uint16 LE HLEN, the length of the header text
    offset 10  HLEN bytes ASCII: "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }"
                         padded with spaces and ended by "\\n"; 10 + HLEN is a multiple of 64
    offset 10 + HLEN     the raw little-endian values, row-major

The manifest records every file's ``data_offset`` (= 10 + HLEN), so a reader
in any language can seek straight to the values.
"""
import hashlib
import io
import json
import os
import re

import numpy as np

from .. import limits
from ..errors import PromrefError
from ..fileio import loads_json, open_regular, read_regular
from ..limits import bounded_repr

SUITE_FORMAT = "promref-conformance-suite"
SUITE_VERSION = 1
MANIFEST = "manifest.json"

#: manifest dtype name -> little-endian NumPy dtype
DTYPES = {"int8": np.dtype("<i1"), "int32": np.dtype("<i4"), "int64": np.dtype("<i8"), "uint8": np.dtype("u1")}
_DESCR = {"int8": "|i1", "int32": "<i4", "int64": "<i8", "uint8": "|u1"}

NPY_MAGIC = b"\x93NUMPY"
NPY_ALIGN = 64


class SuiteError(PromrefError):
    """A suite directory or manifest is missing, malformed or inconsistent."""


def dtype_name(array):
    """Manifest name ('int8', 'int32', ...) of an array's dtype."""
    dt = np.dtype(array.dtype)
    for name, want in DTYPES.items():
        if dt.kind == want.kind and dt.itemsize == want.itemsize:
            return name
    raise SuiteError(f"dtype {dt} has no suite name (expected one of {tuple(DTYPES)})")


def npy_bytes(array, name=None):
    """The .npy v1.0 bytes of ``array`` (little-endian, C order, header padded to 64)."""
    name = name or dtype_name(array)
    data = np.ascontiguousarray(array, dtype=DTYPES[name])
    shape = tuple(int(s) for s in data.shape)
    shape_text = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    text = f"{{'descr': '{_DESCR[name]}', 'fortran_order': False, 'shape': {shape_text}, }}"
    hlen = len(text) + 1  # + "\n"
    hlen += (-(10 + hlen)) % NPY_ALIGN
    header = NPY_MAGIC + bytes([1, 0]) + hlen.to_bytes(2, "little") + text.ljust(hlen - 1).encode("ascii") + b"\n"
    return header + data.tobytes(order="C")


def write_npy(path, array, name=None):
    """Write ``array`` to ``path``; returns its manifest entry fields (dtype, shape, data_offset, sha256)."""
    raw = npy_bytes(array, name)
    with open(path, "wb") as f:
        f.write(raw)
    offset = 10 + int.from_bytes(raw[8:10], "little")
    return {"dtype": name or dtype_name(array), "shape": [int(s) for s in np.shape(array)],
            "data_offset": offset, "sha256": hashlib.sha256(raw).hexdigest()}


def npy_data_offset(path):
    """Byte offset of the values in the .npy file at ``path`` (versions 1.0, 2.0 and 3.0)."""
    with open(path, "rb") as f:
        head = f.read(12)
    if head[:6] != NPY_MAGIC:
        raise SuiteError(f"{path}: not a .npy file")
    if head[6] == 1:
        return 10 + int.from_bytes(head[8:10], "little")
    return 12 + int.from_bytes(head[8:12], "little")


def read_array(path, dtype, shape):
    """Read a tensor file: ``.npy`` (checked against dtype/shape) or raw little-endian ``.bin``.

    Only regular files of at most :data:`limits.MAX_TENSOR_FILE_BYTES` bytes are read.
    """
    path = os.fspath(path)
    want = DTYPES[dtype]
    shape = tuple(shape)
    raw = read_regular(path, SuiteError, "tensor file", max_bytes=limits.MAX_TENSOR_FILE_BYTES)
    if path.endswith(".npy"):
        try:
            array = np.load(io.BytesIO(raw), allow_pickle=False)
        except (ValueError, EOFError, OSError, SyntaxError) as e:
            raise SuiteError(f"{os.path.basename(path)}: not a readable .npy file: {str(e)[:200]}") from None
        if array.dtype.kind != want.kind or array.dtype.itemsize != want.itemsize:
            raise SuiteError(f"{os.path.basename(path)}: dtype {array.dtype}, expected {dtype}")
        if array.shape != shape:
            raise SuiteError(f"{os.path.basename(path)}: shape {array.shape}, expected {shape}")
        return array.astype(want.newbyteorder("="))
    expected = int(np.prod(shape, dtype=np.int64)) * want.itemsize
    if len(raw) != expected:
        raise SuiteError(f"{os.path.basename(path)}: {len(raw)} bytes, expected {expected} "
                         f"({dtype} {list(shape)}, raw little-endian)")
    return np.frombuffer(raw, dtype=want).reshape(shape).astype(want.newbyteorder("="))


def sha256_file(path):
    digest = hashlib.sha256()
    with open_regular(path, SuiteError, "suite file") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------ manifest

#: fields every case has
CASE_FIELDS = ("id", "kind", "op", "rounding", "description", "params", "inputs", "outputs")
TENSOR_FIELDS = ("name", "file", "dtype", "shape", "data_offset", "sha256")

#: scalar parameters each op's case carries in "params"
OP_PARAMS = {
    "requantize": ("out_zero_point", "out_min", "out_max"),
    "pointwise_ternary": ("in_zero_point", "out_zero_point", "out_min", "out_max"),
    "conv2d": ("in_zero_point", "weight_zero_point", "out_zero_point", "out_min", "out_max",
               "kernel", "stride", "padding"),
    "depthwise_conv2d": ("in_zero_point", "weight_zero_point", "out_zero_point", "out_min", "out_max",
                         "kernel", "stride", "padding"),
    "fully_connected": ("in_zero_point", "weight_zero_point", "out_zero_point", "out_min", "out_max"),
    "add": ("a_zero_point", "b_zero_point", "left_shift", "out_zero_point", "out_min", "out_max"),
    "global_avgpool": (),
    "model": (),
}
#: input tensors (in this order) each op's case carries
OP_INPUTS = {
    "requantize": ("acc", "multiplier", "shift"),
    "pointwise_ternary": ("x", "weights", "bias", "multiplier", "shift"),
    "conv2d": ("x", "weights", "bias", "multiplier", "shift"),
    "depthwise_conv2d": ("x", "weights", "bias", "multiplier", "shift"),
    "fully_connected": ("x", "weights", "bias", "multiplier", "shift"),
    "add": ("a", "b", "multiplier", "shift"),
    "global_avgpool": ("x",),
    "model": ("x",),
}
OPS = tuple(OP_INPUTS)


#: case ids and tensor names: plain printable words, so they can never inject lines or paths
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _require(condition, where, message):
    if not condition:
        raise SuiteError(f"{where}: {message}")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def safe_file(rel, where):
    """A manifest file name: a relative path of safe names (no '..', no absolute path)."""
    _require(isinstance(rel, str), where, f"file must be a string, got {bounded_repr(rel)}")
    parts = rel.split("/")
    _require(all(SAFE_NAME.fullmatch(p) and p not in (".", "..") for p in parts), where,
             f"file {bounded_repr(rel)} is not a plain relative path inside the suite")
    return rel


def _check_tensor(t, where):
    _require(isinstance(t, dict), where, f"a tensor entry must be an object, got {bounded_repr(t)}")
    for name in TENSOR_FIELDS:
        _require(name in t, where, f"tensor {bounded_repr(t.get('name'))} lacks {name!r}")
    _require(isinstance(t["name"], str) and SAFE_NAME.fullmatch(t["name"]), where,
             f"tensor name {bounded_repr(t['name'])} must match {SAFE_NAME.pattern}")
    safe_file(t["file"], f"{where}, tensor {t['name']!r}")
    _require(isinstance(t["dtype"], str) and t["dtype"] in DTYPES, where,
             f"tensor {t['name']!r} has dtype {bounded_repr(t['dtype'])}")
    _require(isinstance(t["shape"], list) and len(t["shape"]) <= 8
             and all(_is_int(s) and 0 <= s <= limits.MAX_TENSOR_FILE_BYTES for s in t["shape"]), where,
             f"tensor {t['name']!r} has shape {bounded_repr(t['shape'])}")
    _require(_is_int(t["data_offset"]) and 0 <= t["data_offset"] < 1 << 20, where,
             f"tensor {t['name']!r} has data_offset {bounded_repr(t['data_offset'])}")
    _require(isinstance(t["sha256"], str) and _SHA256.fullmatch(t["sha256"]), where,
             f"tensor {t['name']!r} has sha256 {bounded_repr(t['sha256'])}")


def _check_case(case, seen):
    _require(isinstance(case, dict), "manifest", f"a case must be an object, got {bounded_repr(case)}")
    cid = case.get("id")
    _require(isinstance(cid, str) and len(cid) <= 400
             and all(SAFE_NAME.fullmatch(p) and p not in (".", "..") for p in cid.split("/")), "manifest",
             f"case id {bounded_repr(cid)} must be '/'-separated names matching {SAFE_NAME.pattern}")
    where = f"case {cid!r}"
    for name in CASE_FIELDS:
        _require(name in case, where, f"missing field {name!r}")
    _require(cid not in seen, where, "duplicate id")
    seen.add(cid)
    op = case["op"]
    _require(isinstance(op, str) and op in OPS, where, f"unknown op {bounded_repr(op)}")
    _require(case["kind"] == ("model" if op == "model" else "op"), where,
             f"kind {bounded_repr(case['kind'])} does not match op {op!r}")
    _require(case["rounding"] in ("single", "double", None), where, f"rounding {bounded_repr(case['rounding'])}")
    params = case["params"]
    _require(isinstance(params, dict), where, f"params must be an object, got {bounded_repr(params)}")
    for key, value in params.items():
        _require(SAFE_NAME.fullmatch(key) is not None, where, f"param name {bounded_repr(key)}")
        _require(_is_int(value) or (isinstance(value, list) and len(value) <= 16 and all(_is_int(v) for v in value)),
                 where, f"param {key!r} must be an int or a list of ints, got {bounded_repr(value)}")
    missing = [p for p in OP_PARAMS[op] if p not in params]
    _require(not missing, where, f"params lack {missing}")
    for group in ("inputs", "outputs"):
        _require(isinstance(case[group], list) and len(case[group]) <= 4096, where, f"{group} must be a list")
        for t in case[group]:
            _check_tensor(t, where)
    names = [t["name"] for t in case["inputs"]]
    _require(names == list(OP_INPUTS[op]), where, f"inputs {names}, expected {list(OP_INPUTS[op])}")
    _require(case["outputs"], where, "no outputs")
    out_names = [t["name"] for t in case["outputs"]]
    _require(len(set(out_names)) == len(out_names), where, "duplicate output names")
    if op == "model":
        w = case.get("weights")
        _require(isinstance(w, dict) and "file" in w, where, "model case without weights")
        safe_file(w["file"], f"{where}, weights")
        _require(isinstance(w.get("sha256"), str) and _SHA256.fullmatch(w["sha256"]), where,
                 "weights lack a valid sha256")


def check_manifest(manifest, suite_dir=None):
    """Raise :class:`SuiteError` unless ``manifest`` follows the schema (docs/conformance.md):
    ids and tensor names are safe names, files are plain relative paths inside the suite, every
    value has its type.  Given ``suite_dir``, every file must exist there as a regular file.
    Returns the manifest."""
    _require(isinstance(manifest, dict) and manifest.get("format") == SUITE_FORMAT, "manifest",
             f"not a promref conformance manifest (format != {SUITE_FORMAT!r})")
    version = manifest.get("format_version")
    _require(_is_int(version) and version == SUITE_VERSION, "manifest",
             f"unsupported suite format_version {bounded_repr(version)}")
    cases = manifest.get("cases")
    _require(isinstance(cases, list) and cases, "manifest", "manifest has no cases")
    _require(len(cases) <= limits.MAX_SUITE_CASES, "manifest", f"more than {limits.MAX_SUITE_CASES} cases")
    seen = set()
    for case in cases:
        _check_case(case, seen)
        if suite_dir is not None:
            files = [t["file"] for t in case["inputs"] + case["outputs"]]
            files += [case["weights"]["file"]] if case["op"] == "model" else []
            for rel in files:
                if not os.path.isfile(os.path.join(suite_dir, rel)):
                    raise SuiteError(f"case {case['id']!r}: file {rel!r} is missing from {suite_dir}")
    return manifest


def load_manifest(suite_dir):
    """Read and check ``suite_dir/manifest.json`` (a regular file, bounded size and depth)."""
    suite_dir = os.fspath(suite_dir)
    path = os.path.join(suite_dir, MANIFEST)
    if not os.path.isdir(suite_dir):
        raise SuiteError(f"{suite_dir}: not a directory (a conformance suite is a directory)")
    if not os.path.lexists(path):
        raise SuiteError(f"{suite_dir}: no {MANIFEST} (not a conformance suite directory?)")
    raw = read_regular(path, SuiteError, "suite manifest", max_bytes=limits.MAX_MANIFEST_BYTES)
    try:
        manifest = loads_json(raw)
    except ValueError as e:
        raise SuiteError(f"{path}: invalid JSON: {e}") from None
    return check_manifest(manifest, suite_dir)


def verified_path(suite_dir, entry):
    """The path of a manifest file entry (``file`` + ``sha256``), after checking its hash."""
    path = os.path.join(suite_dir, entry["file"])
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise SuiteError(f"{entry['file']}: sha256 {digest} does not match the manifest's {entry['sha256']} "
                         "(the suite is corrupted)")
    return path


def load_case_arrays(suite_dir, entries):
    """{name: array} for a list of tensor entries of the manifest, each verified against its sha256."""
    return {t["name"]: read_array(verified_path(suite_dir, t), t["dtype"], t["shape"]) for t in entries}
