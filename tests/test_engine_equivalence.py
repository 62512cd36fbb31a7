"""Whole networks: the Numba backend reproduces every intermediate int8 tensor of
the NumPy reference, for both input configurations, both quantization schemes,
two widths and both rounding modes; and its result does not depend on the
number of threads.  The backend runs channel-major and, without ``trace``, with
the residual adds fused into the 1x1 layers before them (``engine.fusion_plan``):
the fused runs are checked on their logits and, add by add, on the reference's
own intermediate tensors."""
import dataclasses

import numba
import numpy as np
import pytest

from promref import engine
from promref.kernels import fast
from promref.synthetic import random_model

MODELS = [(config, width, scheme)
          for config, widths in (("cifar", (0.35, 1.0)), ("imagenet", (0.35, 0.5)))
          for width in widths
          for scheme in ("prom", "int8")]

_models = {}


def get_model(config, width, scheme, rounding="single"):
    """A random calibrated model, built once per session (building runs the reference)."""
    key = (config, width, scheme)
    if key not in _models:
        _models[key] = random_model(config, width, scheme, seed=MODELS.index(key))
    # the integers of a model are valid under either rounding mode; only the name differs
    return dataclasses.replace(_models[key], rounding=rounding)


def images(m, n, seed):
    size = m.input.height
    return np.random.default_rng(seed).integers(-128, 128, (n, size, size, 3)).astype(np.int8)


def assert_same_trace(m, x):
    logits_ref, trace_ref = m.forward(x, backend="numpy", trace=True)
    logits, trace = m.forward(x, backend="numba", trace=True)
    assert list(trace) == list(trace_ref)
    for layer in m.layers:                   # in execution order: the first mismatch is the culprit
        expected, got = trace_ref[layer.name], trace[layer.name]
        assert got.dtype == np.int8 and got.shape == expected.shape, \
            f"layer {layer.name!r} ({layer.op}): {got.dtype} {got.shape} != {expected.dtype} {expected.shape}"
        if not np.array_equal(got, expected):
            count = int(np.count_nonzero(got != expected))
            raise AssertionError(f"first mismatching layer: {layer.name!r} ({layer.op}), "
                                 f"{count} of {got.size} values differ")
    assert np.array_equal(logits, logits_ref)


@pytest.mark.parametrize("config, width, scheme", MODELS)
@pytest.mark.parametrize("rounding", ["single", "double"])
def test_every_layer_matches_the_reference(config, width, scheme, rounding):
    m = get_model(config, width, scheme, rounding)
    n = 3 if config == "cifar" else 2
    assert_same_trace(m, images(m, n, seed=MODELS.index((config, width, scheme)) + 100 * (rounding == "double")))


@pytest.mark.parametrize("rounding", ["single", "double"])
def test_batch_of_one_small_layers(rounding):
    """CIFAR at batch 1: the 4 x 4 stage has 16 pixels, which the ternary kernel
    computes with its masked strategy (kernels/fast/_ternary_masked.py)."""
    m = get_model("cifar", 1.0, "prom", rounding)
    assert_same_trace(m, images(m, 1, seed=5))


@pytest.mark.parametrize("config", ["cifar", "imagenet"])
def test_saturated_and_constant_images(config):
    """Inputs at the ends of the int8 range drive many accumulators to their extremes."""
    m = get_model(config, 0.35, "prom", "double")
    size = m.input.height
    x = np.stack([np.full((size, size, 3), -128, np.int8), np.full((size, size, 3), 127, np.int8),
                  np.where(np.indices((size, size, 3)).sum(axis=0) % 2 == 0, 127, -128).astype(np.int8)])
    assert_same_trace(m, x)


@pytest.mark.parametrize("config, width", [("cifar", 1.0), ("imagenet", 0.35)])
def test_result_does_not_depend_on_the_thread_count(config, width):
    m = get_model(config, width, "prom")
    x = images(m, 4, seed=7)
    before = numba.get_num_threads()
    try:
        results = []
        most = numba.config.NUMBA_NUM_THREADS
        for threads in sorted({1, min(2, most), most}):
            numba.set_num_threads(threads)
            _, trace = m.forward(x, backend="numba", trace=True)
            results.append(trace)
    finally:
        numba.set_num_threads(before)
    for trace in results[1:]:
        for name, tensor in results[0].items():
            assert np.array_equal(trace[name], tensor), f"layer {name!r} depends on the thread count"


def test_batch_of_one_matches_batched_run():
    """An image gives the same logits alone as inside a batch (pixel blocks span images)."""
    m = get_model("imagenet", 0.35, "prom")
    x = images(m, 3, seed=11)
    batched = m.forward(x, backend="numba")
    for i in range(len(x)):
        assert np.array_equal(m.forward(x[i:i + 1], backend="numba"), batched[i:i + 1])


@pytest.mark.parametrize("config, width, scheme", MODELS)
@pytest.mark.parametrize("rounding", ["single", "double"])
def test_fused_run_matches_the_reference(config, width, scheme, rounding):
    """Without trace the adds are fused; the logits are still the reference's, and every
    fused kernel, fed the reference's own inputs, gives the reference's add output."""
    m = get_model(config, width, scheme, rounding)
    x = images(m, 2, seed=MODELS.index((config, width, scheme)) + 7)
    logits_ref, trace_ref = m.forward(x, backend="numpy", trace=True)
    assert np.array_equal(m.forward(x, backend="numba"), logits_ref)
    plan = engine.fusion_plan(m)
    adds = [layer for layer in m.layers if layer.op == "add"]
    assert len(plan) == len(adds) > 0           # every residual add of MobileNetV2 is fused
    trace_ref["input"] = x
    zero_points = {"input": m.input.zero_point, **{layer.name: layer.out_zero_point for layer in m.layers}}
    for i, add in plan.items():
        layer = m.layers[i]
        residual = next(name for name in add.inputs if name != layer.name)
        table = fast.residual_table(add, layer.out_zero_point, zero_points[residual], rounding,
                                    project_first=add.inputs[0] == layer.name)
        got = fast.FUSED_OPS[layer.op](fast.to_channel_major(trace_ref[layer.inputs[0]]), layer,
                                       zero_points[layer.inputs[0]], rounding,
                                       residual=fast.to_channel_major(trace_ref[residual]), table=table)
        assert np.array_equal(fast.to_nhwc(got), trace_ref[add.name]), f"fused {layer.name} + {add.name}"


def test_fused_run_does_not_depend_on_the_thread_count():
    m = get_model("cifar", 1.0, "prom", "double")
    x = images(m, 5, seed=8)
    before = numba.get_num_threads()
    try:
        results = []
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(threads)
            results.append(m.forward(x, backend="numba"))
    finally:
        numba.set_num_threads(before)
    assert all(np.array_equal(r, results[0]) for r in results)
    assert np.array_equal(results[0], m.forward(x, backend="numpy"))


def test_fusion_plan_leaves_shared_outputs_alone():
    """A 1x1 output that another layer also reads is not fused (it must be stored)."""
    m = get_model("cifar", 0.35, "prom")
    i, add = next(iter(engine.fusion_plan(m).items()))
    project = m.layers[i]
    pool = next(layer for layer in m.layers if layer.op == "global_avgpool")
    layers = [dataclasses.replace(layer, inputs=(project.name,)) if layer is pool else layer for layer in m.layers]
    shared = dataclasses.replace(m, layers=layers)
    assert i not in engine.fusion_plan(shared)
    assert len(engine.fusion_plan(shared)) == len(engine.fusion_plan(m)) - 1
