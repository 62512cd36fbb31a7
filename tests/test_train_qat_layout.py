"""The QAT forward on channel-major codes (units.qat_kernels): the dequantization and the
straight-through mask read channel-major codes and give exactly the NHWC kernels' bits, and
a QAT step is the same on the Numba (channel-major) and NumPy (NHWC) op tables."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promref.kernels import fast
from promref.train import functional as F
from promref.train.loop import TrainConfig, build_network
from promref.train.network import softmax_cross_entropy
from promref.train.units import CHANNEL_MAJOR, NHWC, QTensor, straight_through

pytestmark = pytest.mark.usefixtures("one_numba_thread")  # tests/conftest.py

shapes = st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.integers(1, 20))
scales = st.floats(1e-6, 10.0, allow_nan=False) | st.sampled_from([2.0 ** -20, 0.0235294, 1 / 255])


def _codes(seed, shape):
    rng = np.random.default_rng(seed)
    q = rng.integers(-128, 128, shape).astype(np.int8)
    q.flat[::7] = -128   # saturated codes at both ends, so the mask has work to do
    q.flat[3::11] = 127
    return q


@settings(max_examples=60, deadline=None)
@given(shape=shapes, zp=st.integers(-128, 127), scale=scales, seed=st.integers(0, 2 ** 16))
def test_channel_major_dequantize_and_mask_equal_the_nhwc_kernels(shape, zp, scale, seed):
    q = _codes(seed, shape)
    q_cm = fast.to_channel_major(q)
    np.testing.assert_array_equal(F.dequantize_channel_major(q_cm, zp, scale).view(np.int32),
                                  F.dequantize(q, zp, scale).view(np.int32))
    dy = np.random.default_rng(seed + 1).normal(size=shape).astype(np.float32)
    for lo, hi in ((-128, 127), (zp, 127), (-128, min(zp + 5, 127))):
        want = F.straight_through(dy, q, lo, hi)
        got = straight_through(dy, QTensor(q_cm, scale, zp, CHANNEL_MAJOR), lo, hi)
        np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))
        np.testing.assert_array_equal(straight_through(dy, QTensor(q, scale, zp, NHWC), lo, hi), want)


def test_real_values_are_computed_once_and_nhwc_codes_convert_back():
    q = _codes(0, (2, 4, 5, 6))
    t = QTensor(fast.to_channel_major(q), 0.05, 3, CHANNEL_MAJOR)
    assert t.real() is t.real()
    np.testing.assert_array_equal(t.nhwc_codes(), q)
    assert QTensor(q, 0.05, 3).nhwc_codes() is q


def test_a_qat_step_is_the_same_on_channel_major_and_nhwc_kernels():
    """The Numba backend's channel-major QAT forward and the NumPy reference's NHWC one give
    the same int8 logits and, through the whole backward, the same gradients."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
    y = rng.integers(0, 10, 4)
    grads = []
    for backend in ("numba", "numpy"):
        net = build_network(TrainConfig(width=0.25, seed=3))
        net.forward(x, mode="float", training=True)   # activation ranges for the quantizers
        net.zero_grad()
        logits = net.forward(x, mode="qat", training=True, backend=backend)
        net.backward(softmax_cross_entropy(logits, y)[1], mode="qat")
        grads.append((net.int8_logits.copy(), {k: g.copy() for k, g in net.gradients().items()}))
    (la, ga), (lb, gb) = grads
    np.testing.assert_array_equal(la, lb)
    assert ga.keys() == gb.keys()
    for key in ga:
        np.testing.assert_array_equal(ga[key], gb[key], err_msg=key)
