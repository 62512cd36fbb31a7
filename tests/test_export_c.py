"""promref export c: the generated C99 library matches promref at every layer, on the host
(-O2 and -fsanitize=address,undefined, through the conformance protocol) and on a Cortex-M
under QEMU; its ternary kernel has no multiply instruction; bad models are refused."""
import copy
import glob
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from promref import PromrefError, load
from promref.cli import main as cli_main
from promref.conformance import check, generate
from promref.interop.c import CExportError, export_c
from promref.interop.c import run, toolchain
from promref.interop.c.bounds import check_expressible
from promref.interop.c.plan import plan_arena
from promref.model import InputSpec, Layer, Model
from promref.synthetic import random_model
from promref.validate import validate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(ROOT, "weights", "mbv2_prom.npz")
needs_cc = pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no host C compiler")
needs_arm = pytest.mark.skipif(not toolchain.have_arm_toolchain(),
                               reason="arm-none-eabi-gcc/objdump or qemu-system-arm not installed "
                                      "(.ci/run installs gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)")
needs_shipped = pytest.mark.skipif(not os.path.exists(SHIPPED), reason="weights/mbv2_prom.npz absent")
# the imagenet-size models run in test_conformance_protocol_with_sanitizers (and all of them
# in benchmarks/c_agreement.py): a 224x224 random model costs ~40 s to build and trace here
COMBOS = [("cifar", 0.1, s, r) for s in ("prom", "int8") for r in ("single", "double")]


def _images(model, n, seed=0):
    size = model.input.height
    x = np.random.default_rng(seed).integers(-128, 128, (n, size, size, 3)).astype(np.int8)
    x[0, : size // 2] = 127   # saturated blocks: extreme accumulators
    x[-1, size // 2:] = -128
    return x


def _assert_same(model, x, got):
    _, want = model.forward(x, backend="numpy", trace=True)
    assert list(got) == [layer.name for layer in model.layers]
    for name in want:
        bad = int((want[name] != got[name]).sum())
        assert bad == 0, f"layer {name!r}: {bad} of {want[name].size} values differ"


@pytest.fixture(scope="module")
def cifar_double_lib(tmp_path_factory):
    model = random_model("cifar", 0.1, "prom", seed=3, rounding="double")
    return model, export_c(model, tmp_path_factory.mktemp("cifar_double"))


@needs_cc
@pytest.mark.parametrize("config,width,scheme,rounding", COMBOS)
def test_host_every_layer_random_models(tmp_path, config, width, scheme, rounding):
    model = random_model(config, width, scheme, seed=2, rounding=rounding)
    export = export_c(model, tmp_path)
    x = _images(model, 2)
    _assert_same(model, x, run.run_host(model, toolchain.build_host(export.outdir), x, trace=True))


@needs_cc
def test_conformance_protocol_with_sanitizers(tmp_path, monkeypatch):
    """The whole-model cases of a suite (random cifar/imagenet models, both roundings and
    schemes, and the shipped weights) pass through the subprocess protocol, built with ASan+UBSan."""
    suite = tmp_path / "suite"
    monkeypatch.setenv("PYTHONPATH", ROOT)  # the runner runs in the case directory: import this checkout
    models = (("cifar", 0.1, "int8", "single"), ("imagenet", 0.1, "prom", "double"))
    generate(suite, weights=[SHIPPED] if os.path.exists(SHIPPED) else [], include_shipped=False,
             random_models=models, model_images=1, shipped_images=3)
    cmd = [sys.executable, "-m", "promref.interop.c.conformance", "--sanitize"]
    report = check(suite, cmd, cases=["model/*"])
    assert report.ok, report.text()
    assert report.count("pass") == len(models) + os.path.exists(SHIPPED)
    assert all("layer outputs compared" in r.message and r.message.split()[0] == r.message.split()[2]
               for r in report.results), [r.message for r in report.results]


@needs_cc
def test_protocol_skips_single_ops(tmp_path, cifar_double_lib):
    request = tmp_path / "request.json"
    request.write_text('{"op": "requantize"}')
    done = subprocess.run([sys.executable, "-m", "promref.interop.c.conformance", str(request), str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 77 and "not supported" in done.stderr


@needs_cc
@needs_shipped
def test_shipped_model_host_every_layer(tmp_path, cifar10_root):
    from promref.data.cifar10 import load_cifar10
    from promref.preprocess import pixels_to_int8
    model = load(SHIPPED)
    export = export_c(model, tmp_path)
    images, _ = load_cifar10("test", root=cifar10_root)
    x = pixels_to_int8(images[:4])
    _assert_same(model, x, run.run_host(model, toolchain.build_host(export.outdir), x, trace=True))
    assert export.arena_bytes >= export.live_bound_bytes > 0


@needs_cc
def test_ternary_kernel_has_no_multiply_x86(cifar_double_lib):
    _, export = cifar_double_lib
    obj = toolchain.compile_object(export.outdir, "prom_runtime.c")
    for symbol in ("prom_ternary_dot", "prom_pointwise_ternary"):
        assert len(toolchain.disassemble(obj, symbol)) > 10
        assert toolchain.multiplies(obj, symbol) == [], symbol
    # the scan can fail: requantization and the int8 convolution do multiply
    assert toolchain.multiplies(obj, "prom_requantize") and toolchain.multiplies(obj, "prom_conv2d")


@needs_arm
def test_ternary_kernel_has_no_multiply_cortex_m(cifar_double_lib):
    _, export = cifar_double_lib
    for cpu in ("cortex-m4", "cortex-m7"):
        obj = toolchain.compile_object(export.outdir, "prom_runtime.c", arm=True, cpu=cpu)
        for symbol in ("prom_ternary_dot", "prom_pointwise_ternary"):
            assert len(toolchain.disassemble(obj, symbol, arm=True)) > 10
            assert toolchain.multiplies(obj, symbol, arm=True) == [], (cpu, symbol)
        assert toolchain.multiplies(obj, "prom_requantize", arm=True)
        assert toolchain.multiplies(obj, "prom_conv2d", arm=True)


@needs_arm
@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m7"])
def test_cortex_m_qemu_every_layer(cifar_double_lib, cpu):
    model, export = cifar_double_lib
    elf = toolchain.build_mcu(export.outdir, cpu)
    x = _images(model, 2, seed=5)
    got, info = run.run_qemu(model, elf, x, cpu, timeout=300)
    _assert_same(model, x, got)
    assert 0 < info["stack_bytes"] < 4096 and info["arena_bytes"] == export.arena_bytes
    symbols = subprocess.run([toolchain.ARM_NM, elf], capture_output=True, text=True, check=True).stdout
    # linked with -nostdlib against libgcc alone: no libc, and no soft-float routine was pulled in
    assert not re.search(r"__aeabi_[fdi]2|__aeabi_[fd](add|mul|div|sub)|\bmalloc\b|\bprintf\b", symbols)


@needs_arm
@needs_shipped
def test_shipped_model_cortex_m4(tmp_path, cifar10_root):
    from promref.data.cifar10 import load_cifar10
    from promref.preprocess import pixels_to_int8
    model = load(SHIPPED)
    export = export_c(model, tmp_path)
    elf = toolchain.build_mcu(export.outdir, "cortex-m4")
    images, _ = load_cifar10("test", root=cifar10_root)
    x = pixels_to_int8(images[:2])
    got, _ = run.run_qemu(model, elf, x, "cortex-m4", timeout=600)
    _assert_same(model, x, got)
    sizes = toolchain.mcu_sizes(elf)
    assert sizes["weights"] == export.weight_bytes and sizes["arena"] == export.arena_bytes
    assert 0 < sizes["code"] < 64 * 1024


def test_library_uses_only_stdint_and_string(cifar_double_lib):
    _, export = cifar_double_lib
    for name in ("prom_runtime.c", "prom_runtime.h", "prom_model.c", "prom_model.h",
                 "prom_weights.c", "prom_weights.h"):
        text = open(os.path.join(export.outdir, name)).read()
        includes = re.findall(r'#include\s+(\S+)', text)
        assert set(includes) <= {"<stdint.h>", "<string.h>", '"prom_runtime.h"', '"prom_model.h"',
                                 '"prom_weights.h"'}, (name, includes)
        code = re.sub(r'"[^"\n]*"', '""', re.sub(r"/\*.*?\*/", "", text, flags=re.S))  # no comments, strings
        assert not re.search(r"\b(float|double|malloc|free)\b", code), name


def test_arena_plan_never_overlaps_live_tensors():
    model = random_model("cifar", 0.35, "prom", seed=0)
    placements, arena, live = plan_arena(model)
    assert arena >= live > 0
    items = list(placements.values())
    for a in items:
        assert a.offset + a.size <= arena
        for b in items:
            if a is not b and a.first <= b.last and b.first <= a.last:
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (a, b)


def test_refuses_op_without_c_kernel(model):
    validate(model)
    model.layers[3].op = "max_pool"
    with pytest.raises(CExportError, match=r"layer 3 .*no C kernel for op 'max_pool'"):
        check_expressible(model)
    with pytest.raises(PromrefError, match="max_pool"):
        export_c(model, "/nonexistent/never-written")


def _huge_map_model():
    """Valid for promref (a 26754 x 26754 input fits int32 indices), but its stem output has 2.9e9 elements."""
    def req(n, shift=-20):
        return dict(bias=np.zeros(n, np.int32), multiplier=np.full(n, 1 << 30, np.int32),
                    shift=np.full(n, shift, np.int32))
    w1 = np.ones((4, 1, 1, 3), np.int8)
    dw = np.ones((15, 15, 4), np.int8)
    layers = [Layer("stem", "stem", "conv2d", ("input",), 3, 4, out_zero_point=0, weights=w1, **req(4)),
              Layer("dw1", "depthwise", "depthwise_conv2d", ("stem",), 4, 4, out_zero_point=0, kernel=15,
                    stride=15, weights=dw, **req(4)),
              Layer("dw2", "depthwise", "depthwise_conv2d", ("dw1",), 4, 4, out_zero_point=0, kernel=15,
                    stride=15, weights=dw, **req(4)),
              Layer("pool", "pool", "global_avgpool", ("dw2",), 4, 4, out_zero_point=0),
              Layer("classifier", "classifier", "fully_connected", ("pool",), 4, 2, out_zero_point=0,
                    weights=np.ones((2, 4), np.int8), **req(2))]
    return Model("huge", InputSpec(height=26754, width=26754), layers, labels=("a", "b"))


def test_refuses_tensor_beyond_int32_indices(tmp_path):
    """The loader's resource limits (input sides <= 2048, <= 2**26 elements a tensor) already
    keep validated models far below int32 indices; the generator's own check still refuses
    a model built in memory past them, before writing anything."""
    model = _huge_map_model()
    with pytest.raises(PromrefError, match=r"out of range \[1, 2048\]"):
        validate(model)
    with pytest.raises(CExportError, match=r"layer 0 \('stem'.*26754, 26754, 4\).*> 2\*\*31 - 1"):
        check_expressible(model)
    assert not os.listdir(tmp_path)


@needs_cc
def test_cli_export_c(tmp_path, good_file, capsys):
    assert cli_main(["export", "c", str(good_file), str(tmp_path / "lib")]) == 0
    assert "arena" in capsys.readouterr().out
    assert os.path.exists(tmp_path / "lib" / "prom_model.h")
    assert cli_main(["export", "c", str(tmp_path / "missing.npz"), str(tmp_path / "x")]) == 2


# --- the resumable agreement runs (benchmarks/agreement_state.py, benchmarks/c_agreement.py) ---

def _benchmark(name):
    """Import benchmarks/<name>.py as a module (it puts benchmarks/ on sys.path itself)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(ROOT, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_agreement_state_resumes_refuses_and_survives_a_torn_line(tmp_path, capsys):
    states = _benchmark("agreement_state")
    path = str(tmp_path / "run.jsonl")
    s = states.AgreementState(path, {"weights": "a"}, resume=True)
    s.record("p", 0, 5, 1.0, layer_mismatches={"x": 0, "y": 2})
    s.record("p", 5, 8, 1.0, layer_mismatches={"x": 1})
    with pytest.raises(states.StateError, match="does not follow image 8"):
        s.record("p", 9, 10, 1.0)
    with open(path, "a") as f:
        f.write('{"kind": "chunk", "part": "p", "sta')   # a kill in the middle of a write
    again = states.AgreementState(path, {"weights": "a"}, resume=True)
    assert again.done("p") == 8 and again.done("other") == 0
    assert again.layer_totals("p") == {"x": 1, "y": 2} and again.mismatches("p") == 3
    again.record("p", 8, 9, 1.0)
    assert len(states.read_records(path)) == 4   # header + 3 chunks, the torn line gone
    with pytest.raises(states.StateError, match="written for another run"):
        states.AgreementState(path, {"weights": "b"}, resume=True)
    fresh = states.AgreementState(path, {"weights": "b"}, resume=False)   # moves the old file aside
    assert fresh.done("p") == 0 and "moved to" in capsys.readouterr().out
    assert len(glob.glob(path + ".*.old")) == 1


def test_agreement_state_refuses_a_gap(tmp_path):
    states = _benchmark("agreement_state")
    path = str(tmp_path / "gap.jsonl")
    states.AgreementState(path, {}, resume=True)
    with open(path, "a") as f:
        f.write('{"kind": "chunk", "part": "p", "start": 0, "stop": 2, "seconds": 1}\n'
                '{"kind": "chunk", "part": "p", "start": 3, "stop": 4, "seconds": 1}\n')
    with pytest.raises(states.StateError, match="gap or overlap at image 2"):
        states.AgreementState(path, {}, resume=True).done("p")


@needs_cc
def test_c_agreement_resumes_where_it_stopped(tmp_path, cifar10_root, monkeypatch, capsys):
    """A stopped run continues from its first image not done (a small CIFAR-size model: the shipped
    one's weights take a minute to compile here, twice)."""
    from promref.format import save
    weights = str(tmp_path / "small.npz")
    save(random_model("cifar", 0.1, "prom", seed=5), weights)
    bench, state = _benchmark("c_agreement"), str(tmp_path / "c.jsonl")
    argv = ["c_agreement.py", weights, "--data", cifar10_root, "--trace-images", "1", "--mcu-images", "0",
            "--random-images", "0", "--jobs", "1", "--chunk", "2", "--state", state]
    monkeypatch.setattr(sys, "argv", argv + ["--images", "3"])
    assert bench.main() == 0
    monkeypatch.setattr(sys, "argv", argv + ["--images", "5", "--resume"])
    assert bench.main() == 0
    out = capsys.readouterr().out
    assert "host_logits 3" in out and "host logits: 5 of 5 CIFAR-10 test images (1 layers compared): 0 mismatches" in out
    chunks = [r for r in _benchmark("agreement_state").read_records(state) if r["kind"] == "chunk"]
    assert [(c["part"], c["start"], c["stop"]) for c in chunks] == [
        ("host_trace", 0, 1), ("host_logits", 0, 2), ("host_logits", 2, 3), ("host_logits", 3, 5)]


def test_agreement_report_reads_a_state_file(tmp_path, capsys):
    states, report = _benchmark("agreement_state"), _benchmark("agreement_report")
    path = str(tmp_path / "run.jsonl")
    s = states.AgreementState(path, {"weights": "w"}, resume=True)
    s.record("host_trace", 0, 2, 1.0, layer_mismatches={"a": 0, "classifier": 0})
    s.record("host_logits", 0, 3, 1.0, layer_mismatches={"classifier": 0})
    assert report.main([path]) == 0
    s.record("host_logits", 3, 4, 1.0, layer_mismatches={"classifier": 2})
    assert report.main([path]) == 1
    out = capsys.readouterr().out
    assert "host_logits: 4 images done (2 chunks" in out and "logits on 4 images: 2 mismatches" in out
    assert "total mismatches recorded: 2" in out
