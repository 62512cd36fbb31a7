"""The round-3 recipe's premises: one float run feeds both quantized twins, and the
trainer's thread count does not change its bits (docs/training.md, "Round 3")."""
import os
import subprocess
import sys

import numpy as np

from promref.train.loop import TrainConfig, build_network
from promref.train.network import softmax_cross_entropy
from promref.train.optim import SGD

STEPS = """
import hashlib, sys
import numpy as np
from promref.train.loop import TrainConfig, build_network
from promref.train.network import softmax_cross_entropy
from promref.train.optim import SGD
net = build_network(TrainConfig(width=0.25, scheme=sys.argv[1]))
opt = SGD(net.parameters(), 0.9, 5e-4, nesterov=True)
rng = np.random.default_rng(0)
for mode in ("float", "float"):
    x = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 8)
    net.zero_grad()
    logits = net.forward(x, mode=mode, training=True)
    net.backward(softmax_cross_entropy(logits, y, 0.1)[1], mode=mode)
    opt.step(net.gradients(), 0.05)
h = hashlib.sha256()
for k, v in sorted(net.state_dict().items()):
    h.update(k.encode()); h.update(np.ascontiguousarray(v).tobytes())
print(h.hexdigest())
"""


def _state_hash(scheme, threads):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", STEPS, scheme], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_float_phase_is_the_same_for_both_schemes_and_any_thread_count():
    """Two float steps of a 'prom' and an 'int8' network (same seed) end in the same bits,
    with one thread or two: the int8 twin may start its QAT from the PROM run's float
    checkpoint, and a run may be resumed with another thread setting."""
    hashes = {(scheme, t): _state_hash(scheme, t) for scheme in ("prom", "int8") for t in (1, 2)}
    assert len(set(hashes.values())) == 1, hashes


def test_label_smoothing_and_nesterov_change_the_step():
    """The recipe's two new knobs are live in a training step (not silently ignored)."""
    def one_step(nesterov, eps):
        net = build_network(TrainConfig(width=0.25))
        opt = SGD(net.parameters(), 0.9, 5e-4, nesterov=nesterov)
        rng = np.random.default_rng(1)
        x, y = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 4)
        for _ in range(2):
            net.zero_grad()
            net.backward(softmax_cross_entropy(net.forward(x, training=True), y, eps)[1])
            opt.step(net.gradients(), 0.05)
        return np.concatenate([v.ravel() for _, v, _ in net.parameters()])
    base = one_step(False, 0.0)
    assert not np.array_equal(base, one_step(True, 0.0))
    assert not np.array_equal(base, one_step(False, 0.1))
