"""The TOSA export (promref.interop.tosa) in the TOSA reference model, bit for bit.

* RESCALE: TOSA SINGLE_ROUND / DOUBLE_ROUND equal promref's "single" / "double"
  (hypothesis on the spec's apply_scale_32 over every int32 accumulator and
  multiplier; the reference model itself on thousands of values per channel,
  ties and range ends included), and TOSA refuses exactly where documented;
* AVG_POOL2D equals promref's global average on every possible window sum;
* the shipped weights (a few CIFAR-10 images, both rounding modes) and random
  PROM / int8 models of both configurations: every layer, 0 mismatches;
* models TOSA cannot represent exactly: a TosaExportError naming the layer.
"""
import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("tosa_serializer", reason="the TOSA tests need tosa-tools (pip install tosa-tools)")
pytest.importorskip("tosa_reference_model", reason="the TOSA tests need tosa-tools (pip install tosa-tools)")

from promref import arith  # noqa: E402
from promref.cli import main as promref_main  # noqa: E402
from promref.format import load  # noqa: E402
from promref.interop.tosa import TosaExportError, build_tosa, run_flatbuffer, run_tosa  # noqa: E402
from promref.interop.tosa.graph import TosaGraph  # noqa: E402
from promref.interop.tosa.rescale import apply_scale_32, avg_pool2d_matches, tosa_rescale_parameters  # noqa: E402
from promref.synthetic import random_model  # noqa: E402

SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights", "mbv2_prom.npz")
MODES = ("single", "double")


def promref_fits(acc, shift):
    """promref's own precondition (validate.check_scale_input): acc << shift fits in int32."""
    return abs(acc) << max(shift, 0) <= arith.INT32_MAX


MULTIPLIERS = st.one_of(st.sampled_from([0, 1, 3, 1 << 29, 1 << 30, arith.MULTIPLIER_MAX]),
                        st.integers(0, arith.MULTIPLIER_MAX), st.integers(0, 64).map(lambda k: 3 << k // 2 + 1))


@settings(max_examples=3000, deadline=None)
@given(st.integers(arith.INT32_MIN + 1, arith.INT32_MAX), MULTIPLIERS,
       st.integers(arith.SHIFT_MIN, arith.SHIFT_MAX), st.sampled_from(MODES), st.booleans())
def test_apply_scale_32_equals_promref_rounding(acc, multiplier, shift, rounding, near_tie):
    """TOSA's formula with the exporter's (multiplier, shift) = promref's arith, wherever TOSA accepts it.

    ``near_tie`` moves acc next to an exact .5 of acc * M / 2**n, where the rounding rules differ."""
    multiplier = min(multiplier, arith.MULTIPLIER_MAX)
    n = 31 - shift
    if near_tie and multiplier:
        twos = (multiplier & -multiplier).bit_length() - 1
        step = 1 << max(n - 1 - twos, 0)
        acc = (acc // (2 * step)) * 2 * step + step + acc % 3 - 1
    if not arith.INT32_MIN < acc <= arith.INT32_MAX or not promref_fits(acc, shift):
        return
    try:
        m, n = tosa_rescale_parameters(multiplier, shift, rounding, abs(acc), "test")
    except TosaExportError:  # refused: only where TOSA's REQUIREs leave no exact form
        assert shift == arith.SHIFT_MAX or abs(acc) >= 1 << 29 or multiplier >= 1 << 29
        return
    got = int(apply_scale_32(acc, m, n, double_round=rounding == "double"))
    assert got == int(arith.scale_by_mode(np.int64(acc), np.int64(multiplier), np.int64(shift), rounding))


def _tie_values(multiplier, n, count, rng, bound):
    """Accumulators around exact .5 ties of acc * M / 2**n (when M has enough factors of 2), plus range ends."""
    twos = (multiplier & -multiplier).bit_length() - 1 if multiplier else 0
    step = 1 << max(n - 1 - twos, 0)
    ties = step * (2 * rng.integers(-(bound // (2 * step)) - 1, bound // (2 * step) + 1, count) + 1)
    values = np.concatenate([ties, ties - 1, ties + 1, rng.integers(-bound, bound + 1, count), [bound, -bound, 0, 1, -1]])
    return np.clip(values, -bound, bound)


@pytest.mark.parametrize("rounding", MODES)
def test_reference_model_rescale_equals_promref(rounding):
    """One RESCALE int32 -> int32 per channel in the reference model: 256 (M, shift) pairs x 1,285 values."""
    rng = np.random.default_rng(7 if rounding == "single" else 8)
    channels, per = 256, 256
    specials = [0, 1, 3, 1 << 30, (1 << 31) - 1, 1 << 20]
    multipliers = np.concatenate([specials, rng.integers(1 << 30, 1 << 31, channels - len(specials))])
    shifts = rng.integers(arith.SHIFT_MIN, 8, channels)
    shifts[:8] = [-31, -30, -1, 0, 1, 5, 7, -12]
    columns, tosa_m, tosa_n = [], [], []
    for m, s in zip(multipliers, shifts):
        limit = arith.INT32_MAX >> max(int(s), 0)
        for _ in range(64):  # the widest accumulator range TOSA takes for this channel
            try:
                mm, nn = tosa_rescale_parameters(int(m), int(s), rounding, limit, "test")
                break
            except TosaExportError:
                limit //= 2
        columns.append(_tie_values(int(m), 31 - int(s), per, rng, limit))
        tosa_m.append(mm)
        tosa_n.append(nn)
    acc = np.stack(columns, axis=1).astype(np.int32)  # [values, channels]
    g = TosaGraph()
    g.input("acc", acc.shape, g.D.INT32)
    g.output(g.rescale("acc", acc.shape, g.D.INT32, g.D.INT32, tosa_m, tosa_n, rounding))
    (got,) = run_flatbuffer(g.serialize(), [acc])
    want = arith.scale_by_mode(acc.astype(np.int64), multipliers.astype(np.int64), shifts.astype(np.int64), rounding)
    assert np.array_equal(got.astype(np.int64), want)


def test_reference_model_enforces_the_value_range():
    """Why the exporter refuses: the reference model itself rejects a value outside [-2**(n-1), 2**(n-1))."""
    g = TosaGraph()
    g.input("acc", [1, 1], g.D.INT32)
    g.output(g.rescale("acc", [1, 1], g.D.INT32, g.D.INT32, [1 << 30], [31], "single"))
    assert run_flatbuffer(g.serialize(), [np.array([[(1 << 30) - 1]], np.int32)])[0].item() == (1 << 29)
    with pytest.raises(TosaExportError):
        run_flatbuffer(g.serialize(), [np.array([[1 << 30]], np.int32)])


def test_rescale_refusals_name_the_layer():
    with pytest.raises(TosaExportError, match="layer 'x'.*2 <= shift <= 62"):
        tosa_rescale_parameters((1 << 31) - 1, 30, "single", 1, "layer 'x'")
    with pytest.raises(TosaExportError, match="layer 'y'.*requires"):
        tosa_rescale_parameters(1 << 30, 0, "double", 1 << 30, "layer 'y'")
    assert tosa_rescale_parameters(1 << 29, 30, "single", 1, "z") == (1 << 30, 2)  # widened: same number


@pytest.mark.parametrize("h, w", [(1, 1), (4, 4), (7, 7), (3, 5)])
def test_avg_pool2d_equals_promref_on_every_window_sum(h, w):
    """AVG_POOL2D in the reference model on one window per channel, covering every sum in [-128c, 127c]."""
    count = h * w
    assert avg_pool2d_matches(count)
    totals = np.arange(-128 * count, 127 * count + 1)
    base = np.floor_divide(totals, count)
    extra = totals - base * count                      # this many values get base + 1
    x = np.where(np.arange(count)[:, None] < extra[None, :], base + 1, base).astype(np.int8)  # [count, sums]
    x = x.reshape(1, h, w, len(totals))
    g = TosaGraph()
    g.input("x", x.shape, g.D.INT8)
    attr = g.attribute()
    attr.AvgPool2dAttribute([h, w], [1, 1], [0, 0, 0, 0], g.D.INT32)
    g.output(g.op(g.ts.Op.AVG_POOL2D, ["x", g.zero_point(0, g.D.INT8), g.zero_point(0, g.D.INT8)],
                  [1, 1, 1, len(totals)], g.D.INT8, attr))
    (got,) = run_flatbuffer(g.serialize(), [x])
    assert np.array_equal(x.astype(np.int64).sum(axis=(0, 1, 2)), totals)
    assert np.array_equal(got.reshape(-1), arith.global_average(totals, count))


def _assert_trace_equal(model, x):
    _, expected = model.forward(x, backend="numpy", trace=True)
    got = run_tosa(model, x)
    assert set(got) == set(expected)
    bad = {n: int((got[n] != expected[n]).sum()) for n in expected if not np.array_equal(got[n], expected[n])}
    assert not bad, f"rounding {model.rounding}: layers differing from promref (count): {bad}"


@pytest.mark.parametrize("rounding", MODES)
def test_shipped_weights_every_layer(rounding, cifar10_root):
    from promref.data.cifar10 import load_cifar10
    from promref.preprocess import pixels_to_int8
    model = load(SHIPPED)
    model.rounding = rounding  # the same integer network under the other rule is a valid model too
    images, _ = load_cifar10("test", root=cifar10_root)
    _assert_trace_equal(model, pixels_to_int8(images[:3]))


@pytest.mark.parametrize("config, width", [("cifar", 0.5), ("imagenet", 0.35)])
@pytest.mark.parametrize("scheme", ["prom", "int8"])
@pytest.mark.parametrize("rounding", MODES)
def test_random_models_every_layer(config, width, scheme, rounding):
    model = random_model(config, width, scheme, seed=11, rounding=rounding)
    x = np.random.default_rng(5).integers(-128, 128, (1, model.input.height, model.input.width, 3)).astype(np.int8)
    _assert_trace_equal(model, x)


def test_odd_geometry_uses_slice_and_trimmed_padding():
    """Stride 2 over an even map without padding: TOSA needs an exact division, promref floors."""
    from promref.model import InputSpec, Layer, Model
    rng = np.random.default_rng(2)
    stem = Layer("stem", "stem", "conv2d", ("input",), 3, 4, 3, kernel=3, stride=2, padding=(0, 0, 1, 0),
                 weights=rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8), weight_zero_point=-5,
                 bias=rng.integers(-999, 999, 4).astype(np.int32), multiplier=np.full(4, 1 << 30, np.int32),
                 shift=np.full(4, -9, np.int32))
    pool = Layer("pool", "pool", "global_avgpool", ("stem",), 4, 4, 3)
    fc = Layer("classifier", "classifier", "fully_connected", ("pool",), 4, 2, -1,
               weights=rng.integers(-127, 128, (2, 4)).astype(np.int8), bias=np.zeros(2, np.int32),
               multiplier=np.full(2, 1 << 30, np.int32), shift=np.full(2, -6, np.int32))
    model = Model("geometry", InputSpec(8, 9, zero_point=7), [stem, pool, fc], labels=("a", "b"), rounding="double")
    _assert_trace_equal(model, rng.integers(-128, 128, (2, 8, 9, 3)).astype(np.int8))


def test_unrepresentable_model_is_refused_with_the_layer_name():
    model = random_model("cifar", 0.25, "prom", seed=1)
    layer = model.layer("classifier")
    layer.shift = np.full_like(layer.shift, 30)       # n = 31 - 30 = 1: below TOSA's smallest shift
    layer.multiplier = np.full_like(layer.multiplier, (1 << 31) - 1)
    layer.bias = np.zeros_like(layer.bias)
    layer.weights = np.zeros_like(layer.weights)      # keeps promref's overflow rule satisfied
    with pytest.raises(TosaExportError, match="layer 'classifier', output channel 0"):
        build_tosa(model)


def test_export_command_writes_file_and_output_list(tmp_path):
    out = tmp_path / "m.tosa"
    weights = tmp_path / "m.npz"
    from promref.format import save
    save(random_model("cifar", 0.25, "int8", seed=2, rounding="double"), weights)
    assert promref_main(["export", "tosa", str(weights), str(out), "--batch", "2"]) == 0
    info = json.loads((tmp_path / "m.tosa.json").read_text())
    model = load(str(weights))
    assert info["outputs"] == [layer.name for layer in model.layers] and info["rounding"] == "double"
    x = np.random.default_rng(1).integers(-128, 128, (2, 32, 32, 3)).astype(np.int8)
    outputs = run_flatbuffer(out.read_bytes(), [x])
    assert np.array_equal(outputs[-1], model.forward(x, backend="numpy"))
    assert promref_main(["export", "tosa", str(tmp_path / "missing.npz"), str(out)]) == 2


def test_tosa_agreement_resumes_each_mode_where_it_stopped(tmp_path, cifar10_root, monkeypatch, capsys):
    """benchmarks/tosa_agreement.py: chunks go to the state file; --resume continues each mode from its
    first image not done; every layer on the first --layer-images, logits after; the summary is the file's."""
    import importlib.util
    import sys
    from promref.format import save
    spec = importlib.util.spec_from_file_location(
        "bench_tosa_agreement", os.path.join(os.path.dirname(SHIPPED), "..", "benchmarks", "tosa_agreement.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    weights, state = str(tmp_path / "small.npz"), str(tmp_path / "tosa.jsonl")
    small = random_model("cifar", 0.1, "prom", seed=5)
    save(small, weights)
    argv = ["tosa_agreement.py", weights, "--data", cifar10_root, "--layer-images", "2", "--chunk", "3",
            "--state", state]
    monkeypatch.setattr(sys, "argv", argv + ["--images", "1", "--rounding", "single"])
    assert bench.main() == 0
    monkeypatch.setattr(sys, "argv", argv + ["--images", "4", "--resume"])
    assert bench.main() == 0
    out = capsys.readouterr().out
    assert "done so far: single 1, double 0" in out
    assert out.count("logits on 4 CIFAR-10 test images: 0 mismatches") == 2
    with open(state) as f:
        chunks = [json.loads(line) for line in f][1:]
    assert [(c["part"], c["start"], c["stop"], c["every_layer"]) for c in chunks] == [
        ("single", 0, 1, True), ("single", 1, 2, True), ("single", 2, 4, False),
        ("double", 0, 2, True), ("double", 2, 4, False)]
    assert list(chunks[0]["layer_mismatches"]) == sorted(layer.name for layer in small.layers)
    assert list(chunks[2]["layer_mismatches"]) == [small.layers[-1].name]
    monkeypatch.setattr(sys, "argv", argv + ["--images", "5", "--resume", "--layer-images", "0"])
    save(random_model("cifar", 0.1, "prom", seed=6), weights)   # other weights: the file is not theirs
    with pytest.raises(SystemExit, match="written for another run"):
        bench.main()
