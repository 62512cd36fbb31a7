"""Tests of promref.conformance: the golden-vector suite, the checker (Python callables and the
subprocess protocol), the C example of examples/c, and the rounding-rule comparisons."""
import filecmp
import json
import os
import shutil
import subprocess
import sys
import textwrap
from fractions import Fraction

import numpy as np
import pytest

from promref import arith
from promref.conformance import (PythonImplementation, RuleImplementation, SubprocessImplementation, check,
                                 forward_with_rule, generate, half_even_implementation, load_manifest,
                                 reference_implementation)
from promref.conformance import rounding as rules
from promref.conformance.cli import main as cli_main
from promref.conformance.measure import measure
from promref.conformance.suite import (CASE_FIELDS, OP_INPUTS, OP_PARAMS, TENSOR_FIELDS, npy_data_offset,
                                       read_array, sha256_file)
from promref.synthetic import random_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
C_DIR = os.path.join(ROOT, "examples", "c")
RUNTIME_DIR = os.path.join(ROOT, "promref", "interop", "c", "csrc")  # the runtime `promref export c` writes
REQUANTIZING_OPS = ("requantize", "pointwise_ternary", "conv2d", "depthwise_conv2d", "fully_connected", "add")


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """The default suite (op cases + four small random models), generated once."""
    path = tmp_path_factory.mktemp("suite")
    generate(path, include_shipped=False)
    return str(path)


@pytest.fixture(scope="module")
def manifest(suite):
    return load_manifest(suite)


# ------------------------------------------------------------------ the suite


def test_manifest_is_valid_json_with_every_field(suite, manifest):
    with open(os.path.join(suite, "manifest.json"), encoding="utf-8") as f:
        raw = json.load(f)
    assert raw == manifest
    assert raw["format"] == "promref-conformance-suite" and raw["format_version"] == 1
    ids = [c["id"] for c in raw["cases"]]
    assert len(ids) == len(set(ids))
    for case in raw["cases"]:
        for name in CASE_FIELDS:
            assert name in case, (case["id"], name)
        assert set(OP_PARAMS[case["op"]]) <= set(case["params"])
        assert [t["name"] for t in case["inputs"]] == list(OP_INPUTS[case["op"]])
        for t in case["inputs"] + case["outputs"]:
            assert set(TENSOR_FIELDS) <= set(t)
            path = os.path.join(suite, t["file"])
            assert npy_data_offset(path) == t["data_offset"] and t["data_offset"] % 64 == 0
            assert sha256_file(path) == t["sha256"]
            array = np.load(path, allow_pickle=False)
            assert str(array.dtype) == t["dtype"] and list(array.shape) == t["shape"]
            # a C reader: skip data_offset bytes, read raw little-endian values
            with open(path, "rb") as f:
                f.seek(t["data_offset"])
                raw_values = np.frombuffer(f.read(), dtype=array.dtype.newbyteorder("<"))
            np.testing.assert_array_equal(raw_values, array.reshape(-1))
        if case["op"] == "model":
            assert case["weights"]["sha256"] == sha256_file(os.path.join(suite, case["weights"]["file"]))
            assert len(case["outputs"]) == case["model"]["layers"]
        if case["op"] in ("conv2d", "depthwise_conv2d"):
            assert len(case["params"]["padding"]) == 4


def test_suite_covers_the_corners(manifest):
    cases = manifest["cases"]
    for op in REQUANTIZING_OPS:
        for rounding in ("single", "double"):
            group = [c for c in cases if c["op"] == op and c["rounding"] == rounding]
            assert group, (op, rounding)
            cov = [c["coverage"] for c in group]
            assert sum(c["ties"] for c in cov) > 0, (op, rounding)
            assert sum(c["saturated_low"] for c in cov) > 0 and sum(c["saturated_high"] for c in cov) > 0
            other = "double" if rounding == "single" else "single"
            assert sum(c["differs_under"][other] for c in cov) > 0, (op, rounding)
            assert sum(c["differs_under"]["half_even"] for c in cov) > 0, (op, rounding)
    assert any(c["op"] == "global_avgpool" and c["coverage"]["ties"] > 0 for c in cases)
    grid = next(c for c in cases if c["id"] == "requantize/grid_single")
    shapes = {t["name"]: t["shape"] for t in grid["inputs"]}
    assert shapes["multiplier"] == [70]
    geometry = {(tuple(c["params"]["padding"]), c["params"]["stride"]) for c in cases if c["op"] == "conv2d"}
    assert ((0, 1, 0, 1), 2) in geometry
    models = [c for c in cases if c["op"] == "model"]
    assert {(c["model"]["arch"]["scheme"], c["rounding"]) for c in models} == {
        ("prom", "single"), ("prom", "double"), ("int8", "single"), ("int8", "double")}


def test_extreme_multipliers_and_shifts_are_in_the_grid(suite, manifest):
    grid = next(c for c in manifest["cases"] if c["id"] == "requantize/grid_double")
    arrays = {t["name"]: read_array(os.path.join(suite, t["file"]), t["dtype"], t["shape"]) for t in grid["inputs"]}
    assert {arith.INT32_MAX, 1 << 30, 1, 0} <= set(arrays["multiplier"].tolist())
    assert {-31, 0, 30} <= set(arrays["shift"].tolist())
    assert arrays["acc"].min() == arith.INT32_MIN and arrays["acc"].max() == arith.INT32_MAX


def test_generation_is_deterministic(tmp_path):
    models = (("cifar", 0.1, "prom", "single"),)
    a, b = tmp_path / "a", tmp_path / "b"
    generate(a, include_shipped=False, random_models=models, model_images=1)
    generate(b, include_shipped=False, random_models=models, model_images=1)
    files_a = sorted(os.path.relpath(os.path.join(d, f), a) for d, _, fs in os.walk(a) for f in fs)
    files_b = sorted(os.path.relpath(os.path.join(d, f), b) for d, _, fs in os.walk(b) for f in fs)
    assert files_a == files_b and "manifest.json" in files_a
    _, mismatch, errors = filecmp.cmpfiles(a, b, files_a, shallow=False)
    assert mismatch == [] and errors == []


def test_weights_files_become_model_cases(tmp_path):
    from promref.format import save
    weights = tmp_path / "my_net.npz"
    save(random_model("cifar", 0.1, "int8", seed=5, rounding="double"), weights)
    suite_dir = tmp_path / "suite"
    generate(suite_dir, weights=[weights], include_shipped=False, random_models=(), shipped_images=1)
    case = next(c for c in load_manifest(suite_dir)["cases"] if c["op"] == "model")
    assert case["id"] == "model/my_net" and case["rounding"] == "double"
    assert filecmp.cmp(weights, suite_dir / case["weights"]["file"], shallow=False)  # copied as is
    assert case["inputs"][0]["shape"] == [1, 32, 32, 3]
    assert check(suite_dir, reference_implementation, cases=["model/*"]).ok


def test_generate_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "something").write_text("x")
    with pytest.raises(FileExistsError):
        generate(tmp_path, random_models=())


# ------------------------------------------------------------------ the checker, Python callables


def test_reference_implementation_passes_everything(suite, manifest):
    report = check(suite, reference_implementation)
    assert report.ok, report.text()
    assert report.count("pass") == len(manifest["cases"]) and report.count("skip") == 0


@pytest.mark.parametrize("rule", ["single", "double"])
def test_rule_implementation_agrees_with_its_own_mode(suite, rule):
    report = check(suite, RuleImplementation(rule))
    for r in report.results:
        case_rounding = r.case.rsplit("_", 1)[-1]
        if case_rounding == rule or r.op == "global_avgpool":
            assert r.status == "pass", r.line()


def _first_half_even_mismatch(suite, case):
    """Index of the first value where exact round-half-even disagrees with the expected output,
    computed with Python fractions (independently of the code under test)."""
    arrays = {t["name"]: read_array(os.path.join(suite, t["file"]), t["dtype"], t["shape"])
              for t in case["inputs"] + case["outputs"]}
    acc, mult, shift, y = arrays["acc"], arrays["multiplier"], arrays["shift"], arrays["y"]
    p = case["params"]
    for index in np.ndindex(acc.shape):
        c = index[-1]
        exact = Fraction(int(acc[index]) * int(mult[c])) * Fraction(2) ** (int(shift[c]) - 31)
        half_even = round(exact)  # Python rounds Fractions half to even
        value = min(max(half_even + p["out_zero_point"], p["out_min"]), p["out_max"])
        if value != y[index]:
            return index, int(y[index]), value
    return None


def test_half_even_implementation_is_caught_with_case_and_index(suite, manifest):
    report = check(suite, half_even_implementation())
    assert not report.ok
    failed = {r.case for r in report.failures()}
    for case_id in ("requantize/grid_single", "requantize/grid_double", "pointwise_ternary/small_ties_single",
                    "add/ties_single", "model/random_cifar_w0.1_prom_double"):
        assert case_id in failed, case_id
    for case_id in ("requantize/grid_single", "requantize/one_channel_odd_shape_double"):
        case = next(c for c in manifest["cases"] if c["id"] == case_id)
        index, expected, actual = _first_half_even_mismatch(suite, case)
        result = report.result(case_id)
        assert result.status == "fail" and result.tensor == "y"
        assert result.index == index and (result.expected, result.actual) == (expected, actual)
        assert case_id in result.line() and str(list(index)) in result.line()
    model = report.result("model/random_cifar_w0.1_prom_double")
    assert model.tensor == "stem" and model.index is not None  # the first layer in execution order


def test_model_failure_names_the_first_bad_layer(suite):
    def corrupt(op, inputs, params):
        if op != "model":
            raise NotImplementedError
        out = reference_implementation(op, inputs, params)
        out["b3.depthwise"] = out["b3.depthwise"].copy()
        out["b3.depthwise"][0, 1, 2, 3] ^= 1
        out["b5.project"] = out["b5.project"] + 1  # later layers differ too: not the first
        del out["b1.depthwise"]  # intermediate layers are optional
        return out

    report = check(suite, corrupt, cases=["model/*prom_single"])
    (result,) = report.results
    assert result.status == "fail" and result.tensor == "b3.depthwise" and result.index == (0, 1, 2, 3)
    assert result.mismatches == 1


def test_unsupported_ops_are_skipped_not_passed(suite):
    report = check(suite, PythonImplementation(reference_implementation, supported_ops={"requantize"}))
    assert report.ok
    assert report.count("pass") == sum(r.op == "requantize" for r in report.results)
    assert all(r.status == "skip" for r in report.results if r.op != "requantize")

    def only_add(op, inputs, params):
        if op != "add":
            raise NotImplementedError(f"{op} is not here")
        return reference_implementation(op, inputs, params)

    report = check(suite, only_add)
    assert report.ok and report.count("pass") == 6
    nothing = check(suite, lambda op, inputs, params: (_ for _ in ()).throw(NotImplementedError()))
    assert not nothing.ok and nothing.count("skip") == len(nothing.results)


def test_malformed_outputs_are_errors(suite):
    def wrong_shape(op, inputs, params):
        y = reference_implementation(op, inputs, params)["y"]
        return {"y": y.reshape(-1)}

    def crash(op, inputs, params):
        raise RuntimeError("boom")

    for impl, words in ((wrong_shape, "shape"), (crash, "boom"), (lambda *a: {}, "missing")):
        report = check(suite, impl, cases=["requantize/grid_single"])
        (result,) = report.results
        assert result.status == "error" and words in result.message


def test_forward_with_rule_matches_the_reference_trace():
    model = random_model("cifar", 0.1, "int8", seed=3, rounding="double")
    x = np.random.default_rng(0).integers(-128, 128, (2, 32, 32, 3)).astype(np.int8)
    _, trace = model.forward(x, backend="numpy", trace=True)
    mine = forward_with_rule(model, x, "double")
    assert mine.keys() == trace.keys()
    for name in trace:
        np.testing.assert_array_equal(mine[name], trace[name], err_msg=name)


# ------------------------------------------------------------------ the subprocess protocol


PY_PEER = textwrap.dedent("""
    import json, os, sys
    if sys.argv[1:] == ["--supported-ops"]:
        print("requantize model")
        sys.exit(0)
    import numpy as np
    from promref.conformance import reference_implementation
    request_path, out_dir = sys.argv[1:]
    with open(request_path) as f:
        request = json.load(f)
    inputs = {t["name"]: np.load(t["file"]) for t in request["inputs"]}
    params = dict(request["params"], rounding=request["rounding"])
    if request["op"] == "model":
        params["weights"] = request["weights"]
    out = reference_implementation(request["op"], inputs, params)
    for t in request["outputs"]:
        if t["name"] in out:
            np.save(os.path.join(out_dir, t["name"] + ".npy"), out[t["name"]])
""")


def test_subprocess_protocol_with_a_python_peer(suite, tmp_path):
    script = tmp_path / "peer.py"
    # the peer imports this checkout's promref, installed or not (the README's command installs it)
    script.write_text(f"import sys; sys.path.insert(0, {ROOT!r})\n" + PY_PEER)
    env_cmd = [sys.executable, str(script)]
    impl = SubprocessImplementation(env_cmd, keep_dir=str(tmp_path / "work"))
    assert impl.supported_ops == {"requantize", "model"}
    report = check(suite, impl, cases=["requantize/grid_single", "model/*int8_double", "add/ties_single"])
    assert report.ok, report.text()
    assert report.count("pass") == 2 and report.result("add/ties_single").status == "skip"
    assert "layer outputs compared" in report.result("model/random_cifar_w0.1_int8_double").message
    # the request directories follow docs/conformance.md
    requests = {json.loads((d / "request.json").read_text())["case"]: d for d in (tmp_path / "work").iterdir()}
    assert len(requests) == 2
    model_request = json.loads((requests["model/random_cifar_w0.1_int8_double"] / "request.json").read_text())
    assert os.path.exists(model_request["weights"]) and len(model_request["outputs"]) > 50
    work = requests["requantize/grid_single"]
    request = json.loads((work / "request.json").read_text())
    assert request["protocol"] == "promref-conformance-request" and request["op"] == "requantize"
    flat = dict(line.split("=", 1) for line in (work / "params.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    assert flat["op"] == "requantize" and flat["inputs"] == "3" and flat["input.0.name"] == "acc"
    assert flat["input.0.dtype"] == "int32" and flat["output.0.name"] == "y" and flat["out_zero_point"] == "0"
    assert os.path.exists(flat["input.0.file"]) and int(flat["input.0.offset"]) == npy_data_offset(flat["input.0.file"])


def test_subprocess_failures_are_errors(suite, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nsys.stderr.write('kaput')\nsys.exit(3)\n")
    report = check(suite, [sys.executable, str(bad)], cases=["requantize/grid_single"])
    (result,) = report.results
    assert result.status == "error" and "exit code 3" in result.message and "kaput" in result.message


# ------------------------------------------------------------------ the C example


def _c_compiler():
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def c_binaries(tmp_path_factory):
    compiler = _c_compiler()
    if compiler is None:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH: the C example cannot be built")
    out = tmp_path_factory.mktemp("cbuild")
    sources = [os.path.join(C_DIR, "prom_conformance.c"), os.path.join(RUNTIME_DIR, "prom_runtime.c")]
    binaries = {}
    for name, flags in (("good", []), ("wrong", ["-DWRONG_ROUNDING"])):
        exe = str(out / f"prom_conformance_{name}")
        done = subprocess.run([compiler, "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", *flags, "-I", RUNTIME_DIR, "-o", exe,
                               *sources], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        binaries[name] = exe
    return binaries


def test_c_example_passes_its_cases(suite, c_binaries):
    impl = SubprocessImplementation(c_binaries["good"])
    assert impl.supported_ops == {"requantize", "pointwise_ternary"}
    report = check(suite, impl)
    assert report.ok, report.text()
    supported = [r for r in report.results if r.op in ("requantize", "pointwise_ternary")]
    assert len(supported) == 18 and all(r.status == "pass" for r in supported)
    assert all(r.status == "skip" for r in report.results if r not in supported)


def test_c_example_answers_77_for_other_ops(suite, c_binaries):
    impl = SubprocessImplementation(c_binaries["good"], query_ops=False)
    report = check(suite, impl, cases=["conv2d/1x1_int8_single", "model/*prom_single"])
    assert [r.status for r in report.results] == ["skip", "skip"]


def test_broken_c_variant_fails(suite, c_binaries):
    report = check(suite, c_binaries["wrong"], ops={"requantize", "pointwise_ternary"})
    assert not report.ok
    failed = {r.case for r in report.failures()}
    assert {"requantize/grid_single", "requantize/grid_double", "pointwise_ternary/small_ties_single",
            "pointwise_ternary/small_ties_double"} <= failed
    result = report.result("requantize/one_channel_odd_shape_single")
    assert result.status == "fail" and result.index == (0, 0, 0, 0) and (result.expected, result.actual) == (-4, -5)


# ------------------------------------------------------------------ the CLI


def test_cli_generate_and_check(tmp_path, suite, capsys):
    out = tmp_path / "s"
    assert cli_main(["generate", str(out), "--no-random-models", "--no-shipped", "--quiet"]) == 0
    assert cli_main(["generate", str(out), "--no-random-models", "--no-shipped", "--quiet"]) == 2  # not empty
    assert cli_main(["check", str(out), "--reference"]) == 0
    assert cli_main(["check", str(out), "--rule", "half_even", "--case", "requantize/*",
                     "--json", str(tmp_path / "r.json")]) == 1
    text = capsys.readouterr().out
    assert "FAIL  requantize/grid_single: output 'y' index [" in text
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["ok"] is False and saved["results"][0]["case"].startswith("requantize/")
    assert cli_main(["check", str(out)]) == 2  # no implementation named


def test_cli_rounding_measurement(tmp_path, capsys):
    from PIL import Image
    image = tmp_path / "ramp.png"
    ramp = np.add.outer(np.arange(40), np.arange(48)).astype(np.uint8)
    Image.fromarray(np.stack([ramp, ramp[::-1], 255 - ramp], axis=-1)).save(image)
    out = tmp_path / "rounding.json"
    assert cli_main(["rounding", "--images", str(image), "--model", "cifar:0.1:prom", "--json", str(out)]) == 0
    assert "single vs double" in capsys.readouterr().out
    (stats,) = json.loads(out.read_text()).values()
    assert stats["images"] == 1 and stats["all"]["differ"]["double|tosa_double"] == 0


# ------------------------------------------------------------------ rounding rules


def _exact(acc, m, s):
    return Fraction(acc * m) * Fraction(2) ** (s - 31)


def test_rounding_rules_match_their_definitions():
    rng = np.random.default_rng(7)
    shifts = rng.integers(-31, 31, 3000)
    acc = np.array([int(rng.integers(-(arith.INT32_MAX >> max(s, 0)), (arith.INT32_MAX >> max(s, 0)) + 1))
                    for s in shifts])
    acc[:200] = rng.integers(-40, 41, 200)
    mult = rng.integers(0, 1 << 31, 3000)
    mult[:600:2] = 1 << 30
    mult[1:600:2] = 3 << 28
    shifts[:600] = rng.integers(-6, 1, 600)
    half_even = rules.scale("half_even", acc, mult, shifts)
    half_away = rules.scale("half_away", acc, mult, shifts)
    single = rules.scale("single", acc, mult, shifts)
    ties = rules.exact_ties(acc, mult, shifts)
    assert ties.sum() > 20
    for i in range(len(acc)):
        v = _exact(int(acc[i]), int(mult[i]), int(shifts[i]))
        floor = v.numerator // v.denominator
        assert half_even[i] == round(v)
        assert single[i] == (v + Fraction(1, 2)).numerator // (v + Fraction(1, 2)).denominator
        assert half_away[i] == (floor + 1 if v - floor > Fraction(1, 2) or (v - floor == Fraction(1, 2) and v > 0)
                                else floor)
        assert bool(ties[i]) == (v - floor == Fraction(1, 2))
    # TOSA's double_round is bit-identical to TFLite's double rounding on this (valid) domain
    np.testing.assert_array_equal(rules.scale("tosa_double", acc, mult, shifts),
                                  rules.scale("double", acc, mult, shifts))


def test_measure_counts_disagreements():
    model = random_model("cifar", 0.1, "prom", seed=0)
    x = np.random.default_rng(1).integers(-128, 128, (2, 32, 32, 3)).astype(np.int8)
    stats = measure(model, x)
    assert stats["images"] == 2 and stats["all"]["values"] > 0
    assert stats["all"]["differ"]["double|tosa_double"] == 0
    assert stats["all"]["differ"]["single|double"] > 0
    assert set(stats["end_to_end"]) == {"double", "half_even"}
    assert {"expand", "depthwise", "project", "classifier"} <= set(stats["per_kind"])


def test_the_documented_manifest_rules_are_the_checked_ones():
    """docs/conformance.md's "What the checker accepts" names the checker's own pattern and limits."""
    from promref import limits
    from promref.conformance.suite import DTYPES, SAFE_NAME, SUITE_FORMAT
    with open(os.path.join(ROOT, "docs", "conformance.md"), encoding="utf-8") as f:
        doc = f.read()
    section = doc[doc.index("#### What the checker accepts"):doc.index("Per op (all zero points")]
    mib = 1 << 20
    for text in (f"`{SAFE_NAME.pattern}`", f'"{SUITE_FORMAT}"', f"{limits.MAX_MANIFEST_BYTES // mib} MiB",
                 f"{limits.MAX_SUITE_CASES:,} case", f"{limits.MAX_TENSOR_FILE_BYTES // mib} MiB",
                 f"{limits.MAX_CHECKER_OUTPUT_BYTES // mib} MiB", f"depth at most {limits.MAX_JSON_DEPTH}",
                 f"at most {limits.MAX_JSON_INT_DIGITS} digits", ", ".join(f"`{d}`" for d in DTYPES)):
        assert text in section, f"docs/conformance.md's manifest rules do not say {text!r}"
