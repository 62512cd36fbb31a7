"""Batch-statistics batch norm in the first QAT epochs (TrainConfig.batch_stats_epochs_qat).

A QAT training step with ``qat_batch_stats`` folds the batch's own statistics of
z = conv(x_real, Q(w)) into the integer layer it runs, and the running estimates follow them;
its backward pass is the usual batch-norm backward (the statistics depend on z) with the
straight-through estimator for Q.  Eval mode (and export) folds the running statistics, so the
exported model still equals the QAT forward exactly (checked through the loop here).
"""
import copy

import numpy as np
import pytest

from promref.evaluate import evaluate_model
from promref.engine import op_table
from promref.train import evaluate, train
from promref.train.units import BN_EPS, BN_MOMENTUM, QTensor

from test_train_gradients import conv_unit, numeric_grad, randomize_bn, ref_conv
from test_train_loop import TEST, TRAIN, Interrupted, InterruptAfter, assert_same_state, quiet, strip_timing, tiny

KERNELS = op_table("numpy")


def assert_grad_close(analytic, numeric, what):
    """|analytic - numeric| <= 2 % of (|numeric| + a tenth of its largest value), every coordinate."""
    analytic = np.asarray(analytic, np.float64)
    assert analytic.shape == numeric.shape and np.isfinite(numeric).all(), what
    scale = 0.1 * np.abs(numeric).max() + 1e-4
    bad = np.abs(analytic - numeric) > 2e-2 * (np.abs(numeric) + scale)
    assert not bad.any(), f"{what}: {bad.sum()} of {bad.size} differ, e.g. {analytic[bad][:3]} vs {numeric[bad][:3]}"


pytestmark = pytest.mark.usefixtures("one_numba_thread")  # tests/conftest.py


def setup(op, ternary, relu6, seed):
    rng = np.random.default_rng(seed)
    cin, cout, size, stride = (5, 6, 6, 1) if op != "depthwise" else (5, 5, 6, 2)
    unit = conv_unit(op, cin, cout, stride, relu6, size, ternary=ternary, rng=rng)
    randomize_bn(unit, rng)
    zp = 0 if op == "stem" else -20
    x = QTensor(rng.integers(-128, 128, (3, size, size, cin)).astype(np.int8), 0.03, zp)
    if not relu6:
        unit.observer.load([-3.0, 3.0, 1.0])
    unit.qat_batch_stats = True
    return rng, unit, x, stride


CASES = [("pointwise", True, True, 0), ("pointwise", False, False, 1), ("depthwise", False, True, 2),
         ("stem", False, False, 3)]


@pytest.mark.parametrize("op, ternary, relu6, seed", CASES)
def test_training_step_folds_the_batch_statistics(op, ternary, relu6, seed):
    _, unit, x, stride = setup(op, ternary, relu6, seed)
    running = {k: v.copy() for k, v in unit.buffers.items()}
    w_q = unit._dequantized(unit.params["w"]).astype(np.float64)
    z = ref_conv(x.real(), w_q, op, stride).reshape(-1, unit.cout)
    mean, var = z.mean(axis=0), z.var(axis=0)
    twin = copy.deepcopy(unit)  # before the step moves the observer and the running estimates
    unit.forward_qat(x, True, KERNELS, "double")
    batch_layer = unit.layer
    # the layer is the one frozen batch norm would build with the batch's statistics
    from promref.train import functional as F
    stats = F.channel_mean_var(twin._conv(x.real(), twin._dequantized(twin.params["w"])).reshape(-1, unit.cout))
    np.testing.assert_allclose(stats[0], mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats[1], var, rtol=1e-3, atol=1e-5)
    ref = twin._layer_and_folded_bias(x.scale, x.zero_point, tuple(v.astype(np.float32) for v in stats))[0]
    for field in ("weights", "bias", "multiplier", "shift"):
        np.testing.assert_array_equal(getattr(batch_layer, field), getattr(ref, field), err_msg=field)
    assert not np.array_equal(batch_layer.bias, twin.to_layer(x.scale, x.zero_point).bias)  # not the running ones
    # the running estimates followed the batch (unbiased variance, momentum 0.1)
    n = z.shape[0]
    np.testing.assert_allclose(unit.buffers["mean"], running["mean"] + BN_MOMENTUM * (mean - running["mean"]),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(unit.buffers["var"], running["var"] + BN_MOMENTUM * (var * n / (n - 1) - running["var"]),
                               rtol=1e-3, atol=1e-5)
    # eval mode folds the running estimates, whatever the flag
    unit.forward_qat(x, False, KERNELS, "double")
    frozen = unit.to_layer(x.scale, x.zero_point)
    np.testing.assert_array_equal(unit.layer.bias, frozen.bias)


@pytest.mark.parametrize("op, ternary, relu6, seed", CASES)
def test_batch_statistics_backward_matches_finite_differences(op, ternary, relu6, seed):
    """grads (w via the straight-through estimator, gamma, beta) and dx == central differences
    (float64) of G = sum(dz * ((z - mean_B(z)) * gamma / sqrt(var_B(z) + eps) + beta)),
    z = conv(x_real, v) at v = Q(w), dz = dy masked where the int8 output sat at its clamp."""
    rng, unit, x, stride = setup(op, ternary, relu6, seed)
    out = unit.forward_qat(x, True, KERNELS, "single")
    r = rng.normal(size=out.q.shape).astype(np.float32)
    unit.zero_grad()
    dx = unit.backward_qat(r, need_dx=True)
    dz = np.where((out.q > unit.layer.out_min) & (out.q < unit.layer.out_max), r, 0).astype(np.float64)
    xv = x.real().astype(np.float64)
    v = unit._dequantized(unit.params["w"]).astype(np.float64)
    gv, bv = (unit.params[k].astype(np.float64) for k in ("gamma", "beta"))

    def G():
        z = ref_conv(xv, v, op, stride)
        mean, var = z.reshape(-1, unit.cout).mean(axis=0), z.reshape(-1, unit.cout).var(axis=0)
        return float((dz * ((z - mean) * (gv / np.sqrt(var + BN_EPS)) + bv)).sum())
    for key, arr, eps in (("w", v, 1e-4), ("gamma", gv, 1e-3), ("beta", bv, 1e-3)):
        assert_grad_close(unit.grads[key], numeric_grad(G, arr, eps), key)
    if op == "stem":
        assert dx is None
    else:
        assert_grad_close(dx, numeric_grad(G, xv, 1e-4), "dx")


def test_loop_uses_batch_statistics_in_the_first_qat_epochs_and_exports_exactly(tmp_path):
    config = tiny(epochs_qat=2, batch_stats_epochs_qat=1)
    network, history = train(config, TRAIN, TEST, progress=quiet())
    frozen, _ = train(tiny(epochs_qat=2), TRAIN, TEST, progress=quiet())
    assert not np.array_equal(network.state_dict()["classifier/param/w"], frozen.state_dict()["classifier/param/w"])
    assert all(not getattr(u, "qat_batch_stats", False) for u in network.units)  # frozen in the last epoch
    model = network.export("batch-stats", backend="numba")
    acc, _ = evaluate_model(model, *TEST, backend="numba")
    assert acc == history[-1]["test_acc"] == evaluate(network, TEST[0], TEST[1].astype(np.int64), "qat", "numba")
    # a run stopped inside the batch-statistics epoch resumes bitwise
    straight, _ = train(replace_epochs(config, 2), TRAIN, TEST, progress=quiet())
    with pytest.raises(Interrupted):
        train(replace_epochs(config, 2), TRAIN, TEST, checkpoint_dir=str(tmp_path), progress=InterruptAfter(2))
    resumed, _ = train(replace_epochs(config, 2), TRAIN, TEST, checkpoint_dir=str(tmp_path), resume=True,
                       progress=quiet())
    assert_same_state(straight, resumed)


def replace_epochs(config, batch_stats_epochs):
    """The config with 3 QAT epochs, the first ``batch_stats_epochs`` with batch statistics."""
    from dataclasses import replace
    return replace(config, epochs_qat=3, batch_stats_epochs_qat=batch_stats_epochs)
