"""promref export tflite: the file runs in LiteRT's reference kernels and TFLite Micro bit for bit.

* The scale search and the refusals need only the ``tflite`` package.
* LiteRT (``ai-edge-litert``, OpResolverType.BUILTIN_REF) and TFLite Micro
  (``tflite-micro``) must give promref's int8 output at every layer: random
  PROM and int8 models (hypothesis picks seed, scheme and width), and the
  shipped model's TFLite-derived twin on real CIFAR-10 images.
* benchmarks/tflite_export_agreement.py runs the shipped twin on 10,000 images.
"""
import copy
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from promref import arith, load
from promref.cli import main as cli_main
from promref.synthetic import random_model

SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights", "mbv2_prom.npz")

pytest.importorskip("tflite", reason="needs the 'tflite' package (pip install tflite)")

from promref.interop.tflite.exporter import build_tflite, export_tflite  # noqa: E402
from promref.interop.tflite.scales import TfliteExportError, plan_scales, tflite_derived  # noqa: E402


def _litert():
    return pytest.importorskip("ai_edge_litert.interpreter", reason="needs LiteRT (pip install ai-edge-litert)")


def _tflm():
    return pytest.importorskip("tflite_micro", reason="needs TFLite Micro (pip install tflite-micro)")


def _mismatches(trace, theirs):
    assert set(theirs) == set(trace)
    return {k: int(np.count_nonzero(theirs[k] != trace[k])) for k in trace if np.any(theirs[k] != trace[k])}


def _images(model, n, seed):
    x = np.random.default_rng(seed).integers(-128, 128, (n, model.input.height, model.input.width, 3), dtype=np.int8)
    x[0] = -128  # flat images drive the clamps
    x[1] = 127
    return x


# ------------------------------------------------------------- scales


def test_single_rounding_is_refused():
    model = random_model(seed=0, rounding="single")
    with pytest.raises(TfliteExportError, match="rounding 'single'.*double"):
        build_tflite(model)


def test_multipliers_not_from_float32_scales_are_refused_naming_layer_and_channel():
    model = random_model(seed=0, rounding="double")  # float64 scales: multipliers TFLite cannot derive
    with pytest.raises(TfliteExportError, match=r"layer 'stem' channel \d+: no float32 filter scale"):
        build_tflite(model)


def test_twin_changes_only_multipliers_shifts_and_clamps():
    model = random_model(seed=3, rounding="double")
    twin, changed = tflite_derived(model)
    assert twin.rounding == "double" and changed > 0
    for a, b in zip(model.layers, twin.layers):
        for field in ("weights", "bias"):
            if getattr(a, field) is not None:
                assert np.array_equal(getattr(a, field), getattr(b, field))
        assert a.out_zero_point == b.out_zero_point
        if a.multiplier is not None:  # the re-derived reals stay within float32 rounding of the original
            ra, rb = arith.multiplier_to_real(a.multiplier, a.shift), arith.multiplier_to_real(b.multiplier, b.shift)
            assert np.all(np.abs(rb / ra - 1) < 1e-6)


def test_search_finds_filter_scales_the_model_does_not_store():
    """The exact search does not rely on the stored weight_scale: with it removed (or off by a few
    ulps) it still finds float32 values from which TFLite derives every multiplier."""
    twin, _ = tflite_derived(random_model(seed=1, rounding="double"))
    plan = plan_scales(twin)
    blind = copy.deepcopy(twin)
    for layer in blind.layers:
        if layer.weight_scale is not None:
            layer.weight_scale = (layer.weight_scale * np.float32(1 + 2 ** -20)).astype(np.float32)
    plan_blind = plan_scales(blind)
    assert plan_blind.tensor == plan.tensor
    assert any(not np.array_equal(plan_blind.weight[k], blind.layer(k).weight_scale) for k in plan_blind.weight)


def test_an_unexpressible_clamp_is_refused():
    twin, _ = tflite_derived(random_model(seed=2, rounding="double"))
    layer = next(la for la in twin.layers if la.op == "conv2d")
    layer.out_min = layer.out_zero_point + 3
    with pytest.raises(TfliteExportError, match=f"layer '{layer.name}': the clamp"):
        build_tflite(twin)


# ------------------------------------------------ LiteRT and TFLite Micro


@settings(max_examples=4, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**16), scheme=st.sampled_from(["prom", "int8"]), width=st.sampled_from([0.25, 0.35]))
def test_random_models_match_litert_reference_at_every_layer(seed, scheme, width):
    _litert()
    from promref.interop.tflite.runners import run_litert

    twin, _ = tflite_derived(random_model(width=width, scheme=scheme, seed=seed, rounding="double"))
    x = _images(twin, 6, seed)
    _, trace = twin.forward(x, backend="numpy", trace=True)
    assert _mismatches(trace, run_litert(twin, x)) == {}


@pytest.mark.parametrize("scheme", ["prom", "int8"])
def test_random_models_match_tflite_micro_at_every_layer(scheme):
    _tflm()
    from promref.interop.tflite.runners import run_tflm

    twin, _ = tflite_derived(random_model(width=0.25, scheme=scheme, seed=11, rounding="double"))
    x = _images(twin, 3, 5)
    _, trace = twin.forward(x, backend="numpy", trace=True)
    assert _mismatches(trace, run_tflm(twin, x)) == {}


def test_ternary_int4_filters_match_both_runtimes():
    """INT4 ternary filters: packed two a byte, unpacked by LiteRT's reference conv and by TFLM."""
    _litert()
    _tflm()
    from promref.interop.tflite.exporter import pack_int4
    from promref.interop.tflite.runners import run_litert, run_tflm

    assert pack_int4(np.array([1, -1, 0, -8, 7], np.int8)).tolist() == [0xF1, 0x80, 0x07]
    twin, _ = tflite_derived(random_model(width=0.25, seed=6, rounding="double"))
    export = build_tflite(twin, ternary_int4=True)
    assert len(export.data) < 0.8 * len(build_tflite(twin).data)  # the 1x1 filters dominate
    x = _images(twin, 3, 2)
    _, trace = twin.forward(x, backend="numpy", trace=True)
    assert _mismatches(trace, run_litert(twin, x, export=export)) == {}
    assert _mismatches(trace, run_tflm(twin, x, export=export)) == {}


def test_imagenet_config_matches_litert():
    """The 224x224 configuration: stride-2 stem and stage 2 with torchvision padding (PAD + VALID)."""
    _litert()
    from promref.interop.tflite.runners import run_litert

    twin, _ = tflite_derived(random_model(config="imagenet", width=0.25, seed=4, rounding="double",
                                          calibration_images=1))
    x = _images(twin, 2, 1)
    _, trace = twin.forward(x, trace=True)
    assert _mismatches(trace, run_litert(twin, x)) == {}


def test_the_shipped_model_twin_matches_both_runtimes_on_cifar10(cifar10_root):
    _litert()
    _tflm()
    from promref.data.cifar10 import load_cifar10
    from promref.interop.tflite.runners import run_litert, run_tflm
    from promref.preprocess import pixels_to_int8

    images, _ = load_cifar10("test", root=cifar10_root)
    twin, _ = tflite_derived(load(SHIPPED))
    export = build_tflite(twin)
    x = pixels_to_int8(images[:8])
    _, trace = twin.forward(x, trace=True)
    assert _mismatches(trace, run_litert(twin, x, export=export)) == {}
    assert _mismatches({k: v[:2] for k, v in trace.items()}, run_tflm(twin, x[:2], export=export)) == {}


# ------------------------------------------------------------------ CLI


def test_cli_export(tmp_path, good_file, capsys):
    out = tmp_path / "m.tflite"
    assert cli_main(["export", "tflite", str(good_file), str(out)]) == 2  # single rounding: refused
    assert "double" in capsys.readouterr().err and not out.exists()
    twin_path = tmp_path / "twin.npz"
    assert cli_main(["export", "tflite", str(good_file), str(out), "--tflite-derived",
                     "--save-model", str(twin_path)]) == 0
    twin = load(twin_path)
    assert out.read_bytes()[4:8] == b"TFL3" and twin.rounding == "double"
    assert export_tflite(twin, tmp_path / "again.tflite").data == out.read_bytes()  # the twin exports exactly
    assert cli_main(["export", "tflite", str(good_file), str(tmp_path), "--tflite-derived"]) == 2
