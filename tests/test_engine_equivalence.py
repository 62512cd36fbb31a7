"""Whole networks: the Numba backend reproduces every intermediate int8 tensor of
the NumPy reference, for both input configurations, both quantization schemes,
two widths and both rounding modes; and its result does not depend on the
number of threads."""
import dataclasses

import numba
import numpy as np
import pytest

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
