"""promref.train.memory: freed training temporaries stay in the process, and no bit changes.

Each check runs in a fresh interpreter, because the malloc setting is process-wide.
"""
import json
import subprocess
import sys

import pytest

glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a glibc malloc setting (Linux)")

KEPT_AFTER_FREE = """
import json, sys
import numpy as np
from promref.train.memory import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
block = np.ones(64 << 20, np.uint8)   # 64 MiB, every page touched
before_free = resident_mb()
del block
print(json.dumps(dict(applied=applied, released_mb=before_free - resident_mb())))
"""

STEPS = """
import hashlib, sys
import numpy as np
from promref.train.memory import keep_freed_memory
from promref.train.loop import TrainConfig, build_network
from promref.train.network import softmax_cross_entropy
from promref.train.optim import SGD
if sys.argv[1] == "keep":
    assert keep_freed_memory()
net = build_network(TrainConfig(width=0.25))
rng = np.random.default_rng(3)
x = rng.integers(0, 256, (16, 32, 32, 3)).astype(np.uint8)
y = rng.integers(0, 10, 16)
opt = SGD(net.parameters(), 0.9, 5e-4, True)
digest = hashlib.sha256()
for mode in ("float", "float", "qat"):
    net.zero_grad()
    logits = net.forward(x, mode=mode, training=True)
    digest.update(logits.tobytes())
    net.backward(softmax_cross_entropy(logits, y, 0.1)[1], mode=mode)
    opt.step(net.gradients(), 0.05)
for name, array in sorted(net.state_dict().items()):
    digest.update(name.encode() + np.ascontiguousarray(array).tobytes())
print(digest.hexdigest())
"""


def _run(script, arg):
    out = subprocess.run([sys.executable, "-c", script, arg], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


@glibc_only
def test_freed_blocks_stay_resident_only_when_kept():
    default = json.loads(_run(KEPT_AFTER_FREE, "default"))
    kept = json.loads(_run(KEPT_AFTER_FREE, "keep"))
    assert default["released_mb"] > 60      # glibc's default: the block was an mmap, unmapped on free
    assert kept["applied"] is True
    assert kept["released_mb"] < 4          # kept in the heap, for the next step to reuse


@glibc_only
def test_training_steps_are_the_same_bits_with_and_without():
    assert _run(STEPS, "keep") == _run(STEPS, "default")
