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
import json
import os

import numpy as np

SUITE_FORMAT = "promref-conformance-suite"
SUITE_VERSION = 1
MANIFEST = "manifest.json"

#: manifest dtype name -> little-endian NumPy dtype
DTYPES = {"int8": np.dtype("<i1"), "int32": np.dtype("<i4"), "int64": np.dtype("<i8"), "uint8": np.dtype("u1")}
_DESCR = {"int8": "|i1", "int32": "<i4", "int64": "<i8", "uint8": "|u1"}

NPY_MAGIC = b"\x93NUMPY"
NPY_ALIGN = 64


class SuiteError(ValueError):
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
    """Read a tensor file: ``.npy`` (checked against dtype/shape) or raw little-endian ``.bin``."""
    path = os.fspath(path)
    want = DTYPES[dtype]
    shape = tuple(shape)
    if path.endswith(".npy"):
        array = np.load(path, allow_pickle=False)
        if array.dtype.kind != want.kind or array.dtype.itemsize != want.itemsize:
            raise SuiteError(f"{os.path.basename(path)}: dtype {array.dtype}, expected {dtype}")
        if array.shape != shape:
            raise SuiteError(f"{os.path.basename(path)}: shape {array.shape}, expected {shape}")
        return array.astype(want.newbyteorder("="))
    size = os.path.getsize(path)
    expected = int(np.prod(shape, dtype=np.int64)) * want.itemsize
    if size != expected:
        raise SuiteError(f"{os.path.basename(path)}: {size} bytes, expected {expected} "
                         f"({dtype} {list(shape)}, raw little-endian)")
    return np.fromfile(path, dtype=want).reshape(shape).astype(want.newbyteorder("="))


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
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


def check_manifest(manifest, suite_dir=None):
    """Raise :class:`SuiteError` unless ``manifest`` follows the schema (and, given
    ``suite_dir``, every file it names exists).  Returns the manifest."""
    if not isinstance(manifest, dict) or manifest.get("format") != SUITE_FORMAT:
        raise SuiteError(f"not a promref conformance manifest (format != {SUITE_FORMAT!r})")
    if manifest.get("format_version") != SUITE_VERSION:
        raise SuiteError(f"unsupported suite format_version {manifest.get('format_version')!r}")
    cases = manifest.get("cases")
    if not isinstance(cases, list) or not cases:
        raise SuiteError("manifest has no cases")
    seen = set()
    for case in cases:
        where = f"case {case.get('id', '?')!r}"
        for name in CASE_FIELDS:
            if name not in case:
                raise SuiteError(f"{where}: missing field {name!r}")
        if case["id"] in seen:
            raise SuiteError(f"{where}: duplicate id")
        seen.add(case["id"])
        op = case["op"]
        if op not in OPS:
            raise SuiteError(f"{where}: unknown op {op!r}")
        if case["kind"] != ("model" if op == "model" else "op"):
            raise SuiteError(f"{where}: kind {case['kind']!r} does not match op {op!r}")
        if case["rounding"] not in ("single", "double", None):
            raise SuiteError(f"{where}: rounding {case['rounding']!r}")
        missing = [p for p in OP_PARAMS[op] if p not in case["params"]]
        if missing:
            raise SuiteError(f"{where}: params lack {missing}")
        names = [t.get("name") for t in case["inputs"]]
        if names != list(OP_INPUTS[op]):
            raise SuiteError(f"{where}: inputs {names}, expected {list(OP_INPUTS[op])}")
        if not case["outputs"]:
            raise SuiteError(f"{where}: no outputs")
        tensors = list(case["inputs"]) + list(case["outputs"])
        if op == "model":
            if "weights" not in case or "file" not in case["weights"]:
                raise SuiteError(f"{where}: model case without weights")
        for t in tensors:
            for name in TENSOR_FIELDS:
                if name not in t:
                    raise SuiteError(f"{where}: tensor {t.get('name')!r} lacks {name!r}")
            if t["dtype"] not in DTYPES:
                raise SuiteError(f"{where}: tensor {t['name']!r} has dtype {t['dtype']!r}")
        if suite_dir is not None:
            files = [t["file"] for t in tensors] + ([case["weights"]["file"]] if op == "model" else [])
            for rel in files:
                if not os.path.isfile(os.path.join(suite_dir, rel)):
                    raise SuiteError(f"{where}: file {rel!r} is missing from {suite_dir}")
    return manifest


def load_manifest(suite_dir):
    """Read and check ``suite_dir/manifest.json``."""
    path = os.path.join(os.fspath(suite_dir), MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise SuiteError(f"{suite_dir}: no {MANIFEST} (not a conformance suite directory?)") from None
    except json.JSONDecodeError as e:
        raise SuiteError(f"{path}: invalid JSON: {e}") from None
    return check_manifest(manifest, os.fspath(suite_dir))


def load_case_arrays(suite_dir, entries):
    """{name: array} for a list of tensor entries of the manifest."""
    return {t["name"]: read_array(os.path.join(suite_dir, t["file"]), t["dtype"], t["shape"]) for t in entries}
