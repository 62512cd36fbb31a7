"""The engine runs every graph the validator accepts, in both backends: in
particular an ``add`` that reads the same tensor twice (x + x), where a tensor
must live until its last *reader*, however often that reader names it."""
import dataclasses

import numpy as np
import pytest

from promref.engine import reader_counts
from promref.kernels.reference import OPS
from promref.synthetic import random_model
from promref.validate import validate


@pytest.fixture(scope="module")
def base():
    return random_model("cifar", 0.35, "prom", seed=3)


def self_add(model, source):
    """``model`` with its first residual add rewired to ``source + source``."""
    layers = list(model.layers)
    i = next(i for i, layer in enumerate(layers) if layer.op == "add")
    layers[i] = dataclasses.replace(layers[i], inputs=(source, source), cache={})
    return validate(dataclasses.replace(model, layers=layers)), layers[i]


def images(model, n=2):
    size = model.input.height
    return np.random.default_rng(5).integers(-128, 128, (n, size, size, 3)).astype(np.int8)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("which", ["block input", "project"])
def test_add_of_a_tensor_with_itself_runs(base, backend, which):
    first_add = next(layer for layer in base.layers if layer.op == "add")
    source = first_add.inputs[0] if which == "block input" else first_add.inputs[1]
    model, add = self_add(base, source)
    x = images(model)
    logits = model.forward(x, backend=backend)             # no trace: tensors are freed as it goes
    traced, trace = model.forward(x, backend=backend, trace=True)
    np.testing.assert_array_equal(logits, traced)
    t, zp = trace[source], model.zero_point_of(source)
    np.testing.assert_array_equal(trace[add.name], OPS["add"](t, t, add, zp, zp, model.rounding))
    assert not np.array_equal(trace[add.name], base.forward(x, backend="numpy", trace=True)[1][add.name])


def block_input(model):
    return next(layer for layer in model.layers if layer.op == "add").inputs[0]


def test_both_backends_agree_on_a_self_add(base):
    model, _ = self_add(base, block_input(base))  # read by the block's expand and twice by the add
    x = images(model)
    np.testing.assert_array_equal(model.forward(x, backend="numba"), model.forward(x, backend="numpy"))


def test_reader_counts_count_layers_not_names(base):
    source = block_input(base)
    model, add = self_add(base, source)
    counts = reader_counts(model)
    readers = sum(source in layer.inputs for layer in model.layers)
    assert counts[source] == readers == 2
    assert counts[model.layers[-2].name] == 1


# ------------------------------------------------------------ the rounding hook


def test_the_engine_runs_a_model_under_a_peer_rule(base):
    """engine.run(rounding=rule) is the reference under a peer's rounding: its own mode by name or
    as a rule gives the model's result; another rule changes outputs (here: flooring)."""
    from promref import arith, engine
    from promref.conformance import rounding as rules

    x = images(base)
    own = engine.run(base, x, backend="numpy", trace=True)[1]
    as_rule = engine.run(base, x, backend="numpy", trace=True, rounding=arith.rounding_rule(base.rounding))[1]
    def floor(acc, multiplier, shift):
        return (acc * multiplier) >> (31 - shift)
    floored = engine.run(base, x, backend="numpy", trace=True, rounding=floor)[1]
    assert all(np.array_equal(own[name], as_rule[name]) for name in own)
    assert any(not np.array_equal(own[name], floored[name]) for name in own)
    with pytest.raises(Exception, match="numba.*unknown rounding mode"):
        engine.run(base, x, backend="numba", rounding=rules.rule("half_even"))


def test_rounding_rule_resolves_names_and_rules():
    from promref import arith

    assert arith.rounding_rule("single") is arith.scale_single
    assert arith.rounding_rule("double") is arith.scale_double
    rule = arith.scale_single
    assert arith.rounding_rule(rule) is rule
    for bad in ("half_even", None, 3):
        with pytest.raises(ValueError, match="unknown rounding mode"):
            arith.rounding_rule(bad)
    with pytest.raises(ValueError, match="unknown rounding mode"):
        arith.rounding_rule(rule, modes_only=True)
    assert [arith.max_centred_input(z) for z in (-128, 0, 127, -1, 1)] == [255, 128, 255, 128, 129]
