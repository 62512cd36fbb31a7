"""The training loop: float epochs, batch-norm re-estimation for the quantized
weights, then QAT epochs; progress, evaluation, checkpoints and resume.

Deterministic: the shuffle and augmentation of epoch ``e`` come from
``default_rng([seed, e])``, so a resumed run continues exactly as an
uninterrupted one would -- from the end of an epoch, or from inside one
(``checkpoint_every``), where the steps already done are replayed through the
augmentation's random draws alone.
"""
import os
import sys
import time
from dataclasses import asdict

import numpy as np

from ..progress import bar
from .augment import crop_flip
from .checkpoint import EpochInProgress, load_checkpoint, load_float_phase, save_checkpoint
from .config import TrainConfig, build_network
from .network import softmax_cross_entropy
from .optim import SGD, cosine_lr
from .units import BN_MOMENTUM

__all__ = ["Progress", "TrainConfig", "build_network", "evaluate", "predict", "recalibrate_batch_norm", "train"]


class Progress:
    """The run's log lines (epoch, batch, loss, accuracy, images/s, learning rate; one at most
    every ``every_seconds``), and on a terminal a tqdm bar per epoch with loss, accuracy,
    images/s and the epoch's ETA (promref/progress.py; none with ``quiet``).  It only reads
    the figures the loop has computed: the run is the same with or without it."""

    def __init__(self, stream=sys.stderr, every_seconds=10.0, quiet=False):
        self.stream, self.every, self.quiet = stream, every_seconds, quiet
        self.last = 0.0
        self.bar = None

    def update(self, text, force=False):
        now = time.perf_counter()
        if force or now - self.last >= self.every:
            self.last = now
            if self.bar is not None and not self.bar.disable:
                self.bar.write(text, file=self.stream)   # above the bar, not through it
            else:
                print(text, file=self.stream, flush=True)

    def start_epoch(self, images, desc):
        self.end_epoch()
        self.bar = bar(images, desc, quiet=self.quiet)

    def advance(self, images, loss, accuracy):
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", acc=f"{100 * accuracy:.2f}%", refresh=False)
            self.bar.update(images)

    def end_epoch(self):
        if self.bar is not None:
            self.bar.refresh()   # draw the epoch's final figures even if it ran faster than tqdm's redraw interval
            self.bar.close()
            self.bar = None


def predict(network, images, mode, backend="numba", batch_size=500):
    """Predicted classes int64 [N] of ``network`` in ``mode`` ('float' or 'qat', eval mode) on uint8 images."""
    out = np.empty(len(images), np.int64)
    for start in range(0, len(images), batch_size):
        logits = network.forward(images[start:start + batch_size], mode=mode, training=False, backend=backend)
        out[start:start + batch_size] = logits.argmax(axis=1)
    return out


def evaluate(network, images, labels, mode, backend="numba", batch_size=500):
    """Top-1 accuracy (fraction) of ``network`` in ``mode`` ('float' or 'qat', eval mode)."""
    return int((predict(network, images, mode, backend, batch_size) == labels).sum()) / len(images)


def recalibrate_batch_norm(network, images, config, progress):
    """Re-estimate every batch-norm mean/variance for the *quantized* weights.

    Ternarizing changes each conv's output statistics; without this the QAT
    start is far off (the float net, ternarized, scores ~chance on CIFAR-10).
    Cumulative average over ``bn_recalibration_batches`` batches.
    """
    rng = np.random.default_rng([config.seed, 10_000])
    order = rng.permutation(len(images))
    batches = max(1, min(config.bn_recalibration_batches, len(images) // config.batch_size))
    convs = [unit for unit in network.units if "mean" in unit.buffers]
    try:
        for i in range(batches):
            for unit in convs:
                unit.bn_momentum = 1.0 / (i + 1)  # cumulative moving average
            idx = order[i * config.batch_size:(i + 1) * config.batch_size]
            network.forward(images[idx], mode="float", training=True, quantized_weights=True)
    finally:
        for unit in convs:
            unit.bn_momentum = BN_MOMENTUM
    progress.update(f"re-estimated batch-norm statistics on {batches} batches", force=True)


def _phase(config, epoch):
    """-> (mode 'float' or 'qat', the epoch's index within its phase, the phase's epochs)."""
    if epoch < config.epochs_float:
        return "float", epoch, config.epochs_float
    return "qat", epoch - config.epochs_float, config.epochs_qat


def _optimizer(network, config, mode, velocity):
    """The phase's SGD (its weight decay), with the velocity a checkpoint held, if any."""
    wd = config.weight_decay if mode == "float" else config.weight_decay_qat
    optimizer = SGD(network.parameters(), config.momentum, wd, config.nesterov)
    if velocity is not None:
        optimizer.load_state_dict(velocity)
    return optimizer


def _save(ckpt, network, optimizer, config, history, epochs_done, partial=None):
    """Write ``ckpt`` after ``epochs_done`` finished epochs (and ``partial``, an epoch in progress)."""
    os.makedirs(os.path.dirname(ckpt), exist_ok=True)
    meta = dict(epoch=epochs_done - 1, config=asdict(config), history=history)
    if partial is not None:
        meta["partial"] = asdict(partial)
    save_checkpoint(ckpt, network, optimizer, meta)


def _train_epoch(network, optimizer, images, labels, config, state, steps_per_epoch, progress, after_step):
    """Train epoch ``state.epoch`` on from ``state`` (an EpochInProgress; ``state.steps`` steps done),
    updating ``state`` after every step and calling ``after_step(state)`` then; ``state`` ends as
    the whole epoch's figures.  Steps done before a checkpoint are replayed through the
    augmentation only: it draws the same numbers whatever the images, so the steps that follow
    see exactly the draws of an uninterrupted epoch."""
    mode, phase_epoch, phase_epochs = _phase(config, state.epoch)
    network.use_batch_statistics(mode == "qat" and phase_epoch < config.batch_stats_epochs_qat)
    base_lr = config.lr if mode == "float" else config.lr_qat
    warmup = config.warmup_epochs * steps_per_epoch if mode == "float" else 0
    rng = np.random.default_rng([config.seed, state.epoch])
    order = rng.permutation(len(images))
    batches = [order[step * config.batch_size:(step + 1) * config.batch_size] for step in range(steps_per_epoch)]
    for idx in batches[:state.steps]:
        crop_flip(images[idx], rng)
    desc = f"epoch {state.epoch + 1}/{config.epochs_float + config.epochs_qat} ({mode})"
    progress.start_epoch(steps_per_epoch * config.batch_size, desc)
    if state.seen:
        progress.advance(state.seen, state.loss_sum / state.seen, state.correct / state.seen)
    t0, seconds_before = time.perf_counter(), state.seconds
    for step in range(state.steps, steps_per_epoch):
        idx = batches[step]
        batch = crop_flip(images[idx], rng)
        lr = cosine_lr(base_lr, phase_epoch * steps_per_epoch + step, phase_epochs * steps_per_epoch, warmup)
        network.zero_grad()
        logits = network.forward(batch, mode=mode, training=True, backend=config.backend)
        loss, dlogits, ok = softmax_cross_entropy(logits, labels[idx], config.label_smoothing)
        network.backward(dlogits, mode=mode)
        optimizer.step(network.gradients(), lr)
        state.steps, state.loss_sum = step + 1, state.loss_sum + loss * len(idx)
        state.correct, state.seen = state.correct + int(ok), state.seen + len(idx)
        state.seconds = seconds_before + time.perf_counter() - t0
        progress.advance(len(idx), state.loss_sum / state.seen, state.correct / state.seen)
        progress.update(f"{desc} [{step + 1}/{steps_per_epoch}] loss {state.loss_sum / state.seen:.4f} "
                        f"acc {100 * state.correct / state.seen:.2f}% {state.seen / state.seconds:.0f} img/s "
                        f"lr {lr:.4g}")
        after_step(state)
    progress.end_epoch()
    return state


def train(config, train_data, test_data, checkpoint_dir=None, resume=False, progress=None, init_from=None,
          checkpoint_every=0):
    """Train a network -> (network, history).  ``*_data`` are (uint8 images NHWC, int labels).

    history: per epoch phase, loss, train accuracy, test accuracy, images/s.
    Checkpoints (``checkpoint_dir/last.npz``, after every epoch and, with
    ``checkpoint_every`` N > 0, after every N-th step inside one) hold the
    network, the optimizer and the history; ``resume`` continues from there, bit for bit.
    ``init_from``: a checkpoint holding exactly the finished float phase of a run
    with the same float-phase fields (checkpoint.load_float_phase): this run skips its
    float phase and starts QAT from there, bit for bit as if it had trained it (used
    only when there is no checkpoint of this run to resume).
    """
    progress = progress or Progress()
    images, labels = train_data
    if config.train_subset:
        keep = np.random.default_rng([config.seed, 20_000]).permutation(len(images))[:config.train_subset]
        images, labels = images[np.sort(keep)], labels[np.sort(keep)]
    labels = labels.astype(np.int64)
    test_images, test_labels = test_data[0], test_data[1].astype(np.int64)
    network = build_network(config)
    steps_per_epoch = len(images) // config.batch_size
    history, start_epoch, velocity, partial = [], 0, None, None
    ckpt = os.path.join(checkpoint_dir, "last.npz") if checkpoint_dir else None
    if ckpt and resume and os.path.exists(ckpt):
        meta, partial, velocity = load_checkpoint(ckpt, network, config, steps_per_epoch)
        history, start_epoch = meta["history"], meta["epoch"] + 1
        inside = f" and {partial.steps} of the {steps_per_epoch} steps of the next" if partial else ""
        progress.update(f"resumed from {ckpt} after epoch {start_epoch}{inside}", force=True)
    elif init_from:
        history = load_float_phase(init_from, network, config)
        start_epoch = config.epochs_float
        progress.update(f"float phase ({start_epoch} epochs) from {init_from}; QAT starts", force=True)

    optimizer = None
    for epoch in range(start_epoch, config.epochs_float + config.epochs_qat):
        mode, phase_epoch, _ = _phase(config, epoch)
        state, partial = partial or EpochInProgress(epoch, 0, 0.0, 0, 0, 0.0), None
        if optimizer is None or phase_epoch == 0:
            if phase_epoch == 0 and state.steps == 0:  # a phase starts afresh (a resumed velocity belongs to the last)
                velocity = None
                if mode == "qat":
                    recalibrate_batch_norm(network, images, config, progress)
            optimizer, velocity = _optimizer(network, config, mode, velocity), None

        def after_step(s, optimizer=optimizer, done=epoch):
            if ckpt and checkpoint_every and s.steps % checkpoint_every == 0 and s.steps < steps_per_epoch:
                _save(ckpt, network, optimizer, config, history, done, s)

        state = _train_epoch(network, optimizer, images, labels, config, state, steps_per_epoch, progress,
                             after_step)
        test_acc = evaluate(network, test_images, test_labels, mode, config.backend)
        seen = max(state.seen, 1)
        record = dict(epoch=epoch + 1, phase=mode, loss=state.loss_sum / seen, train_acc=state.correct / seen,
                      test_acc=test_acc, images_per_s=state.seen / max(state.seconds, 1e-9), seconds=state.seconds)
        history.append(record)
        progress.update(f"epoch {epoch + 1}/{config.epochs_float + config.epochs_qat} ({mode}) done: loss "
                        f"{record['loss']:.4f} train {100 * record['train_acc']:.2f}% test {100 * test_acc:.2f}% "
                        f"{record['images_per_s']:.0f} img/s {state.seconds:.0f} s", force=True)
        if ckpt:
            _save(ckpt, network, optimizer, config, history, epoch + 1)
    return network, history
