

# ------------------------------------------------------------ the rounding hook


def test_the_engine_runs_a_model_under_a_peer_rule(base):
    """engine.run(rounding=rule) is the reference under a peer's rounding: its own mode by name or
    as a rule gives the model's result; a peer's rule (ONNX half-even) changes some outputs."""
    from promref import arith, engine
    from promref.conformance import rounding as rules

    x = images(base)
    own = engine.run(base, x, backend="numpy", trace=True)[1]
    as_rule = engine.run(base, x, backend="numpy", trace=True, rounding=arith.rounding_rule(base.rounding))[1]
    half_even = engine.run(base, x, backend="numpy", trace=True, rounding=rules.rule("half_even"))[1]
    assert all(np.array_equal(own[name], as_rule[name]) for name in own)
    assert any(not np.array_equal(own[name], half_even[name]) for name in own)
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
    assert [arith.max_centred_input(z) for z in (-128, 0, 127, -1)] == [255, 128, 255, 127]
