"""Exact export: the trainer's quantized forward (eval mode) and the integer engine
running the exported model give identical int8 activations at every layer, on
real CIFAR-10 test images.

Networks: the demo depthwise-separable net after a tiny real training run, and
a MobileNetV2 (CIFAR layout, width 0.35) whose batch-norm parameters,
statistics and activation ranges were set from real images (random gamma/beta,
float statistics, re-estimation with the quantized weights, QAT range
observation).  Both rounding modes; both backends; after a save/load round
trip too.  Both schemes: "prom" (ternary 1x1 convs) and "int8" (1x1 conv2d
layers with the engine's [Cout, 1, 1, Cin] weight layout).

CIFAR-10 comes from $PROMREF_CIFAR10, else local/cifar10 (git-ignored), which
is produced from ../shared/data/cifar10 (the JPEG copy) when missing; without
either the tests are skipped.
"""
import copy
import io

import numpy as np
import pytest

from promref import format as fmt
from promref.data.cifar10 import load_cifar10
from promref.evaluate import evaluate_model
from promref.architectures import SCHEMES
from promref.preprocess import pixels_to_int8
from promref.train import TrainConfig, train
from promref.train.loop import Progress, build_network, recalibrate_batch_norm
from promref.train.units import ConvUnit, LinearUnit

BACKENDS = ["numpy", "numba"]
pytestmark = pytest.mark.usefixtures("one_numba_thread")  # tests/conftest.py


# ------------------------------------------------------------------ data


@pytest.fixture(scope="module")
def cifar_test(cifar10_root):
    """The CIFAR-10 test split (images uint8 [10000, 32, 32, 3], labels); the root comes from
    conftest.py's ``cifar10_root``."""
    return load_cifar10("test", root=cifar10_root)


@pytest.fixture(scope="module")
def images(cifar_test):
    """48 real test images from all over the split (all ten classes)."""
    x, y = cifar_test
    idx = np.linspace(0, len(x) - 1, 48).astype(int)
    assert len(set(y[idx].tolist())) == 10
    return x[idx]


# -------------------------------------------------------------- networks


def quiet():
    return Progress(stream=io.StringIO())


#: the trainer's backend in these tests (numba is a core dependency: no fallback that could hide a failure)
BACKEND = "numba"


def trained_dsnet(cifar_test, scheme):
    x, y = cifar_test
    config = TrainConfig(arch="dsnet", dsnet_channels=(8, 16), scheme=scheme, epochs_float=1, epochs_qat=1,
                         batch_size=32, bn_recalibration_batches=2, backend=BACKEND)
    network, history = train(config, (x[:128], y[:128]), (x[128:160], y[128:160]), progress=quiet())
    assert [h["phase"] for h in history] == ["float", "qat"]
    return network


def calibrated_mobilenet(cifar_test, scheme, width=0.35):
    """A MobileNetV2 whose every quantization parameter comes from real images:
    random gamma/beta, batch statistics of 64 training images, re-estimation for
    the quantized weights (as before QAT), then a QAT forward that sets the
    activation ranges -- all without a backward pass."""
    x, _ = cifar_test
    config = TrainConfig(arch="mobilenetv2", width=width, scheme=scheme, batch_size=32, bn_recalibration_batches=2,
                         backend=BACKEND)
    network = build_network(config)
    rng = np.random.default_rng(0)
    for unit in network.units:
        if isinstance(unit, ConvUnit):
            unit.params["gamma"][...] = rng.uniform(0.5, 1.5, unit.cout)
            unit.params["beta"][...] = rng.normal(0.2, 0.3, unit.cout)
            unit.bn_momentum = 1.0  # running statistics := this batch's
        elif isinstance(unit, LinearUnit):
            unit.params["w"][...] = rng.normal(0, 0.1, unit.params["w"].shape)
            unit.params["b"][...] = rng.normal(0, 0.1, unit.cout)
    train_images = x[-64:]
    network.forward(train_images, mode="float", training=True)
    recalibrate_batch_norm(network, train_images, config, quiet())
    network.forward(train_images[:32], mode="qat", training=True, backend=config.backend)
    return network


@pytest.fixture(scope="module")
def dsnet_prom(cifar_test):
    return trained_dsnet(cifar_test, "prom")


@pytest.fixture(scope="module")
def mbv2_prom(cifar_test):
    return calibrated_mobilenet(cifar_test, "prom")


# ----------------------------------------------------------------- checks


def qat_activations(network, images, backend):
    """{unit name: int8 output} of ``network.forward(images, mode='qat', training=False)``,
    recorded by wrapping every unit's forward_qat; and the float logits it returns."""
    seen = {}

    def recorder(unit, original):
        def forward_qat(*args, **kwargs):
            out = original(*args, **kwargs)
            seen[unit.name] = out.nhwc_codes()
            return out
        return forward_qat

    for unit in network.units:
        unit.forward_qat = recorder(unit, unit.forward_qat)
    try:
        logits = network.forward(images, mode="qat", training=False, backend=backend)
    finally:
        for unit in network.units:
            del unit.forward_qat
    assert list(seen) == [u.name for u in network.units]
    np.testing.assert_array_equal(network.int8_logits, seen[network.units[-1].name])
    return seen, logits


def assert_exact(network, images, backend, tmp_path):
    """Export, then compare every layer's int8 tensor with the QAT forward's, directly
    and after a save/load round trip; predictions must agree as well."""
    model = network.export("exactness", backend=backend)
    assert [layer.name for layer in model.layers] == [u.name for u in network.units]
    expected, logits = qat_activations(network, images, backend)
    q = pixels_to_int8(images)

    path = tmp_path / f"{network.scheme}-{network.rounding}-{backend}.npz"
    fmt.save(model, path)
    loaded = fmt.load(path)
    assert loaded.rounding == network.rounding
    for m in (model, loaded):
        out, trace = m.forward(q, backend=backend, trace=True)
        assert set(trace) == set(expected)
        for name, want in expected.items():
            got = trace[name]
            assert got.dtype == np.int8 and got.shape == want.shape, name
            if not np.array_equal(got, want):
                diff = np.flatnonzero(got.astype(int).ravel() != want.astype(int).ravel())
                pytest.fail(f"{name}: {diff.size} of {want.size} int8 values differ "
                            f"(first at {diff[0]}: engine {got.ravel()[diff[0]]}, QAT {want.ravel()[diff[0]]})")
        np.testing.assert_array_equal(out, network.int8_logits)

    # same predictions (ties to the lower class in both)
    out_layer = model.output
    np.testing.assert_allclose(logits, (network.int8_logits.astype(np.float32) - out_layer.out_zero_point)
                               * np.float32(out_layer.out_scale), rtol=1e-6)
    _, predictions = evaluate_model(model, images, np.zeros(len(images), int), backend=backend)
    np.testing.assert_array_equal(predictions, logits.argmax(axis=1))
    return model


def assert_scheme(model, scheme):
    """Ternary kinds are pointwise_ternary with weights in {-1, 0, 1}; the rest int8."""
    ternary_kinds = SCHEMES[scheme]
    n_ternary = 0
    for layer in model.layers:
        if layer.kind in ternary_kinds and layer.kernel == 1:
            n_ternary += 1
            assert layer.op == "pointwise_ternary", layer.name
            assert layer.weights.dtype == np.int8 and layer.weights.shape == (layer.out_channels, layer.in_channels)
            assert set(np.unique(layer.weights).tolist()) <= {-1, 0, 1}, layer.name
            assert layer.weight_format == "ternary"
        else:
            assert layer.op != "pointwise_ternary", layer.name
    assert (n_ternary > 0) == bool(ternary_kinds)


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rounding", ["single", "double"])
def test_dsnet_export_is_exact(dsnet_prom, images, backend, rounding, tmp_path):
    network = copy.deepcopy(dsnet_prom)
    network.rounding = rounding
    model = assert_exact(network, images, backend, tmp_path)
    assert_scheme(model, "prom")
    assert model.rounding == rounding


@pytest.mark.parametrize("backend, rounding", [("numba", "single"), ("numba", "double"), ("numpy", "single")])
def test_mobilenetv2_export_is_exact(mbv2_prom, images, backend, rounding, tmp_path):
    network = copy.deepcopy(mbv2_prom)
    network.rounding = rounding
    model = assert_exact(network, images[:24], backend, tmp_path)
    assert_scheme(model, "prom")
    assert sum(layer.op == "add" for layer in model.layers) > 0  # residual adds are covered
    assert model.arch["name"] == "mobilenetv2" and model.arch["scheme"] == "prom"


@pytest.mark.parametrize("arch", ["dsnet", "mobilenetv2"])
def test_int8_scheme_export_is_exact(cifar_test, images, arch, tmp_path):
    if arch == "dsnet":
        network = trained_dsnet(cifar_test, "int8")
    else:
        network = calibrated_mobilenet(cifar_test, "int8")
    model = assert_exact(network, images[:16], "numpy", tmp_path)
    assert_scheme(model, "int8")


def test_export_depends_only_on_the_network_state(dsnet_prom, images, tmp_path):
    """Exporting runs a forward on a blank image: the result must not depend on that
    or on any earlier eval forward (same bytes before and after)."""
    network = copy.deepcopy(dsnet_prom)
    backend = BACKEND
    fmt.save(network.export("m", backend=backend), tmp_path / "a.npz")
    network.forward(images, mode="qat", training=False, backend=backend)
    network.forward(images, mode="float", training=False)
    fmt.save(network.export("m", backend=backend), tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    # eval forwards leave the state alone
    for key, value in network.state_dict().items():
        np.testing.assert_array_equal(value, dsnet_prom.state_dict()[key], err_msg=key)


def test_backends_agree_on_exported_model(mbv2_prom, images):
    """The fast kernels and the reference give the same trace for the exported model."""
    model = copy.deepcopy(mbv2_prom).export("m", backend="numpy")
    q = pixels_to_int8(images[:8])
    _, ref = model.forward(q, backend="numpy", trace=True)
    _, fast = model.forward(q, backend="numba", trace=True)
    for name in ref:
        np.testing.assert_array_equal(fast[name], ref[name], err_msg=name)


@pytest.mark.parametrize("scheme", ["prom", "int8"])
def test_tflite_multipliers_export_exactly_and_are_tflite_derivable(mbv2_prom, cifar_test, images, scheme, tmp_path):
    """TrainConfig.multipliers "tflite": the QAT forward still equals the integer engine
    exactly, and the exported model's multipliers are those TFLite derives from its float32
    scales (its TFLite-derived twin changes no layer; the exporter's scale plan succeeds).
    The default rule ("float64") is not derivable, so the check can fail."""
    from promref.interop.tflite.scales import TfliteExportError, plan_scales, tflite_derived
    from promref.interop.tflite import export_tflite
    network = copy.deepcopy(mbv2_prom) if scheme == "prom" else calibrated_mobilenet(cifar_test, "int8")
    for unit in network.units:
        unit.multipliers = "float64"
    with pytest.raises(TfliteExportError):
        plan_scales(network.export("float64 rule", backend=BACKEND))
    network.rounding = "double"
    for unit in network.units:
        unit.multipliers = "tflite"
    model = assert_exact(network, images[:16], BACKEND, tmp_path)
    assert sum(layer.op == "add" for layer in model.layers) > 0
    plan_scales(model)
    pytest.importorskip("tflite", reason="the optional 'tflite' schema package writes the file")
    export_tflite(model, str(tmp_path / f"{scheme}.tflite"))  # not the derived twin: the model itself
    twin, changed = tflite_derived(model)
    assert changed == 0
    for a, b in zip(model.layers, twin.layers):
        for field in ("multiplier", "shift", "out_min", "out_max"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=f"{a.name}.{field}")
        assert a.out_scale == b.out_scale, a.name


def test_multipliers_rule_is_a_config_field():
    """build_network hands TrainConfig.multipliers to every unit; the round-3 default is TFLite's
    rule with LiteRT's rounding (docs/training.md)."""
    network = build_network(TrainConfig(width=0.25, multipliers="float64"))
    assert {unit.multipliers for unit in network.units} == {"float64"}
    default = build_network(TrainConfig(width=0.25))
    assert {unit.multipliers for unit in default.units} == {"tflite"} and default.rounding == "double"
