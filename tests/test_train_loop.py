"""The training loop on a tiny budget: history, learning, determinism, resume,
the optimizer, the learning-rate schedule, augmentation, and the demo CLI.

Synthetic data: 32x32 images whose red channel encodes the label (a level per
class plus noise; green and blue are noise), so a small net learns it in a
few epochs.
"""
import io
import json
import math
from dataclasses import replace
from pathlib import Path

import numba
import numpy as np
import pytest

from promref import format as fmt
from promref.evaluate import evaluate_model
from promref.train import TrainConfig, evaluate, train
from promref.train.augment import crop_flip
from promref.train.loop import Progress
from promref.train.optim import SGD, cosine_lr

REPO = Path(__file__).resolve().parents[1]
TIMING = ("seconds", "images_per_s")


def synthetic(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    images[..., 0] = (labels.astype(np.int64) * 25 + 5)[:, None, None] + rng.integers(0, 16, (n, 32, 32))
    return images, labels


TRAIN = synthetic(128, 0)
TEST = synthetic(64, 1)


pytestmark = pytest.mark.usefixtures("one_numba_thread")  # tests/conftest.py


def tiny(**kw):
    base = dict(arch="dsnet", dsnet_channels=(8, 16), epochs_float=1, epochs_qat=1, batch_size=32,
                bn_recalibration_batches=2, backend="numba")
    base.update(kw)
    return TrainConfig(**base)


def quiet():
    return Progress(stream=io.StringIO())


def strip_timing(history):
    return [{k: v for k, v in h.items() if k not in TIMING} for h in history]


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)


# ------------------------------------------------------------------- loop


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_train_runs_float_then_qat(backend):
    network, history = train(tiny(backend=backend), TRAIN, TEST, progress=quiet())
    assert [h["phase"] for h in history] == ["float", "qat"]
    assert [h["epoch"] for h in history] == [1, 2]
    for h in history:
        assert set(h) >= {"epoch", "phase", "loss", "train_acc", "test_acc", "images_per_s", "seconds"}
        assert math.isfinite(h["loss"]) and h["loss"] > 0
        assert 0.0 <= h["train_acc"] <= 1.0 and 0.0 <= h["test_acc"] <= 1.0
        assert h["images_per_s"] > 0
    # the recorded test accuracy is the QAT network's, which is the exported integer model's
    model = network.export("tiny", backend=backend)
    acc, _ = evaluate_model(model, *TEST, backend=backend)
    assert acc == history[-1]["test_acc"] == evaluate(network, TEST[0], TEST[1].astype(np.int64), "qat", backend)


def test_float_training_learns_synthetic_labels():
    _, history = train(tiny(epochs_float=4, epochs_qat=0, lr=0.2), synthetic(256, 2), TEST, progress=quiet())
    losses = [h["loss"] for h in history]
    assert all(h["phase"] == "float" for h in history) and len(history) == 4
    assert losses[-1] < 0.8 * losses[0], losses
    assert losses[-1] < math.log(10)  # better than chance
    assert history[-1]["train_acc"] > 0.3


def test_train_subset_and_progress_lines():
    stream = io.StringIO()
    network, history = train(tiny(train_subset=64, epochs_qat=0), TRAIN, TEST,
                             progress=Progress(stream=stream, every_seconds=0.0))
    assert history[0]["images_per_s"] > 0
    lines = stream.getvalue().splitlines()
    assert any("[2/2]" in line for line in lines)  # 64 images, batch 32: two steps
    assert "done" in lines[-1]


def test_same_seed_same_bytes(tmp_path):
    config = tiny()
    a, ha = train(config, TRAIN, TEST, progress=quiet())
    b, hb = train(config, TRAIN, TEST, progress=quiet())
    assert_same_state(a, b)
    assert strip_timing(ha) == strip_timing(hb)
    fmt.save(a.export("m", backend="numba"), tmp_path / "a.npz")
    fmt.save(b.export("m", backend="numba"), tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    c, _ = train(replace(config, seed=1), TRAIN, TEST, progress=quiet())
    assert not np.array_equal(a.state_dict()["classifier/param/w"], c.state_dict()["classifier/param/w"])


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="one CPU: no second thread count to compare")
def test_thread_count_does_not_matter():
    """The Numba kernels split work into a fixed number of chunks: bitwise the same
    network with one thread or several (float and QAT steps)."""
    config = tiny(train_subset=64)
    a, _ = train(config, TRAIN, TEST, progress=quiet())
    numba.set_num_threads(min(4, numba.config.NUMBA_NUM_THREADS))
    b, _ = train(config, TRAIN, TEST, progress=quiet())
    assert_same_state(a, b)


class Interrupted(Exception):
    pass


class InterruptAfter(Progress):
    """Raises at the first progress report after epoch ``k``'s "done" line, i.e.
    after epoch k's checkpoint is written and before epoch k + 1 changes anything."""

    def __init__(self, k):
        super().__init__(stream=io.StringIO())
        self.k, self.done = k, 0

    def update(self, text, force=False):
        if self.done == self.k:
            raise Interrupted(text)
        if " done:" in text:
            self.done += 1
        super().update(text, force)


@pytest.mark.parametrize("epochs_float, epochs_qat, stop", [
    (2, 1, 1),  # inside the float phase: the SGD velocity must carry over
    (1, 1, 1),  # at the float -> QAT boundary: batch-norm re-estimation, fresh optimizer
    (1, 2, 2),  # inside the QAT phase
])
def test_resume_is_bitwise_identical(tmp_path, epochs_float, epochs_qat, stop):
    config = tiny(epochs_float=epochs_float, epochs_qat=epochs_qat)
    straight, history = train(config, TRAIN, TEST, checkpoint_dir=str(tmp_path / "a"), progress=quiet())

    with pytest.raises(Interrupted):
        train(config, TRAIN, TEST, checkpoint_dir=str(tmp_path / "b"), progress=InterruptAfter(stop))
    with np.load(tmp_path / "b" / "last.npz") as z:
        assert json.loads(z["meta"].tobytes())["epoch"] == stop - 1
    resumed, history_b = train(config, TRAIN, TEST, checkpoint_dir=str(tmp_path / "b"), resume=True,
                               progress=quiet())
    assert_same_state(straight, resumed)
    assert strip_timing(history) == strip_timing(history_b)
    # the final checkpoints agree too, optimizer velocity included
    with np.load(tmp_path / "a" / "last.npz") as za, np.load(tmp_path / "b" / "last.npz") as zb:
        assert set(za.files) == set(zb.files)
        assert any(k.startswith("opt/velocity/") for k in za.files)
        for key in za.files:
            if key != "meta":
                np.testing.assert_array_equal(za[key], zb[key], err_msg=key)

    # resuming a finished run changes nothing
    again, history_c = train(config, TRAIN, TEST, checkpoint_dir=str(tmp_path / "b"), resume=True,
                             progress=quiet())
    assert_same_state(straight, again)
    assert strip_timing(history_c) == strip_timing(history)


def test_resume_without_checkpoint_starts_afresh(tmp_path):
    config = tiny(epochs_qat=0)
    a, _ = train(config, TRAIN, TEST, progress=quiet())
    b, _ = train(config, TRAIN, TEST, checkpoint_dir=str(tmp_path / "none"), resume=True, progress=quiet())
    assert_same_state(a, b)


# -------------------------------------------------------------- optimizer


def test_sgd_matches_pytorch_update():
    """PyTorch SGD (dampening 0, nesterov off): d = g + wd * p (weights only);
    buf = d on the first step, else momentum * buf + d;  p -= lr * buf."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 4)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    params = [("w", w, True), ("b", b, False)]
    momentum, wd = 0.9, 5e-4
    opt = SGD(params, momentum=momentum, weight_decay=wd)
    ref = {"w": w.astype(np.float64), "b": b.astype(np.float64)}
    buf = {}
    for step, lr in enumerate([0.1, 0.05, 0.02, 0.3]):
        grads = {"w": rng.normal(size=w.shape).astype(np.float32), "b": rng.normal(size=b.shape).astype(np.float32)}
        opt.step(grads, lr)
        for key, is_weight in (("w", True), ("b", False)):
            d = grads[key].astype(np.float64) + (wd * ref[key] if is_weight else 0.0)
            buf[key] = d if step == 0 else momentum * buf[key] + d
            ref[key] = ref[key] - lr * buf[key]
        np.testing.assert_allclose(w, ref["w"], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(b, ref["b"], rtol=1e-6, atol=1e-6)
    assert w.dtype == b.dtype == np.float32  # updated in place, dtype kept
    assert params[0][1] is w

    # velocity round trip: a fresh optimizer loaded from the state continues identically
    w2, b2 = w.copy(), b.copy()
    opt2 = SGD([("w", w2, True), ("b", b2, False)], momentum=momentum, weight_decay=wd)
    opt2.load_state_dict({k: v.copy() for k, v in opt.state_dict().items()})
    grads = {"w": np.ones_like(w), "b": np.ones_like(b)}
    opt.step(grads, 0.1)
    opt2.step(grads, 0.1)
    np.testing.assert_array_equal(w, w2)
    np.testing.assert_array_equal(b, b2)


def test_sgd_nesterov_matches_pytorch_update():
    """PyTorch SGD with nesterov=True: buf = momentum * buf + d;  p -= lr * (d + momentum * buf)."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=(5, 2)).astype(np.float32)
    opt = SGD([("w", w, True)], momentum=0.9, weight_decay=5e-4, nesterov=True)
    ref, buf = w.astype(np.float64), None
    for step, lr in enumerate([0.1, 0.07, 0.01]):
        g = rng.normal(size=w.shape).astype(np.float32)
        opt.step({"w": g}, lr)
        d = g + 5e-4 * ref
        buf = d if buf is None else 0.9 * buf + d
        ref = ref - lr * (d + 0.9 * buf)
        np.testing.assert_allclose(w, ref, rtol=1e-6, atol=1e-6)


def test_sgd_without_momentum_or_decay_is_plain_gradient_descent():
    p = np.array([1.0, -2.0], np.float32)
    opt = SGD([("p", p, True)], momentum=0.0, weight_decay=0.0)
    opt.step({"p": np.array([0.5, 0.25], np.float32)}, 0.5)
    np.testing.assert_array_equal(p, [0.75, -2.125])


def test_cosine_lr():
    assert cosine_lr(0.1, 0, 100) == pytest.approx(0.1)
    assert cosine_lr(0.1, 50, 100) == pytest.approx(0.05)
    assert cosine_lr(0.1, 100, 100) == pytest.approx(0.0, abs=1e-15)
    assert cosine_lr(0.1, 100, 100, final_lr=0.01) == pytest.approx(0.01)
    assert cosine_lr(0.1, 150, 100) == pytest.approx(0.0, abs=1e-15)  # stays at the end value
    lrs = [cosine_lr(0.1, s, 100) for s in range(101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    # warm-up: linear from base/warmup to base over the first `warmup` steps, then cosine
    warm = [cosine_lr(0.2, s, 50, warmup_steps=10) for s in range(51)]
    assert warm[0] == pytest.approx(0.02)
    assert warm[4] == pytest.approx(0.1)
    assert warm[9] == pytest.approx(0.2)
    assert warm[10] == pytest.approx(0.2)
    assert warm[30] == pytest.approx(0.1)
    assert warm[50] == pytest.approx(0.0, abs=1e-15)
    assert all(a < b for a, b in zip(warm[:9], warm[1:10]))
    assert all(0 < v <= 0.2 for v in warm[:50])


# ------------------------------------------------------------ augmentation


def test_crop_flip_shapes_seeding_and_flips():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8)
    original = images.copy()
    out = crop_flip(images, np.random.default_rng(5))
    assert out.shape == images.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, crop_flip(images, np.random.default_rng(5)))
    assert not np.array_equal(out, crop_flip(images, np.random.default_rng(6)))

    # every output is one of the (2 pad + 1)^2 crops of the 128-padded image, maybe mirrored
    pad = 4
    padded = np.full((64, 16, 16, 3), 128, np.uint8)
    padded[:, pad:pad + 8, pad:pad + 8] = images
    flips = 0
    for i in range(64):
        matches = [(dy, dx, f) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1) for f in (False, True)
                   if np.array_equal(out[i], (lambda c: c[:, ::-1] if f else c)(padded[i, dy:dy + 8, dx:dx + 8]))]
        assert matches, i
        flips += all(f for _, _, f in matches)
    assert 10 < flips < 54  # about half flipped

    # pad 0: identity or mirror image, both occur
    out0 = crop_flip(images, np.random.default_rng(1), pad=0)
    same = [np.array_equal(o, x) for o, x in zip(out0, images)]
    mirrored = [np.array_equal(o, x[:, ::-1]) for o, x in zip(out0, images)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert any(same) and any(mirrored)
    np.testing.assert_array_equal(images, original)  # the input is not modified


# -------------------------------------------------------------- demo CLI


def test_demo_cli_tiny_budget(tmp_path, cifar10_root):
    root = cifar10_root
    from promref.train.cli import main
    out = tmp_path / "demo.npz"
    argv = ["--demo", "--data", root, "--epochs-float", "1", "--epochs-qat", "1", "--train-subset", "256",
            "--test-subset", "100", "--batch-size", "32", "--bn-recalibration-batches", "2",
            "--out", str(out), "--checkpoint-dir", str(tmp_path / "ckpt")]
    assert main(argv) == 0
    model = fmt.load(out)
    card = json.loads(out.with_suffix(".json").read_text())
    assert [h["phase"] for h in card["history"]] == ["float", "qat"]
    assert card["test_images"] == 100 and card["config"]["train_subset"] == 256
    assert any(layer.op == "pointwise_ternary" for layer in model.layers)
    assert (tmp_path / "ckpt" / "last.npz").exists()
    assert card["resumed_after_epoch"] == 0
    assert card["training_time_s"] == round(sum(h["seconds"] for h in card["history"]), 1) > 0
    # the same command resumed after the last epoch trains nothing more and exports the same model;
    # its card keeps the history (and so the training time) of the first process
    assert main(argv + ["--resume"]) == 0
    again = json.loads(out.with_suffix(".json").read_text())
    assert again["resumed_after_epoch"] == 2 and again["history"] == card["history"]
    assert again["training_time_s"] == card["training_time_s"]
    assert np.array_equal(fmt.load(out).layers[3].weights, model.layers[3].weights)
