"""Tests of promref.format: exact round trips, and a clear WeightsFormatError (or
OverflowRiskError) naming the file and the layer/field for every kind of bad file."""
import io
import json
import re
import zipfile

import numpy as np
import pytest

from promref import limits
from promref import arith
from promref import format as fmt
from promref.errors import OverflowRiskError, PromrefError, WeightsFormatError
from promref.model import InputSpec
from promref.synthetic import random_model

LAYER_ARRAYS = ("weights", "bias", "multiplier", "shift", "weight_scale")


# ------------------------------------------------------------------ helpers


def read_members(path):
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def write_members(path, members):
    with open(path, "wb") as f:
        np.savez(f, **members)
    return path


def npy_bytes(array):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()


def write_zip(path, entries, compression=zipfile.ZIP_STORED):
    """A zip of raw members: {member name: bytes}."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def get_meta(members):
    return json.loads(members["meta"].tobytes().decode("utf-8"))


def set_meta(members, meta):
    members["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    return members


def layer_index(meta, name):
    return [rec["name"] for rec in meta["layers"]].index(name)


def names(*parts):
    """A regex (for pytest.raises(match=...)) that requires every part, in any order."""
    return "(?s)" + "".join(f"(?=.*{re.escape(str(p))})" for p in parts)


def expect_error(path, *parts, cls=WeightsFormatError):
    """load(path) must raise exactly ``cls`` with a message naming the file and every part."""
    with pytest.raises(cls, match=names(path, *parts)) as info:
        fmt.load(path)
    assert type(info.value) is cls, repr(info.value)
    assert isinstance(info.value, PromrefError) and isinstance(info.value, ValueError)
    return info.value


@pytest.fixture(scope="session")
def _good_members(good_file):
    members = read_members(good_file)
    for array in members.values():
        array.setflags(write=False)  # tests replace arrays, never modify them in place
    return members


@pytest.fixture
def members(_good_members):
    """The members of the good file, as a fresh dict of read-only arrays."""
    return dict(_good_members)


@pytest.fixture
def bad(tmp_path):
    return tmp_path / "bad.npz"


def with_meta_change(members, path, change):
    meta = get_meta(members)
    change(meta)
    return write_members(path, set_meta(members, meta))


def set_layer_field(layer, field, value):
    def change(meta):
        meta["layers"][layer_index(meta, layer)][field] = value
    return change


# --------------------------------------------------------------- round trip


def assert_models_equal(a, b):
    assert (a.name, a.rounding, tuple(a.labels), a.arch, a.metadata) == \
        (b.name, b.rounding, tuple(b.labels), b.arch, b.metadata)
    assert isinstance(b.input, InputSpec) and a.input == b.input
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]
    for la, lb in zip(a.layers, b.layers):
        for field in ("kind", "op", "inputs", "in_channels", "out_channels", "out_zero_point", "out_min",
                      "out_max", "out_scale", "kernel", "stride", "padding", "weight_zero_point", "left_shift"):
            va, vb = getattr(la, field), getattr(lb, field)
            assert va == vb and type(va) is type(vb) or (field in ("inputs", "padding") and tuple(va) == vb), \
                (la.name, field, va, vb)
        for field in LAYER_ARRAYS:
            va, vb = getattr(la, field), getattr(lb, field)
            if va is None:
                assert vb is None, (la.name, field)
                continue
            assert vb.dtype == va.dtype and vb.shape == va.shape, (la.name, field)
            np.testing.assert_array_equal(va, vb, err_msg=f"{la.name}.{field}")
            assert not vb.flags.writeable  # validate() ran on the loaded model


@pytest.mark.parametrize("config,scheme,rounding", [
    ("cifar", "prom", "single"),
    ("cifar", "int8", "double"),
    ("imagenet", "prom", "double"),
    ("imagenet", "int8", "single"),
])
def test_round_trip_random_models(tmp_path, config, scheme, rounding):
    model = random_model(config, 0.1, scheme, seed=7, rounding=rounding)
    path = tmp_path / "model.npz"
    fmt.save(model, path)
    back = fmt.load(path)
    assert_models_equal(model, back)
    assert any(layer.op == "pointwise_ternary" for layer in back.layers) == (scheme == "prom")
    # saving the loaded model again writes exactly the same members
    again = tmp_path / "again.npz"
    fmt.save(back, again)
    first, second = read_members(path), read_members(again)
    assert sorted(first) == sorted(second)
    for key in first:
        assert first[key].dtype == second[key].dtype
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


def test_round_trip_tiny_model_with_ternary_tail(tmp_path, tiny):
    model = tiny(3)  # 3x3 ternary weights: 9 codes in 3 bytes, 3 padding codes
    path = tmp_path / "tiny.npz"
    fmt.save(model, path)
    assert_models_equal(model, fmt.load(path))
    packed = read_members(path)["project/weights"]
    assert packed.dtype == np.uint8 and packed.shape == (3,)
    codes, padding = arith.unpack_ternary_codes(packed, 9)
    assert not padding.any()
    np.testing.assert_array_equal(arith.codes_to_ternary(codes).reshape(3, 3), model.layer("project").weights)


def test_save_writes_plain_json_and_c_order(tmp_path, model):
    stem = model.layer("stem")
    stem.weights = np.asfortranarray(stem.weights)
    stem.kernel, stem.out_zero_point, stem.out_scale = np.int64(3), np.int32(stem.out_zero_point), \
        np.float64(stem.out_scale)
    model.input.height, model.input.zero_point = np.int64(32), np.int64(-128)
    path = tmp_path / "m.npz"
    fmt.save(model, path)
    with zipfile.ZipFile(path) as archive, archive.open("stem/weights.npy") as f:
        version = np.lib.format.read_magic(f)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0}.get(version,
                                                                        np.lib.format.read_array_header_2_0)
        _, fortran_order, _ = read_header(f)
    assert not fortran_order
    back = fmt.load(path)
    np.testing.assert_array_equal(back.layer("stem").weights, stem.weights)
    assert type(back.layer("stem").kernel) is int and back.layer("stem").kernel == 3
    assert type(back.input.height) is int and back.input.zero_point == -128


def test_save_keeps_the_exact_path(tmp_path, model):
    path = tmp_path / "weights.bin"
    fmt.save(model, path)
    assert path.exists() and not (tmp_path / "weights.bin.npz").exists()
    fmt.load(str(path))  # str and PathLike both work


def test_save_refuses_an_invalid_model(tmp_path, model):
    model.layers[0].bias = model.layers[0].bias.astype(np.int64)
    path = tmp_path / "never.npz"
    with pytest.raises(WeightsFormatError, match=names("'stem'", "bias", "int64")):
        fmt.save(model, path)
    assert not path.exists()


def test_saved_file_is_a_plain_uncompressed_npz(good_file, _cifar_prom):
    with zipfile.ZipFile(good_file) as archive:
        infos = archive.infolist()
    assert infos and all(i.compress_type == zipfile.ZIP_STORED and i.filename.endswith(".npy") for i in infos)
    members = read_members(good_file)  # allow_pickle=False
    assert all(a.dtype != object for a in members.values())
    assert members["meta"].dtype == np.uint8 and members["meta"].ndim == 1
    meta = get_meta(members)
    assert meta["format"] == "promref" and meta["format_version"] == 1 and type(meta["format_version"]) is int
    for layer in _cifar_prom.layers:
        if layer.op == "pointwise_ternary":
            packed = members[f"{layer.name}/weights"]
            assert packed.dtype == np.uint8 and packed.shape == ((layer.weights.size + 3) // 4,)
        elif layer.weights is not None:
            assert members[f"{layer.name}/weights"].dtype == np.int8
    assert members["stem/bias"].dtype == np.int32 and members["stem/shift"].dtype == np.int32


# ------------------------------------------------------ unreadable files


@pytest.mark.parametrize("keep", [1, 30, 1000, 0.5, -1, -22, -200])
def test_truncated_file(good_file, bad, keep):
    raw = good_file.read_bytes()
    keep = int(len(raw) * keep) if isinstance(keep, float) else keep % len(raw)
    bad.write_bytes(raw[:keep])
    expect_error(bad)


def _member_data_offset(path, member):
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    raw = path.read_bytes()
    name_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little")
    extra_len = int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    return info.header_offset + 30 + name_len + extra_len


@pytest.mark.parametrize("where", [1, 140])  # npy magic, array data (the CRC no longer matches)
@pytest.mark.parametrize("member", ["meta.npy", "stem/weights.npy"])
def test_corrupt_member_bytes(good_file, bad, member, where):
    raw = bytearray(good_file.read_bytes())
    raw[_member_data_offset(good_file, member) + where] ^= 0x5A
    bad.write_bytes(bytes(raw))
    expect_error(bad)


def _bias_npy_with_header(members, header):
    entries = {f"{k}.npy": npy_bytes(v) for k, v in members.items()}
    header = header.ljust(118 - 1) + "\n"
    entries["stem/bias.npy"] = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin1") \
        + members["stem/bias"].tobytes()
    return entries


@pytest.mark.parametrize("header", [
    "{'descr': '<i4', 'fortran_order': False, 'shape': (8), }",      # shape not a tuple
    "{'descr': '<q9', 'fortran_order': False, 'shape': (8,), }",      # unknown dtype
    "[1, 2, 3]",
])
def test_corrupt_npy_header_inside_a_valid_zip(members, bad, header):
    expect_error(write_zip(bad, _bias_npy_with_header(members, header)))


@pytest.mark.parametrize("header", ["{'descr': '<i4', 'fortran_order': False, 'shape': (8,), ",
                                    "{'descr': '<i4', 'fortran_order': False, 'shape': (8,}"])
def test_corrupt_npy_header_unbalanced_bracket(members, bad, header):
    expect_error(write_zip(bad, _bias_npy_with_header(members, header)))


def test_truncated_array_data_inside_a_valid_zip(members, bad):
    entries = {f"{k}.npy": npy_bytes(v) for k, v in members.items()}
    entries["stem/bias.npy"] = entries["stem/bias.npy"][:-5]  # CRC is right, array data is short
    expect_error(write_zip(bad, entries))


def test_random_bytes(bad):
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    expect_error(bad)


def test_empty_file(bad):
    bad.write_bytes(b"")
    expect_error(bad)


def test_directory(tmp_path):
    expect_error(tmp_path, "directory")


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nope.npz", "no such file")


def test_plain_npy_file_is_not_npz(bad):
    bad.write_bytes(npy_bytes(np.zeros(10, np.uint8)))
    expect_error(bad)


def test_garbage_before_a_valid_npz(good_file, bad):
    bad.write_bytes(b"garbage!" * 8 + good_file.read_bytes())
    expect_error(bad)


def test_npy_header_before_a_valid_npz(good_file, bad):
    bad.write_bytes(npy_bytes(np.zeros(3, np.int8)) + good_file.read_bytes())
    expect_error(bad)


def test_zip_that_is_not_an_npz(bad):
    write_zip(bad, {"readme.txt": b"hello", "data.csv": b"1,2,3\n"})
    expect_error(bad, "readme.txt", "not an .npy array")


def test_npz_without_meta(members, bad):
    del members["meta"]
    expect_error(write_members(bad, members), "missing member 'meta'")


def test_meta_member_that_is_not_npy(members, bad):
    entries = {f"{k}.npy": npy_bytes(v) for k, v in members.items() if k != "meta"}
    entries["meta"] = members["meta"].tobytes()  # raw JSON, no .npy header
    expect_error(write_zip(bad, entries), "meta")


def test_ternary_member_that_is_not_npy(members, bad):
    entries = {f"{k}.npy": npy_bytes(v) for k, v in members.items()}
    del entries["b1.project/weights.npy"]
    entries["b1.project/weights"] = members["b1.project/weights"].tobytes()
    expect_error(write_zip(bad, entries), "'b1.project/weights'", "not an .npy array")


def test_int8_member_that_is_not_npy(members, bad):
    entries = {f"{k}.npy": npy_bytes(v) for k, v in members.items()}
    del entries["stem/bias.npy"]
    entries["stem/bias"] = members["stem/bias"].tobytes()
    expect_error(write_zip(bad, entries), "'stem/bias'", "not an .npy array")


def test_member_larger_than_the_limit(members, bad, monkeypatch):
    members["stem/huge"] = np.zeros(1 << 16, np.uint8)
    write_members(bad, members)
    with zipfile.ZipFile(bad) as archive:
        legit = max(i.file_size for i in archive.infolist() if i.filename != "stem/huge.npy")
    monkeypatch.setattr(limits, "MAX_MEMBER_BYTES", legit + 1)
    expect_error(bad, "'stem/huge.npy'", f"limit {legit + 1}")


def test_member_header_declaring_a_huge_shape(members, bad):
    entries = {f"{k}.npy": npy_bytes(v) for k, v in members.items()}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (1 << 50,)})
    entries["b1.project/weights.npy"] = header.getvalue() + b"\0" * 64
    expect_error(write_zip(bad, entries), "b1.project")


# ------------------------------------------------------------- the meta


@pytest.mark.parametrize("payload", [b"\xff\xfe\x00garbage", b"{not json", b"", b'{"format": "promref",'])
def test_meta_not_json(members, bad, payload):
    members["meta"] = np.frombuffer(payload, np.uint8)
    expect_error(write_members(bad, members), "meta")


def test_meta_deeply_nested_json(members, bad):
    members["meta"] = np.frombuffer(b"[" * 100000 + b"]" * 100000, np.uint8)
    expect_error(write_members(bad, members), "meta")


@pytest.mark.parametrize("meta_array", [
    lambda raw: raw.view(np.int8),
    lambda raw: raw.astype(np.float32),
    lambda raw: raw.reshape(1, -1),
    lambda raw: np.array(raw.tobytes()),  # numpy bytes scalar, dtype S
])
def test_meta_wrong_dtype_or_shape(members, bad, meta_array):
    members["meta"] = meta_array(members["meta"])
    expect_error(write_members(bad, members), "'meta'")


@pytest.mark.parametrize("meta", [[1, 2, 3], "promref", None, {"format": "onnx", "format_version": 1},
                                  {"format_version": 1}, {"format": "PROMREF", "format_version": 1}])
def test_meta_not_a_promref_file(members, bad, meta):
    members["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    expect_error(write_members(bad, members), "not a promref weights file")


@pytest.mark.parametrize("version", [2, 0, -1, "1", 1.5, None, [1], {"v": 1}])
def test_unknown_format_version(members, bad, version):
    expect_error(with_meta_change(members, bad, lambda m: m.update(format_version=version)),
                 "format version", repr(version))


def test_missing_format_version(members, bad):
    expect_error(with_meta_change(members, bad, lambda m: m.pop("format_version")), "format version None")


@pytest.mark.parametrize("version", [True, 1.0])
def test_format_version_must_be_the_integer_1(members, bad, version):
    # True == 1 and 1.0 == 1 in Python: both once slipped through as version 1
    expect_error(with_meta_change(members, bad, lambda m: m.update(format_version=version)), "format version",
                 repr(version))


# ------------------------------------------------------- pickled arrays


def _objects():
    return np.array([{"evil": 1}, None], dtype=object)


@pytest.mark.parametrize("key", ["stem/bias", "stem/extra", "meta"])
def test_pickled_object_array_member(members, bad, key):
    members[key] = _objects()
    with open(bad, "wb") as f:
        np.savez(f, allow_pickle=True, **members)
    expect_error(bad, "pickled")


# ------------------------------------------------- missing / extra arrays


@pytest.mark.parametrize("layer,field", [
    ("stem", "weights"), ("stem", "bias"), ("stem", "multiplier"), ("stem", "shift"),
    ("b1.depthwise", "weights"), ("b1.project", "weights"), ("b1.project", "bias"),
    ("b1.add", "multiplier"), ("b1.add", "shift"), ("classifier", "weights"), ("classifier", "shift"),
])
def test_missing_layer_array(members, bad, layer, field):
    del members[f"{layer}/{field}"]
    expect_error(write_members(bad, members), f"layer {layer!r}", f"missing array '{layer}/{field}'")


def test_missing_weight_scale_is_allowed(members, tmp_path):
    del members["stem/weight_scale"]
    model = fmt.load(write_members(tmp_path / "ok.npz", members))
    assert model.layer("stem").weight_scale is None


@pytest.mark.parametrize("key", ["stem/extra", "pool/weights", "b1.add/bias", "ghost/weights", "stem/weights2",
                                 "b1.add/weight_scale", "stem"])
def test_extra_unexpected_member(members, bad, key):
    members[key] = np.zeros(3, np.int32)
    expect_error(write_members(bad, members), "unexpected member", repr(key))


# ---------------------------------------------------- dtypes and shapes


@pytest.mark.parametrize("key,dtype", [
    ("stem/bias", np.float32), ("stem/bias", np.int64), ("stem/weights", np.int16), ("stem/weights", np.uint8),
    ("b1.depthwise/weights", np.float32), ("b1.depthwise/multiplier", np.int64), ("b1.depthwise/shift", np.int8),
    ("b1.add/multiplier", np.uint32), ("b1.add/shift", np.float64), ("classifier/weight_scale", np.float64),
    ("classifier/weights", np.bool_), ("b2.expand/bias", np.int16),
])
def test_wrong_dtype(members, bad, key, dtype):
    layer, field = key.split("/")
    members[key] = members[key].astype(dtype)
    expect_error(write_members(bad, members), repr(layer), field, np.dtype(dtype).name)


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int32])
def test_packed_ternary_wrong_dtype(members, bad, dtype):
    members["b1.project/weights"] = members["b1.project/weights"].astype(dtype)
    expect_error(write_members(bad, members), "'b1.project'", "weights", "uint8", np.dtype(dtype).name)


@pytest.mark.parametrize("key,reshape", [
    ("stem/bias", lambda a: np.append(a, a[:1])),
    ("stem/bias", lambda a: a[:-1]),
    ("stem/bias", lambda a: np.asarray(a[0])),
    ("stem/weights", lambda a: a.transpose(3, 1, 2, 0).copy()),
    ("stem/weights", lambda a: a.reshape(a.shape[0], -1)),
    ("b1.depthwise/weights", lambda a: a.reshape(1, *a.shape)),
    ("b1.depthwise/shift", lambda a: a.reshape(1, -1)),
    ("b1.add/multiplier", lambda a: a[:2]),
    ("b1.add/shift", lambda a: np.append(a, 0).astype(np.int32)),
    ("classifier/weights", lambda a: a.T.copy()),
    ("classifier/weight_scale", lambda a: a[:-1]),
    ("b1.project/weights", lambda a: a[:-1]),
    ("b1.project/weights", lambda a: np.append(a, np.uint8(0))),
    ("b1.project/weights", lambda a: a.reshape(1, -1)),
])
def test_wrong_shape(members, bad, key, reshape):
    layer, field = key.split("/")
    members[key] = reshape(members[key])
    expect_error(write_members(bad, members), repr(layer), field, str(members[key].shape))


# ----------------------------------------------------------- ternary codes


@pytest.mark.parametrize("weight", [0, 2, 7, -1])
def test_ternary_code_0b11(members, bad, weight):
    packed = members["b2.expand/weights"].copy()
    weight %= packed.size * 4
    packed[weight // 4] |= np.uint8(3 << (2 * (weight % 4)))
    members["b2.expand/weights"] = packed
    expect_error(write_members(bad, members), "'b2.expand'", "weights", "0b11", f"at weight {weight}")


@pytest.mark.parametrize("code", [1, 2, 3])
@pytest.mark.parametrize("slot", [1, 2, 3])  # 9 weights: byte 2 holds weight 8 and three padding codes
def test_nonzero_ternary_padding_bits(tiny, tmp_path, code, slot):
    path = tmp_path / "tiny.npz"
    fmt.save(tiny(3), path)
    members = read_members(path)
    packed = members["project/weights"].copy()
    packed[2] |= np.uint8(code << (2 * slot))
    members["project/weights"] = packed
    expect_error(write_members(tmp_path / "bad.npz", members), "'project'", "weights", "padding")


# ------------------------------------------------------ integer ranges


@pytest.mark.parametrize("key,index,value,message", [
    ("stem/multiplier", 3, -1, "below the minimum 0"),
    ("b1.depthwise/multiplier", 0, -(1 << 31), "below the minimum 0"),
    ("b1.add/multiplier", 2, -5, "below the minimum 0"),
    ("stem/shift", 0, 31, "above the maximum 30"),
    ("b1.depthwise/shift", 7, -32, "below the minimum -31"),
    ("classifier/shift", 1, 1000, "above the maximum 30"),
    ("b1.add/shift", 1, -100, "below the minimum -31"),
])
def test_multiplier_or_shift_out_of_range(members, bad, key, index, value, message):
    layer, field = key.split("/")
    array = members[key].copy()
    array[index] = value
    members[key] = array
    expect_error(write_members(bad, members), repr(layer), field, message)


@pytest.mark.parametrize("layer,field,value", [
    ("stem", "out_zero_point", 128), ("b1.project", "out_zero_point", -129),
    ("b1.add", "out_zero_point", 1000), ("stem", "weight_zero_point", 128),
    ("classifier", "weight_zero_point", -129), ("b1.project", "weight_zero_point", 1),
    ("stem", "out_min", -129), ("stem", "out_max", 128), ("b1.add", "left_shift", 24),
    ("b1.add", "left_shift", -1), ("stem", "kernel", 0), ("stem", "stride", 16),
    ("b1.depthwise", "in_channels", 0), ("b1.project", "out_channels", 10 ** 30),
    ("b1.project", "in_channels", -3),
])
def test_layer_integer_field_out_of_range(members, bad, layer, field, value):
    expect_error(with_meta_change(members, bad, set_layer_field(layer, field, value)), repr(layer), field)


@pytest.mark.parametrize("field,value", [("zero_point", 200), ("zero_point", -129), ("height", 0),
                                         ("width", 1 << 17), ("resize", -1), ("mean", [float("nan"), 0, 0]),
                                         ("std", [1, 1, float("inf")])])
def test_input_integer_field_out_of_range(members, bad, field, value):
    expect_error(with_meta_change(members, bad, lambda m: m["input"].update({field: value})), f"input.{field}")


@pytest.mark.parametrize("layer", ["stem", "b1.add", "classifier"])
def test_out_min_greater_than_out_max(members, bad, layer):
    def change(meta):
        meta["layers"][layer_index(meta, layer)].update(out_min=10, out_max=5)
    expect_error(with_meta_change(members, bad, change), repr(layer), "out_min 10 > out_max 5")


@pytest.mark.parametrize("value", [0.0, -0.5, float("nan"), float("inf")])
def test_out_scale_not_positive_finite(members, bad, value):
    expect_error(with_meta_change(members, bad, set_layer_field("b1.depthwise", "out_scale", value)),
                 "'b1.depthwise'", "out_scale")


# ---------------------------------------------------------- JSON fields


@pytest.mark.parametrize("field", ["name", "layers", "labels", "rounding", "arch", "metadata", "input"])
def test_missing_top_level_field(members, bad, field):
    expect_error(with_meta_change(members, bad, lambda m: m.pop(field)), f"missing field {field!r}")


@pytest.mark.parametrize("field", fmt._INPUT_FIELDS)
def test_missing_input_field(members, bad, field):
    expect_error(with_meta_change(members, bad, lambda m: m["input"].pop(field)), "input", f"missing field {field!r}")


@pytest.mark.parametrize("field", fmt._LAYER_FIELDS)
def test_missing_layer_field(members, bad, field):
    expect_error(with_meta_change(members, bad, lambda m: m["layers"][2].pop(field)), "layer 2",
                 f"missing field {field!r}")


@pytest.mark.parametrize("field,value", [
    ("stride", "1"), ("kernel", True), ("in_channels", 8.0), ("out_zero_point", 1.5), ("out_min", None),
    ("inputs", "stem"), ("inputs", {"a": 1}), ("padding", 1), ("out_scale", "0.1"), ("out_scale", True),
    ("name", 7), ("kind", None), ("op", ["conv2d"]), ("left_shift", False), ("weight_zero_point", "0"),
])
def test_wrong_json_type_in_layer(members, bad, field, value):
    expect_error(with_meta_change(members, bad, lambda m: m["layers"][1].update({field: value})),
                 "layer 1", field, "expected")


@pytest.mark.parametrize("field,value", [
    ("height", "32"), ("width", 32.0), ("zero_point", True), ("resize", None), ("resample", 3),
    ("scale", "x"), ("scale", False), ("mean", [1, 2]), ("mean", "abc"), ("std", [1, "a", 2]), ("std", None),
])
def test_wrong_json_type_in_input(members, bad, field, value):
    expect_error(with_meta_change(members, bad, lambda m: m["input"].update({field: value})), f"input.{field}")


@pytest.mark.parametrize("field,value", [
    ("name", 1), ("layers", {}), ("layers", "stem"), ("labels", "abc"), ("rounding", 1), ("arch", []),
    ("metadata", None), ("input", []),
])
def test_wrong_json_type_at_top_level(members, bad, field, value):
    expect_error(with_meta_change(members, bad, lambda m: m.update({field: value})), field, "expected")


@pytest.mark.parametrize("record", ["stem", 5, None, ["stem"]])
def test_layer_record_not_an_object(members, bad, record):
    expect_error(with_meta_change(members, bad, lambda m: m["layers"].__setitem__(1, record)), "layer 1")


@pytest.mark.parametrize("where", ["top", "input", "layer"])
def test_unknown_json_field(members, bad, where):
    def change(meta):
        record = {"top": meta, "input": meta["input"], "layer": meta["layers"][4]}[where]
        record["extra_field"] = 1
    expect_error(with_meta_change(members, bad, change), "unknown field", "extra_field")


def test_float_field_too_large(members, bad):
    def change(meta):
        meta["layers"][1]["out_scale"] = 10 ** 400  # a JSON integer that no float can hold
    expect_error(with_meta_change(members, bad, change), "layer 1", "out_scale")


def test_padding_values_not_integers(members, bad):
    expect_error(with_meta_change(members, bad, set_layer_field("stem", "padding", ["1", 1, 1, 1])),
                 "'stem'", "padding")


def test_padding_wrong_length(members, bad):
    expect_error(with_meta_change(members, bad, set_layer_field("stem", "padding", [1, 1, 1])), "'stem'", "padding")


def test_nan_input_scale(members, bad):
    expect_error(with_meta_change(members, bad, lambda m: m["input"].update(scale=float("nan"))), "input.scale")


# ------------------------------------------------------- unknown names


def test_unknown_op_on_an_unweighted_layer(members, bad):
    expect_error(with_meta_change(members, bad, set_layer_field("pool", "op", "max_pool")), "'pool'",
                 "unknown op 'max_pool'")


def test_unknown_op_on_a_weighted_layer(members, bad):
    # the layer's arrays are not read for an unknown op, so either complaint is acceptable;
    # the message must still name the file and the layer
    expect_error(with_meta_change(members, bad, set_layer_field("stem", "op", "conv3d")), "stem")


@pytest.mark.parametrize("layer,kind", [("stem", "head"), ("pool", ""), ("b1.depthwise", "stem")])
def test_unknown_or_mismatched_kind(members, bad, layer, kind):
    expect_error(with_meta_change(members, bad, set_layer_field(layer, "kind", kind)), repr(layer), repr(kind))


def test_op_not_allowed_for_kind(members, bad):
    expect_error(with_meta_change(members, bad, set_layer_field("b1.depthwise", "op", "conv2d")),
                 "'b1.depthwise'", "cannot use op 'conv2d'")


@pytest.mark.parametrize("rounding", ["nearest", "Single", ""])
def test_unknown_rounding(members, bad, rounding):
    expect_error(with_meta_change(members, bad, lambda m: m.update(rounding=rounding)), "rounding", repr(rounding))


def test_unknown_resample(members, bad):
    expect_error(with_meta_change(members, bad, lambda m: m["input"].update(resample="magic")),
                 "input.resample", "'magic'")


# --------------------------------------------------------------- graph


@pytest.mark.parametrize("layer,inputs", [
    ("b1.depthwise", ["b1.project"]),       # a later layer
    ("b1.depthwise", ["b1.depthwise"]),     # itself
    ("b1.depthwise", ["ghost"]),            # unknown
    ("b1.depthwise", []),                   # none
    ("b1.depthwise", ["stem", "stem"]),     # too many
    ("b1.add", ["stem"]),                   # add needs two
    ("b1.add", ["stem", "b2.project"]),     # add with a later layer
    ("b1.depthwise", [1]),
])
def test_inputs_not_earlier_layers(members, bad, layer, inputs):
    expect_error(with_meta_change(members, bad, set_layer_field(layer, "inputs", inputs)), repr(layer), "inputs")


@pytest.mark.parametrize("inputs", [[["stem"]], [{"a": 1}], [None], [1.5]])
def test_inputs_not_strings(members, bad, inputs):
    # an unhashable name (a JSON list) once escaped as TypeError: unhashable type 'list'
    expect_error(with_meta_change(members, bad, set_layer_field("b1.depthwise", "inputs", inputs)),
                 "'b1.depthwise'", "inputs")


def test_duplicate_layer_name(members, bad):
    for key in [k for k in members if k.startswith("b1.depthwise/")]:
        del members[key]
    expect_error(with_meta_change(members, bad, set_layer_field("b1.depthwise", "name", "stem")), "'stem'", "unique")


@pytest.mark.parametrize("layer,value,message", [
    ("b1.depthwise", 9, "in_channels is 9"),
    ("classifier", 7, "in_channels is 7"),
    ("b2.expand", 16, "weights"),  # the packed ternary array no longer fits the claimed shape
])
def test_in_channels_mismatch(members, bad, layer, value, message):
    expect_error(with_meta_change(members, bad, set_layer_field(layer, "in_channels", value)), repr(layer), message)


def test_out_channels_change_mismatches_the_arrays(members, bad):
    expect_error(with_meta_change(members, bad, set_layer_field("stem", "out_channels", 9)), "'stem'")


def test_no_layers(members, bad):
    expect_error(with_meta_change(members, bad, lambda m: m.update(layers=[])), "layers")


def test_last_layer_not_a_vector(members, bad):
    def change(meta):
        meta["layers"] = meta["layers"][:-2]  # ends at last_conv, a feature map
    for key in [k for k in members if k.startswith("classifier/")]:
        del members[key]
    expect_error(with_meta_change(members, bad, change), "last layer")


@pytest.mark.parametrize("labels", [[f"c{i}" for i in range(9)], [f"c{i}" for i in range(11)], [],
                                    list(range(10)), ["a"] * 9 + [None], [["a"]] * 10])
def test_labels_mismatch(members, bad, labels):
    expect_error(with_meta_change(members, bad, lambda m: m.update(labels=labels)), "labels")


# ------------------------------------------------------------ overflow


def test_overflow_from_bias(members, bad):
    bias = members["stem/bias"].copy()
    bias[5] = (1 << 31) - 1 - 100
    members["stem/bias"] = bias
    expect_error(write_members(bad, members), "'stem'", "output channel 5", "overflow", cls=OverflowRiskError)


def test_overflow_from_many_large_weights(tiny, tmp_path):
    # classifier: 70000 inputs with zero point -128, so |x - zx| <= 255; 127 * 255 * 70000 > 2**31
    path = tmp_path / "wide.npz"
    fmt.save(tiny(70000, residual=False), path)
    members = read_members(path)
    weights = members["classifier/weights"].copy()
    weights[1] = 127
    members["classifier/weights"] = weights
    expect_error(write_members(tmp_path / "bad.npz", members), "'classifier'", "output channel 1",
                 str(127 * 255 * 70000 + 0), cls=OverflowRiskError)


def test_overflow_from_positive_shift(members, bad):
    shift = members["b1.depthwise/shift"].copy()
    shift[2] = 30
    members["b1.depthwise/shift"] = shift
    expect_error(write_members(bad, members), "'b1.depthwise'", "shift[2]", cls=OverflowRiskError)


def test_pool_scale_mismatch(members, bad):
    expect_error(with_meta_change(members, bad, set_layer_field("pool", "out_scale", 0.5)), "'pool'", "scale")


def test_overflow_in_pool_sum(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_INPUT_SIDE", 1 << 16)  # the proof, not the side limit, must refuse
    path = tmp_path / "tiny.npz"
    fmt.save(tiny(3), path)
    members = read_members(path)

    def change(meta):
        meta["input"].update(height=4096, width=4096)  # the pool would sum 2**24 int8 values
    expect_error(with_meta_change(members, tmp_path / "bad.npz", change), "'pool'", cls=OverflowRiskError)


def test_overflow_in_add(members, bad):
    shift = members["b1.add/shift"].copy()
    shift[0] = 30
    members["b1.add/shift"] = shift
    expect_error(write_members(bad, members), "'b1.add'", "shift[0]", cls=OverflowRiskError)


def test_error_hierarchy():
    assert issubclass(OverflowRiskError, WeightsFormatError)
    assert issubclass(WeightsFormatError, PromrefError) and issubclass(PromrefError, ValueError)
