"""Every runtime backend (promref.conformance.backends) against promref, 0 LSB.

Hypothesis builds small random models -- a random conv2d stem (kernel, stride,
asymmetric padding, input and weight zero points) and one more random layer
(ternary 1x1, depthwise 3x3, or an int8 1x1 and a residual add), then the
global pool and the classifier -- with the extreme integer parameters the loader still accepts (helpers shared with
tests/test_fast_kernels.py), exports each to every backend and requires every
layer's int8 output to equal promref's reference trace.  A backend may refuse
a model it cannot represent exactly, but only with a PromrefError; the TOSA
tests (tests/test_export_tosa.py) pin down when TOSA refuses.  A backend whose
runtime is not installed is skipped with the reason.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from promref.conformance.backends import BACKENDS, get_backend, run_backend, unavailable
from promref.errors import PromrefError
from promref.model import InputSpec, Layer, Model
from promref.validate import validate
from test_fast_kernels import INT8, ROUNDING, draw_add_layer, finish_weighted, int8_array, spatial

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SECOND = ("none", "pointwise_ternary", "depthwise_conv2d", "add")


def _weighted(data, name, kind, op, src, cin, cout, zx, weights, kernel=1, stride=1, padding=(0, 0, 0, 0)):
    zw = 0 if op == "pointwise_ternary" else data.draw(INT8, label=f"{name} weight zp")
    layer = Layer(name, kind, op, (src,), cin, cout, 0, kernel=kernel, stride=stride, padding=padding,
                  weights=weights, weight_zero_point=zw)
    return finish_weighted(data, layer, zx)


def draw_model(data):
    """A validated Model: stem, maybe one more layer, pool, classifier; the stem whose first layer reads the 3-channel input."""
    zx = data.draw(INT8, label="input zp")
    k, s = data.draw(st.sampled_from([1, 3]), label="kernel"), data.draw(st.integers(1, 2), label="stride")
    h, w, padding = spatial(data, k, s)
    c = data.draw(st.integers(1, 6), label="channels")
    layers = [_weighted(data, "stem", "stem", "conv2d", "input", 3, c, zx, int8_array(data, (c, k, k, 3)),
                        k, s, padding)]
    zs = layers[0].out_zero_point
    second = data.draw(st.sampled_from(SECOND), label="second layer")
    if second == "pointwise_ternary":
        t = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1))).integers(-1, 2, (c + 1, c)).astype(np.int8)
        layers.append(_weighted(data, "expand", "expand", "pointwise_ternary", "stem", c, c + 1, zs, t))
    elif second == "depthwise_conv2d":
        dw_stride = data.draw(st.integers(1, 2), label="dw stride")
        layers.append(_weighted(data, "dw", "depthwise", "depthwise_conv2d", "stem", c, c, zs,
                                int8_array(data, (3, 3, c)), 3, dw_stride, (1, 1, 1, 1)))
    elif second == "add":
        layers.append(_weighted(data, "project", "project", "conv2d", "stem", c, c, zs, int8_array(data, (c, 1, 1, c))))
        add = draw_add_layer(data, zs, layers[1].out_zero_point)
        add.name, add.inputs, add.in_channels, add.out_channels = "add", ("stem", "project"), c, c
        layers.append(add)
    # a model ends in logits: global pool (keeps its input's zero point and the full int8 range), classifier
    last = layers[-1]
    layers.append(Layer("pool", "pool", "global_avgpool", (last.name,), last.out_channels, last.out_channels,
                        last.out_zero_point, out_scale=last.out_scale))
    classes = data.draw(st.integers(1, 5), label="classes")
    layers.append(_weighted(data, "classifier", "classifier", "fully_connected", "pool", last.out_channels, classes,
                            last.out_zero_point, int8_array(data, (classes, last.out_channels))))
    model = Model("random layers", InputSpec(h, w, zero_point=zx), layers,
                  labels=tuple(str(i) for i in range(layers[-1].out_channels)), rounding=data.draw(ROUNDING))
    validate(model)
    return model


def _require(name):
    reason = unavailable(name)
    if reason:
        pytest.skip(reason)


@pytest.mark.parametrize("name", tuple(BACKENDS))
@SETTINGS
@given(data=st.data())
def test_random_layers_match_promref(name, data):
    _require(name)
    drawn = draw_model(data)
    try:  # a model the runtime cannot represent exactly: refused (PromrefError), never inexact
        model = get_backend(name).representable_form(drawn)
        x = int8_array(data, (data.draw(st.integers(1, 2), label="N"), model.input.height, model.input.width, 3))
        _, expected = model.forward(x, backend="numpy", trace=True)
        got = run_backend(name, model, x)
    except PromrefError as e:
        note(f"refused: {e}")
        event(f"{name} refused the model")
        return
    event(f"{name} compared every layer")
    assert model.layers[-1].name in got
    for layer_name, value in got.items():
        want = expected[layer_name]
        assert value.dtype == np.int8 and value.shape == want.shape, layer_name
        diff = np.argwhere(value != want)
        assert not len(diff), (f"{name}: layer {layer_name!r} differs at {tuple(diff[0])}: "
                               f"{value[tuple(diff[0])]} != promref {want[tuple(diff[0])]} ({len(diff)} values)")


@pytest.mark.parametrize("name", tuple(BACKENDS))
@pytest.mark.parametrize("config, scheme, rounding", [("cifar", "prom", "single"), ("cifar", "int8", "double"),
                                                      ("imagenet", "prom", "double"), ("imagenet", "int8", "single")])
def test_random_mobilenets_match_promref(name, config, scheme, rounding):
    """Whole random MobileNetV2s (narrow, so that the reference runtimes stay fast), every layer."""
    _require(name)
    from promref.synthetic import random_model
    model = random_model(config, 0.25 if config == "cifar" else 0.35, scheme, seed=3, rounding=rounding)
    model = get_backend(name).representable_form(model)
    x = np.random.default_rng(4).integers(-128, 128, (1, model.input.height, model.input.width, 3)).astype(np.int8)
    _, expected = model.forward(x, backend="numpy", trace=True)
    got = run_backend(name, model, x)
    assert set(got) == set(expected)
    bad = [n for n in expected if not np.array_equal(got[n], expected[n])]
    assert not bad, f"{name}: layers differing from promref: {bad}"


def test_backend_table_names_and_errors():
    for name, backend in BACKENDS.items():
        assert backend.name == name and backend.requires and callable(backend.run)
    with pytest.raises(PromrefError, match="unknown backend 'nope'"):
        get_backend("nope")


@pytest.fixture(scope="module")
def model_suite(tmp_path_factory):
    """A conformance suite with only op cases and two small random-model cases (one per rounding mode)."""
    from promref.conformance.generate import generate
    outdir = tmp_path_factory.mktemp("suite")
    generate(outdir, include_shipped=False, random_models=(("cifar", 0.25, "prom", "single"),
                                                           ("cifar", 0.25, "int8", "double")), model_images=1)
    return outdir


@pytest.mark.parametrize("name", tuple(n for n, b in BACKENDS.items() if b.representable is None))
def test_conformance_check_backend_option(name, model_suite, capsys):
    """``promref conformance check SUITE --backend NAME``: model cases pass, op cases are skipped.
    (The suite's random models have multipliers no float32 scale gives: TFLite refuses them,
    and its backends are checked on their TFLite-derived twins above.)"""
    _require(name)
    from promref.conformance.cli import main
    assert main(["check", str(model_suite), "--backend", name]) == 0
    out = capsys.readouterr().out
    assert "OK: 2 passed, 0 failed, 0 errors" in out and f"backend {name}" in out
    assert main(["check", str(model_suite), "--backend", "nope"]) == 2
    assert "unknown backend 'nope'" in capsys.readouterr().err
