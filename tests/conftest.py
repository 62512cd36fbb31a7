"""Shared fixtures: small valid models (random and hand-built), a saved weights file, and
the real CIFAR-10 data of this checkout."""
import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from promref import format as fmt
from promref.model import InputSpec, Layer, Model
from promref.synthetic import random_model


@pytest.fixture(scope="session")
def _cifar_prom():
    return random_model("cifar", 0.1, "prom", seed=0)


@pytest.fixture
def model(_cifar_prom):
    """A valid random PROM cifar model (width 0.1), a private copy with writable arrays."""
    return copy.deepcopy(_cifar_prom)


@pytest.fixture(scope="session")
def good_file(_cifar_prom, tmp_path_factory):
    """Path of the saved (valid) PROM cifar model."""
    path = tmp_path_factory.mktemp("good") / "model.npz"
    fmt.save(_cifar_prom, path)
    return path


def _build_tiny(channels=3, residual=True):
    """input 2x2x3 -> stem 1x1 conv2d 3->c -> [project: ternary c->c -> add(stem, project)]
    -> pool -> classifier fully_connected c->2.  Unvalidated, arrays writable."""
    c = channels
    rng = np.random.default_rng(1)

    def requant(n, shift=-8):
        return dict(bias=np.arange(n, dtype=np.int32) - 1, multiplier=np.full(n, 1 << 30, np.int32),
                    shift=np.full(n, shift, np.int32))

    layers = [Layer("stem", "stem", "conv2d", ("input",), 3, c, out_zero_point=-128,
                    weights=rng.integers(-5, 6, (c, 1, 1, 3)).astype(np.int8), **requant(c))]
    last = "stem"
    if residual:
        layers.append(Layer("project", "project", "pointwise_ternary", ("stem",), c, c, out_zero_point=-128,
                            weights=rng.integers(-1, 2, (c, c)).astype(np.int8), **requant(c)))
        layers.append(Layer("add", "add", "add", ("stem", "project"), c, c, out_zero_point=3, left_shift=20,
                            multiplier=np.full(3, 1 << 30, np.int32), shift=np.array([-1, -1, -10], np.int32)))
        last = "add"
    zp = layers[-1].out_zero_point
    layers.append(Layer("pool", "pool", "global_avgpool", (last,), c, c, out_zero_point=zp))
    layers.append(Layer("classifier", "classifier", "fully_connected", ("pool",), c, 2, out_zero_point=0,
                        weights=rng.integers(-5, 6, (2, c)).astype(np.int8), **requant(2)))
    return Model("tiny", InputSpec(height=2, width=2), layers, labels=("a", "b"))


@pytest.fixture
def tiny():
    """Factory for the hand-built tiny model: ``tiny(channels=3, residual=True)``."""
    return _build_tiny


REPO = Path(__file__).resolve().parents[1]
LOCAL_CIFAR10 = REPO / "local" / "cifar10"
SHARED_CIFAR10_SCRIPT = REPO.parent / "shared" / "data" / "cifar10" / "make_cifar10.py"


@pytest.fixture(scope="session")
def cifar10_root():
    """Real CIFAR-10 for the tests (str path): $PROMREF_CIFAR10 when set, else the git-ignored
    local/cifar10, built once from ../shared/data/cifar10 (the JPEG copy, both layouts); skips
    with the reason when neither is available."""
    if os.environ.get("PROMREF_CIFAR10"):
        return os.environ["PROMREF_CIFAR10"]
    if not (LOCAL_CIFAR10 / ".complete").exists():
        if not SHARED_CIFAR10_SCRIPT.exists():
            pytest.skip(f"no CIFAR-10: set PROMREF_CIFAR10 or provide {SHARED_CIFAR10_SCRIPT} "
                        f"(which writes {LOCAL_CIFAR10})")
        subprocess.run([sys.executable, str(SHARED_CIFAR10_SCRIPT), str(LOCAL_CIFAR10)], check=True,
                       timeout=900, stdout=subprocess.DEVNULL)
    return str(LOCAL_CIFAR10)


@pytest.fixture(scope="session")
def executed_tutorials():
    """``get(name)`` -> the :class:`test_tutorials.TutorialRun` of tutorials/<name>.ipynb, made on first use.

    Each tutorial notebook executes once per session (with its answer key): tests/test_tutorials.py
    checks those runs and tests/test_docs_site.py renders them into the site (mkdocs-jupyter then
    executes nothing), so a CI run pays for every notebook once, not twice.
    """
    from test_tutorials import run_tutorial  # tests/ is on sys.path (rootdir conftest)
    runs = {}

    def get(name):
        if name not in runs:
            runs[name] = run_tutorial(name)
        return runs[name]
    return get


@pytest.fixture
def one_numba_thread():
    """One Numba thread for the trainer's tests: results do not depend on the thread count
    (test_train_loop's thread-count test shows it); one thread is fastest on small shared machines."""
    import numba
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(old)
