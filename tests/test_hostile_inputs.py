"""Regression tests of issue 15: one group per class of hostile input, several members each.

Each input is built here (nothing downloaded); each must give a PromrefError
subclass naming the problem, never a foreign exception, a hang or a large
allocation.  The limits themselves live in promref/limits.py.
"""
import io
import json
import os
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

import promref
from promref import limits
from promref.conformance.suite import SuiteError, check_manifest
from promref.errors import CheckpointError, ImageError, PromrefError, ShapeError, WeightsFormatError
from promref.fileio import loads_json
from promref.format import load, save
from promref.preprocess import load_image, resize_and_crop
from test_format import npy_bytes, write_zip


def _photo():
    return (np.arange(40 * 56 * 3) % 251).astype(np.uint8).reshape(40, 56, 3)


# ---------------------------------------------------------------- class 1: image decoding

@pytest.mark.parametrize("fmt", ["EPS", "PDF", "ICNS", "XBM", "PCX", "TGA", "SGI"])
def test_formats_outside_the_allow_list_are_refused_unread(tmp_path, fmt):
    path = tmp_path / f"x.{fmt.lower()}"
    image = Image.fromarray(_photo()).convert("1" if fmt == "XBM" else "RGB")
    try:
        image.save(path, fmt)
    except (OSError, KeyError, ValueError):
        pytest.skip(f"this Pillow cannot write {fmt}")
    with pytest.raises(ImageError, match="supported format"):
        load_image(path)


def test_eps_never_runs_ghostscript(tmp_path, monkeypatch):
    # a fake 'gs' first on PATH would leave a mark if Pillow ever ran it
    mark = tmp_path / "ran"
    gs = tmp_path / "gs"
    gs.write_text(f"#!/bin/sh\ntouch {mark}\n")
    gs.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    eps = tmp_path / "x.eps"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(ImageError):
        load_image(eps)
    with pytest.raises(ImageError):  # a lazily opened PIL image of a foreign format
        load_image(Image.open(eps))
    assert not mark.exists()


@pytest.mark.parametrize("marker", [0xC3, 0xC5, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCF])
def test_jpeg_frames_the_decoder_cannot_decode_faithfully(tmp_path, marker):
    buf = io.BytesIO()
    Image.fromarray(_photo()).save(buf, "JPEG")
    data = buf.getvalue()
    at = data.index(b"\xff\xc0")
    path = tmp_path / "x.jpg"
    path.write_bytes(data[:at + 1] + bytes([marker]) + data[at + 2:])
    with pytest.raises(ImageError, match=f"SOF{marker - 0xC0}"):
        load_image(path)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"])
def test_allowed_formats_still_decode(tmp_path, fmt):
    path = tmp_path / f"x.{fmt.lower()}"
    Image.fromarray(_photo()).save(path, fmt)
    assert load_image(path).shape == (40, 56, 3)


# ---------------------------------------------------------------- class 2: resource limits

def _npz(path, members):
    return write_zip(path, members, zipfile.ZIP_DEFLATED)


def test_deflated_members_over_the_total_are_refused_before_inflating(tmp_path, good_file):
    with zipfile.ZipFile(good_file) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    big = npy_bytes(np.zeros(limits.MAX_MEMBER_BYTES - 1024, np.uint8))
    for i in range(3):
        members[f"junk{i}.npy"] = big
    with pytest.raises(WeightsFormatError, match="in all"):
        load(_npz(tmp_path / "bomb.npz", members))


def test_unknown_member_is_refused_before_it_is_read(tmp_path, good_file, monkeypatch):
    with zipfile.ZipFile(good_file) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    members["zzz/extra.npy"] = npy_bytes(np.zeros(1 << 20, np.uint8))
    path = _npz(tmp_path / "extra.npz", members)
    read = []
    original = promref.npzread.NpzReader.read
    monkeypatch.setattr(promref.npzread.NpzReader, "read", lambda self, k: read.append(k) or original(self, k))
    with pytest.raises(WeightsFormatError, match="unexpected member"):
        load(path)
    assert read == ["meta"]


def test_too_many_members_and_duplicates(tmp_path, good_file, monkeypatch):
    with zipfile.ZipFile(good_file) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    monkeypatch.setattr(limits, "MAX_MEMBERS", len(members) - 1)
    with pytest.raises(WeightsFormatError, match="limit"):
        load(good_file)
    monkeypatch.undo()
    path = tmp_path / "dup.npz"
    with zipfile.ZipFile(path, "w") as z, pytest.warns(UserWarning):
        for name, data in members.items():
            z.writestr(name, data)
        z.writestr("meta.npy", members["meta.npy"])
    with pytest.raises(WeightsFormatError, match="twice"):
        load(path)


def test_overflow_proof_is_chunked(model):
    # the proof widens at most _BOUND_CHUNK weights at a time: a large layer gives the same bound
    from promref.validate import accumulator_bound, _BOUND_CHUNK
    layer = next(l for l in model.layers if l.op == "conv2d")
    full = np.abs(layer.weights.astype(np.int64) - layer.weight_zero_point).reshape(layer.out_channels, -1).sum(1)
    x_max = max(abs(-128 - model.input.zero_point), abs(127 - model.input.zero_point))
    assert accumulator_bound(layer, model.input.zero_point) == [abs(int(b)) + int(s) * x_max
                                                                for b, s in zip(layer.bias, full)]
    assert _BOUND_CHUNK <= 1 << 22


@pytest.mark.parametrize("field,value", [("height", 32000), ("width", 65536), ("resize", 40000)])
def test_input_sizes_over_the_limit(model, field, value):
    setattr(model.input, field, value)
    with pytest.raises(WeightsFormatError, match=f"input.{field}"):
        promref.validate.validate(model)


@pytest.mark.parametrize("shape", [(1, 1_000_000, 3), (1_000_000, 1, 3), (2, 500, 3)])
def test_strips_are_not_resized_to_huge_images(shape):
    with pytest.raises(ShapeError, match="aspect ratio"):
        resize_and_crop(np.zeros(shape, np.uint8), 32, 32, resize=32)


def test_resized_pixels_and_image_pixels_are_limited(tmp_path, monkeypatch):
    with pytest.raises(ShapeError):
        resize_and_crop(np.zeros((100, 100, 3), np.uint8), 32, 32, resize=limits.MAX_INPUT_SIDE + 1)
    monkeypatch.setattr(limits, "MAX_IMAGE_PIXELS", 100)
    path = tmp_path / "big.png"
    Image.new("RGB", (20, 20)).save(path)
    with pytest.raises(ImageError, match="limit"):
        load_image(path)
    with pytest.raises(ShapeError, match="limit"):
        load_image(np.zeros((20, 20, 3), np.uint8))


def test_unpickler_refusal_never_formats_a_huge_argument(tmp_path):
    import pickle
    import pickletools  # noqa: F401  (documents the opcodes used)
    from promref.data.cifar10 import DatasetError, _RestrictedUnpickler
    huge = b"A" * 5_000_000
    # GLOBAL _codecs.encode, then a huge bytes argument and a bad codec: the guard refuses it
    data = (b"\x80\x02c_codecs\nencode\nq\x00" + b"B" + len(huge).to_bytes(4, "little") + huge
            + b"X\x04\x00\x00\x00rot1\x86R.")
    with pytest.raises(DatasetError) as info:
        _RestrictedUnpickler(io.BytesIO(data), "x").load()
    assert len(str(info.value)) < 1000


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a": ' + "9" * 5000 + "}",
                                  '{"a": 1, "a": 2}', '{"a": NaN}', b'{"a": "\xff"}'])
def test_strict_bounded_json(text):
    with pytest.raises(ValueError):
        loads_json(text)


def test_checker_output_is_capped(tmp_path, monkeypatch):
    from promref.conformance.check import ImplementationError, run_command
    monkeypatch.setattr(limits, "MAX_CHECKER_OUTPUT_BYTES", 1 << 16)
    with pytest.raises(ImplementationError, match="printed more"):
        run_command([sys.executable, "-c", "import sys\nwhile True: sys.stdout.write('x' * 4096)"], None, 60)


# ---------------------------------------------------------------- class 3: blocking

@pytest.mark.parametrize("opener", [
    lambda p: load(p), lambda p: load_image(p), lambda p: promref.conformance.suite.read_array(p, "int8", [1]),
    lambda p: promref.conformance.suite.load_manifest(os.path.dirname(p)),
])
def test_fifo_paths_are_refused_not_blocked_on(tmp_path, opener):
    fifo = tmp_path / "manifest.json"
    os.mkfifo(fifo)
    with pytest.raises(PromrefError, match="regular file"):
        opener(str(fifo))


def test_checker_timeout_kills_grandchildren(tmp_path):
    """The implementation starts a grandchild and waits; the checker's timeout kills the whole group.

    No wall-clock race: if the machine is so loaded that the grandchild had not even started when
    the timeout fired, there was nothing to check, and it runs again with a longer timeout.  The
    waits below are hang guards only (a grandchild still alive after them has survived the kill).
    """
    import time
    from promref.conformance.check import ImplementationError, run_command
    pidfile = tmp_path / "pid"
    script = (f"import os, subprocess, sys, time\n"
              f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
              f"open({str(pidfile)!r} + '.tmp', 'w').write(str(p.pid))\n"
              f"os.rename({str(pidfile)!r} + '.tmp', {str(pidfile)!r})\ntime.sleep(600)\n")
    for timeout in (3, 20, 120):
        with pytest.raises(ImplementationError, match="timed out"):
            run_command([sys.executable, "-c", script], None, timeout)
        if pidfile.exists():
            break
    else:
        pytest.fail("the implementation never started its grandchild, even with a 120 s timeout")
    pid = int(pidfile.read_text())
    guard = time.monotonic() + 60
    while time.monotonic() < guard:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # a killed child lingers as a zombie of its (dead) parent until init reaps it
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[1].split()[0] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.1)
    os.kill(pid, 9)
    pytest.fail("the grandchild survived the timeout")


def test_download_size_cap_and_deadline(tmp_path, monkeypatch):
    from promref.data import cifar10
    from promref.data.cifar10 import DatasetError

    class Endless(io.RawIOBase):
        headers = {}

        def read1(self, n):
            return b"x" * n

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(cifar10.urllib.request, "urlopen", lambda url, timeout: Endless())
    with pytest.raises(DatasetError, match="limit"):
        cifar10._fetch("http://x", io.BytesIO(), 1.0, max_bytes=1 << 20)
    with pytest.raises(DatasetError, match="deadline"):
        cifar10._fetch("http://x", io.BytesIO(), 1.0, max_bytes=1 << 40, deadline_s=0.0)
    with pytest.raises(DatasetError):
        cifar10.download_cifar10(tmp_path, md5=123)
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".cifar10-download")]
    assert leftovers == []


# ---------------------------------------------------------------- class 4: the suite

def _manifest(**case_changes):
    tensor = {"name": "x", "file": "ops/x.npy", "dtype": "int8", "shape": [1], "data_offset": 128,
              "sha256": "0" * 64}
    case = {"id": "global_avgpool/a", "kind": "op", "op": "global_avgpool", "rounding": None,
            "description": "", "params": {}, "inputs": [tensor], "outputs": [dict(tensor, name="y")]}
    case.update(case_changes)
    return {"format": "promref-conformance-suite", "format_version": 1, "cases": [case]}


@pytest.mark.parametrize("change", [
    dict(id="a\nop=evil"), dict(id=7), dict(id=["x"]), dict(id="../x"), dict(params=None),
    dict(inputs="x"), dict(inputs=["x"]),
    dict(inputs=[{"name": "x", "file": "../../../../etc/passwd", "dtype": "int8", "shape": [1],
                  "data_offset": 128, "sha256": "0" * 64}]),
    dict(inputs=[{"name": "x", "file": "/etc/passwd", "dtype": "int8", "shape": [1],
                  "data_offset": 128, "sha256": "0" * 64}]),
    dict(outputs=[{"name": "../y", "file": "ops/y.npy", "dtype": "int8", "shape": [1],
                   "data_offset": 128, "sha256": "0" * 64}]),
])
def test_malformed_manifests_are_suite_errors(change):
    with pytest.raises(SuiteError):
        check_manifest(_manifest(**change))
    assert issubclass(SuiteError, PromrefError)


def test_a_case_that_is_a_string():
    m = _manifest()
    m["cases"] = ["x"]
    with pytest.raises(SuiteError):
        check_manifest(m)


def test_corrupted_suite_file_is_detected(tmp_path):
    from promref.conformance.suite import verified_path, write_npy
    entry = write_npy(tmp_path / "x.npy", np.zeros(3, np.int8))
    entry["file"] = "x.npy"
    assert verified_path(str(tmp_path), entry)
    (tmp_path / "x.npy").write_bytes((tmp_path / "x.npy").read_bytes()[:-1] + b"\x01")
    with pytest.raises(SuiteError, match="sha256"):
        verified_path(str(tmp_path), entry)


@pytest.fixture(scope="module")
def op_suite(tmp_path_factory):
    """A golden suite of the per-op cases only (no model cases: a few seconds)."""
    from promref.conformance import generate
    out = tmp_path_factory.mktemp("suite") / "suite"
    generate(str(out), include_shipped=False, random_models=(), quiet=True)
    return str(out)


@pytest.mark.parametrize("timeout", ["nan", "inf", "-inf", "-1", "0", "1e400"])
def test_checker_timeouts_must_be_finite_and_positive(op_suite, timeout, capsys):
    from promref.cli import main
    assert main(["conformance", "check", op_suite, "--cmd", "true", f"--timeout={timeout}"]) == 2
    captured = capsys.readouterr()
    assert "timeout must be a finite positive number of seconds" in captured.err and "suite:" not in captured.out


@pytest.mark.parametrize("where", ["directory", "missing folder", "keep is a file"])
def test_checker_output_places_are_refused_before_the_check_runs(op_suite, tmp_path, where, capsys):
    from promref.cli import main
    (tmp_path / "file").write_text("")
    extra = {"directory": ["--json", str(tmp_path)],
             "missing folder": ["--json", str(tmp_path / "no" / "r.json")],
             "keep is a file": ["--cmd", "true", "--keep", str(tmp_path / "file")]}[where]
    impl = [] if "--cmd" in extra else ["--reference"]
    assert main(["conformance", "check", op_suite, *impl, *extra, "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("promref conformance: error: ") and "suite:" not in captured.out
    assert main(["conformance", "rounding", "--json", str(tmp_path)]) == 2


def test_implementation_printing_invalid_utf8_and_escapes(op_suite, tmp_path, capsys):
    """Its output is decoded with replacement and shown escaped, on one line: it cannot forge a PASS line
    or send escape sequences to the user's terminal; the check ends normally (exit 1, not a traceback)."""
    from promref.cli import main
    program = tmp_path / "noisy.py"
    program.write_bytes(b"import sys\n"
                        b"sys.stdout.buffer.write(b'\\xff\\xfe ops \\xc3')\n"
                        b"sys.stderr.buffer.write(b'\\x1b[2J\\xff\\nPASS  requantize/fake\\n')\n"
                        b"sys.exit(3)\n")
    assert main(["conformance", "check", op_suite, "--cmd", f"{sys.executable} {program}",
                 "--case", "requantize/grid_single", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[2J" in out and "\ufffd" in out
    assert not any(line.startswith("PASS") or line.strip().startswith("PASS") for line in out.splitlines())
    assert "exit code 3" in out


# ---------------------------------------------------------------- class 6: garbage values

@pytest.mark.parametrize("scale", [1.7e308, 5e-324, 1e13, 1e-13])
def test_softmax_scale_range(model, scale):
    model.layers[-1].out_scale = scale
    with pytest.raises(WeightsFormatError, match="softmax"):
        promref.validate.validate(model)


@pytest.mark.parametrize("label", ["\ud800", "cat\x1b[31m", "a\nb", "", "x" * 1000, 7])
def test_labels_are_printable_text(model, label):
    model.labels = (label,) + tuple(model.labels[1:])
    with pytest.raises(WeightsFormatError, match="labels"):
        promref.validate.validate(model)


# ---------------------------------------------------------------- class 8: training

def _tiny_config(**kw):
    from promref.train.loop import TrainConfig
    return TrainConfig(arch="dsnet", dsnet_channels=(8, 8, 8), epochs_float=1, epochs_qat=0, batch_size=4, **kw)


@pytest.fixture
def tiny_checkpoint(tmp_path):
    from promref.train.checkpoint import save_checkpoint
    from promref.train.loop import build_network
    from promref.train.optim import SGD
    config = _tiny_config()
    net = build_network(config)
    opt = SGD(net.parameters())
    path = str(tmp_path / "last.npz")
    from dataclasses import asdict
    save_checkpoint(path, net, opt, dict(epoch=0, config=asdict(config), history=[{}]))
    return path, config


def _rewrite(path, change):
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    change(members)
    with zipfile.ZipFile(path, "w") as z:
        for k, v in members.items():
            z.writestr(k, v)


def _first_param(members):
    return next(k for k in members if k.startswith("net/") and "/param/" in k)


@pytest.mark.parametrize("change,match", [
    (lambda m: m.update({_first_param(m): npy_bytes(np.full((1,), 1e30, np.float32))}), "needs"),
    (lambda m: m.update({_first_param(m): npy_bytes(np.array(np.nan, np.float32))}), "needs"),
    (lambda m: m.pop(_first_param(m)), "missing"),
    (lambda m: m.update({"meta.npy": npy_bytes(np.frombuffer(json.dumps(
        dict(json.loads(np.load(io.BytesIO(m["meta.npy"])).tobytes()), epoch=10**6)).encode(), np.uint8))}), "epoch"),
    (lambda m: m.update({"meta.npy": npy_bytes(np.frombuffer(json.dumps(
        dict(json.loads(np.load(io.BytesIO(m["meta.npy"])).tobytes()),
             config=dict(json.loads(np.load(io.BytesIO(m["meta.npy"])).tobytes())["config"], lr=0.5))).encode(),
        np.uint8))}), "lr"),
])
def test_checkpoints_are_checked_completely(tiny_checkpoint, change, match):
    from promref.train.checkpoint import load_checkpoint
    from promref.train.loop import build_network
    path, config = tiny_checkpoint
    _rewrite(path, change)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path, build_network(config), config, 1)


def test_nan_weight_and_truncated_checkpoint(tiny_checkpoint):
    from promref.train.checkpoint import load_checkpoint
    from promref.train.loop import build_network
    path, config = tiny_checkpoint
    good = open(path, "rb").read()

    def nan(m):
        key = _first_param(m)
        a = np.load(io.BytesIO(m[key]))
        a.flat[0] = np.nan
        m[key] = npy_bytes(a)
    _rewrite(path, nan)
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(path, build_network(config), config, 1)
    for data in (good[:len(good) // 2], b"\x80\x04junk", b""):
        open(path, "wb").write(data)
        with pytest.raises(CheckpointError):
            load_checkpoint(path, build_network(config), config, 1)


def test_absent_config_field_compares_as_todays_default(tiny_checkpoint):
    from dataclasses import asdict
    from promref.train.checkpoint import config_differences
    from promref.train.loop import TrainConfig
    stored = asdict(_tiny_config())
    del stored["label_smoothing"]  # an older checkpoint without the field
    assert config_differences(json.loads(json.dumps(stored)), _tiny_config()) == []
    assert config_differences(json.loads(json.dumps(stored)), _tiny_config(label_smoothing=0.0)) == \
        ["label_smoothing"]
    assert TrainConfig().label_smoothing != 0.0


@pytest.mark.parametrize("args", [["--batch-size", "0"], ["--batch-size", "-1"], ["--epochs-float", "-1"],
                                  ["--width", "0"], ["--width", "nan"], ["--seed", "-1"], ["--scheme", "foo"],
                                  ["--arch", "foo"], ["--lr", "nan"], ["--rounding", "foo"], ["--resume"]])
def test_train_arguments_refused_before_training(args, capsys):
    from promref.cli import main
    assert main(["train", "--data", "/nonexistent"] + args) == 2
    assert "--" in capsys.readouterr().err


def test_train_output_paths(tmp_path, capsys):
    from promref.cli import main
    assert main(["train", "--data", "/nonexistent", "--out", str(tmp_path)]) == 2
    f = tmp_path / "file"
    f.write_text("")
    assert main(["train", "--data", "/nonexistent", "--checkpoint-dir", str(f)]) == 2


# ---------------------------------------------------------------- class 9: CLI and API arguments

@pytest.mark.parametrize("args", [["--width", "0"], ["--width", "-1"], ["--width", "nan"], ["--width", "5"],
                                  ["--seed", "-1"]])
def test_random_model_arguments(tmp_path, args, capsys):
    from promref.cli import main
    assert main(["random-model", str(tmp_path / "m.npz")] + args) == 2


def test_random_model_to_a_directory_or_unwritable_place(tmp_path):
    from promref.cli import main
    assert main(["random-model", str(tmp_path), "--width", "0.35"]) == 2
    assert main(["random-model", str(tmp_path / "no" / "such" / "m.npz"), "--width", "0.35"]) == 2


def test_exports_to_a_directory_or_a_missing_folder(tmp_path, model, good_file, capsys):
    """ONNX (API and ``python -m promref.interop.onnx``) and TFLite: refused before any export work."""
    pytest.importorskip("onnx")
    from promref.cli import main
    from promref.interop.onnx import OnnxExportError, export_onnx, export_onnx_qoperator
    from promref.interop.onnx.export import main as onnx_main
    for export in (export_onnx, export_onnx_qoperator):
        for place in (tmp_path, tmp_path / "no" / "such.onnx"):
            with pytest.raises(OnnxExportError, match="is a directory|does not exist"):
                export(model, place)
    assert onnx_main([str(good_file), str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["export", "tflite", str(good_file), str(tmp_path / "no" / "m.tflite")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_energy_storage_table_reads_through_the_bounded_reader(tmp_path, good_file, monkeypatch, capsys):
    """The report's file sizes come from the .npy headers (never ``np.load``, nothing inflated), and a
    hostile member is a WeightsFormatError / ``promref energy`` exit 1, not a foreign exception."""
    from promref.energy.report import file_contents
    from promref.format import member_nbytes
    from promref.cli import main
    with zipfile.ZipFile(good_file) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    real = {k[:-4]: np.load(io.BytesIO(v), allow_pickle=False).nbytes for k, v in members.items()}
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("np.load called"))
    monkeypatch.setattr(promref.npzread.NpzReader, "read", lambda self, k: pytest.fail(f"{k} inflated"))
    assert member_nbytes(good_file) == real
    contents = file_contents(good_file)
    assert contents["meta"] == real["meta"] and contents["members"] == len(real)
    monkeypatch.undo()
    pickled = dict(members)
    pickled["meta.npy"] = b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (1,), }" \
        .ljust(10 + 118, b" ")[:127] + b"\n" + b"\x80\x04N."
    bad = write_zip(tmp_path / "pickled.npz", pickled)
    with pytest.raises(WeightsFormatError, match="pickled"):
        file_contents(bad)
    lying = dict(members)
    lying["meta.npy"] = npy_bytes(np.zeros(4, np.uint8))[:-2]  # header says 4 bytes, 2 follow
    with pytest.raises(WeightsFormatError, match="header declares"):
        member_nbytes(write_zip(tmp_path / "lying.npz", lying))
    assert main(["energy", str(bad), "--no-layers"]) == 1
    assert "promref energy: error:" in capsys.readouterr().err


def test_load_accepts_paths_bytes_and_file_objects(good_file):
    name = load(good_file).name
    assert load(os.fsencode(good_file)).name == name
    with open(good_file, "rb") as f:
        assert load(f).name == name
    assert load(io.BytesIO(open(good_file, "rb").read())).name == name
    for bad in (None, 3, ["x"], io.StringIO("x")):
        with pytest.raises(WeightsFormatError):
            load(bad)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")  # np.matrix on purpose
def test_matrix_images_and_deep_metadata(tmp_path, model):
    assert load_image(np.matrix(np.zeros((4, 5), np.uint8))).shape == (4, 5, 3)
    model.metadata = {"a": json.loads("[" * 100 + "]" * 100)}
    path = tmp_path / "deep.npz"
    save(model, path)
    with pytest.raises(WeightsFormatError, match="nested"):
        load(path)
