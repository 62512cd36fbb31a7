"""The training loop: float epochs, batch-norm re-estimation for the quantized
weights, then QAT epochs; progress, evaluation, checkpoints and resume.

Deterministic: the shuffle and augmentation of epoch ``e`` come from
``default_rng([seed, e])``, so a resumed run continues exactly as an
uninterrupted one would.
"""
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import limits
from ..architectures import dsnet_layout, mobilenetv2_layout
from ..errors import CheckpointError
from ..fileio import loads_json
from ..limits import bounded_repr
from ..npzread import NpzReader
from ..progress import bar
from .augment import crop_flip
from .network import Network, softmax_cross_entropy
from .optim import SGD, cosine_lr
from .units import BN_MOMENTUM


@dataclass
class TrainConfig:
    """Everything that defines a training run (recorded in checkpoints and model cards)."""
    arch: str = "mobilenetv2"          # or "dsnet" (the small demo net)
    width: float = 1.0
    scheme: str = "prom"               # "prom" or "int8"
    epochs_float: int = 100            # the round-3 recipe: docs/training.md
    epochs_qat: int = 15
    batch_size: int = 128
    lr: float = 0.1
    lr_qat: float = 0.001             # 0.01 collapses MobileNetV2 QAT (frozen BN): docs/training.md
    batch_stats_epochs_qat: int = 0    # QAT epochs folding batch statistics before BN is frozen: docs/training.md
    momentum: float = 0.9
    nesterov: bool = True
    label_smoothing: float = 0.1
    weight_decay: float = 5e-4
    weight_decay_qat: float = 5e-5
    warmup_epochs: int = 2
    bn_recalibration_batches: int = 100
    train_subset: int = 0              # 0: all training images
    seed: int = 0
    rounding: str = "double"           # LiteRT's; with multipliers "tflite" the model exports to TFLite exactly
    multipliers: str = "tflite"        # or "float64" (the round-1/2 rule): units.MULTIPLIER_RULES, docs/training.md
    backend: str = "numba"
    dsnet_channels: tuple = field(default=(32, 64, 128))

    def layout(self):
        if self.arch == "dsnet":
            return dsnet_layout(tuple(self.dsnet_channels))
        return mobilenetv2_layout("cifar", self.width, self.scheme)


def build_network(config):
    arch = dict(name=config.arch, config="cifar", width=config.width)
    return Network(config.layout(), scheme=config.scheme, seed=config.seed, rounding=config.rounding, arch=arch,
                   multipliers=config.multipliers)


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


def _save_checkpoint(path, network, optimizer, meta):
    arrays = {f"net/{k}": v for k, v in network.state_dict().items()}
    arrays.update({f"opt/{k}": v for k, v in optimizer.state_dict().items()})
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)  # atomic: a crash never leaves half a checkpoint


def _open_checkpoint(path):
    return NpzReader(path, CheckpointError, what="checkpoint", max_members=limits.MAX_CHECKPOINT_MEMBERS,
                     max_member_bytes=limits.MAX_CHECKPOINT_MEMBER_BYTES,
                     max_total_bytes=limits.MAX_CHECKPOINT_TOTAL_BYTES)


def _checkpoint_meta(reader):
    if "meta" not in reader or reader.size("meta") > limits.MAX_META_BYTES:
        raise CheckpointError(f"{reader.where}: no 'meta' member of at most {limits.MAX_META_BYTES} bytes")
    raw = reader.read("meta")
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError("it must be a 1-D uint8 array")
        meta = loads_json(raw.tobytes())
    except ValueError as e:
        raise CheckpointError(f"{reader.where}: member 'meta' is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("epoch"), int) or isinstance(meta["epoch"], bool) \
            or not isinstance(meta.get("history"), list) or not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{reader.where}: meta must hold an int 'epoch', a 'history' list and a 'config'")
    return meta


def config_differences(stored, config):
    """Names of the TrainConfig fields in which a checkpoint's ``stored`` config differs from ``config``.

    A field absent from ``stored`` (written before the field existed) compares
    as today's default; a stored field TrainConfig does not know differs.
    """
    current = json.loads(json.dumps(asdict(config)))  # tuples as lists, as the checkpoint stores them
    defaults = json.loads(json.dumps(asdict(TrainConfig())))
    names = sorted(set(current) | set(stored))
    return [n for n in names if n not in current or stored.get(n, defaults.get(n)) != current[n]]


def _check_arrays(where, arrays, wanted):
    """``arrays`` must have exactly the keys, shapes and dtypes of ``wanted``, and finite values."""
    missing, extra = sorted(set(wanted) - set(arrays)), sorted(set(arrays) - set(wanted))
    if missing or extra:
        raise CheckpointError(f"{where}: does not match this network: missing {missing[:5]}"
                              f"{'...' if len(missing) > 5 else ''}, unexpected {extra[:5]}{'...' if len(extra) > 5 else ''}")
    for key, want in wanted.items():
        got = arrays[key]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise CheckpointError(f"{where}: {key!r} is {got.dtype} {got.shape}, this network needs "
                                  f"{want.dtype} {want.shape}")
        if got.dtype.kind == "f" and not np.isfinite(got).all():
            raise CheckpointError(f"{where}: {key!r} holds NaN or infinite values")


#: the TrainConfig fields that shape the float phase: a QAT fork (``init_from``) must match them, and
#: a float-only run (``epochs_qat`` 0) resumes whenever they match (the QAT fields cannot matter to it)
FLOAT_PHASE_FIELDS = ("arch", "width", "dsnet_channels", "epochs_float", "batch_size", "lr", "momentum", "nesterov",
                      "label_smoothing", "weight_decay", "warmup_epochs", "train_subset", "seed")


def _refuse_differences(path, meta, config, names, what):
    if names:
        shown = ", ".join(f"{n} (checkpoint {bounded_repr(meta['config'].get(n))}, now "
                          f"{bounded_repr(getattr(config, n, None))})" for n in names[:8])
        raise CheckpointError(f"{path}: {what}; differing field(s): {shown}")


def _resume_differences(stored, config):
    """The fields that forbid resuming: all differing ones, but only the float phase's (and
    ``epochs_qat``) when both the checkpoint's run and this one are float-only."""
    diff = config_differences(stored, config)
    if stored.get("epochs_qat") == 0 and config.epochs_qat == 0:
        diff = [n for n in diff if n in FLOAT_PHASE_FIELDS or n not in TrainConfig.__dataclass_fields__]
    return diff


def _read_arrays(path, reader, network, with_optimizer):
    """Every network (and, ``with_optimizer``, optimizer) array of the checkpoint, completely checked."""
    net_want = network.state_dict()
    opt_want = {f"velocity/{key}": p for key, p, _ in network.parameters()}
    keys = set(reader.names) - {"meta"}
    wanted = {f"net/{k}" for k in net_want} | {f"opt/{k}" for k in opt_want}
    if keys - wanted:  # refused before any of them is inflated
        raise CheckpointError(f"{path}: unexpected member(s) {sorted(keys - wanted)[:5]}")
    if not with_optimizer:  # a fork starts the QAT phase with a fresh optimizer: its velocity is not read
        keys = {k for k in keys if k.startswith("net/")}
    arrays = {k: reader.read(k) for k in sorted(keys)}
    _check_arrays(f"{path} (network)", {k[4:]: v for k, v in arrays.items() if k.startswith("net/")}, net_want)
    if with_optimizer:
        _check_arrays(f"{path} (optimizer)", {k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}, opt_want)
    network.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("net/")})
    return {k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}


def _load_checkpoint(path, network, config):
    """Read and completely check ``path`` before anything of it is used; load it into ``network``.

    Checked: the bounded zip (promref.npzread), the meta record, the epoch
    against this run's epochs, the stored config against ``config`` (every
    differing field is refused by name; :func:`_resume_differences`), every network
    and optimizer array's name, shape, dtype and finiteness.  Returns (meta, optimizer state).
    """
    with _open_checkpoint(path) as reader:
        meta = _checkpoint_meta(reader)
        _refuse_differences(path, meta, config, _resume_differences(meta["config"], config),
                            "written by another configuration")
        total = config.epochs_float + config.epochs_qat
        if not 0 <= meta["epoch"] < total or len(meta["history"]) != meta["epoch"] + 1:
            raise CheckpointError(f"{path}: epoch {bounded_repr(meta['epoch'])} with {len(meta['history'])} "
                                  f"history records does not fit a run of {total} epochs")
        velocity = _read_arrays(path, reader, network, with_optimizer=True)
    return meta, velocity


def _load_float_phase(path, network, config):
    """Load the float phase's final network from a (float-only or longer) run's checkpoint ``path``
    into ``network``, to start this run's QAT phase from it -> the float phase's history.

    Refused by name: a float-phase field (:data:`FLOAT_PHASE_FIELDS`) that differs from
    ``config`` (the QAT fields, ``scheme`` among them, may differ: the float phase does not
    depend on them), and a checkpoint whose float phase is unfinished or already past.
    """
    with _open_checkpoint(path) as reader:
        meta = _checkpoint_meta(reader)
        diff = [n for n in config_differences(meta["config"], config) if n in FLOAT_PHASE_FIELDS]
        _refuse_differences(path, meta, config, diff, "its float phase was trained with another configuration")
        done, wanted = meta["epoch"] + 1, config.epochs_float
        phases = [h.get("phase") if isinstance(h, dict) else None for h in meta["history"]]
        if done < wanted:
            raise CheckpointError(f"{path}: the float phase is unfinished: {done} of {wanted} float epochs "
                                  "(resume that run first)")
        if done > wanted or phases != ["float"] * wanted:
            raise CheckpointError(f"{path}: holds {done} epochs ({phases.count('qat')} QAT), not exactly the "
                                  f"{wanted} float epochs of a finished float phase")
        _read_arrays(path, reader, network, with_optimizer=False)
    return meta["history"]


def load_float_twin(path, config):
    """The float network of the finished float phase in checkpoint ``path`` (checked as for a fork):
    the twin a QAT fork of ``config`` started from."""
    network = build_network(config)
    _load_float_phase(path, network, config)
    return network


def checkpoint_epochs(checkpoint_dir):
    """How many epochs the checkpoint ``checkpoint_dir/last.npz`` holds (0 when there is none)."""
    path = os.path.join(checkpoint_dir, "last.npz") if checkpoint_dir else None
    if not path or not os.path.exists(path):
        return 0
    with _open_checkpoint(path) as reader:
        return _checkpoint_meta(reader)["epoch"] + 1


def train(config, train_data, test_data, checkpoint_dir=None, resume=False, progress=None, init_from=None):
    """Train a network -> (network, history).  ``*_data`` are (uint8 images NHWC, int labels).

    history: per epoch phase, loss, train accuracy, test accuracy, images/s.
    Checkpoints (``checkpoint_dir/last.npz``, after every epoch) hold the
    network, the optimizer and the history; ``resume`` continues from there.
    ``init_from``: a checkpoint holding exactly the finished float phase of a run
    with the same float-phase fields (:func:`_load_float_phase`): this run skips its
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
    total_epochs = config.epochs_float + config.epochs_qat
    history, start_epoch, velocity = [], 0, None
    ckpt = os.path.join(checkpoint_dir, "last.npz") if checkpoint_dir else None
    if ckpt and resume and os.path.exists(ckpt):
        meta, velocity = _load_checkpoint(ckpt, network, config)
        history, start_epoch = meta["history"], meta["epoch"] + 1
        progress.update(f"resumed from {ckpt} after epoch {start_epoch}", force=True)
    elif init_from:
        history = _load_float_phase(init_from, network, config)
        start_epoch = config.epochs_float
        progress.update(f"float phase ({start_epoch} epochs) from {init_from}; QAT starts", force=True)

    optimizer = None
    for epoch in range(start_epoch, total_epochs):
        mode = "float" if epoch < config.epochs_float else "qat"
        phase_epoch = epoch if mode == "float" else epoch - config.epochs_float
        phase_epochs = config.epochs_float if mode == "float" else config.epochs_qat
        if optimizer is None or phase_epoch == 0:
            if phase_epoch == 0:  # a phase starts afresh (a resumed velocity belongs to the last phase)
                velocity = None
                if mode == "qat":
                    recalibrate_batch_norm(network, images, config, progress)
            wd = config.weight_decay if mode == "float" else config.weight_decay_qat
            optimizer = SGD(network.parameters(), config.momentum, wd, config.nesterov)
            if velocity is not None:
                optimizer.load_state_dict(velocity)
                velocity = None
        network.use_batch_statistics(mode == "qat" and phase_epoch < config.batch_stats_epochs_qat)
        base_lr = config.lr if mode == "float" else config.lr_qat
        warmup = config.warmup_epochs * steps_per_epoch if mode == "float" else 0
        rng = np.random.default_rng([config.seed, epoch])
        order = rng.permutation(len(images))
        loss_sum, correct, seen, t0 = 0.0, 0, 0, time.perf_counter()
        progress.start_epoch(steps_per_epoch * config.batch_size, f"epoch {epoch + 1}/{total_epochs} ({mode})")
        for step in range(steps_per_epoch):
            idx = order[step * config.batch_size:(step + 1) * config.batch_size]
            batch = crop_flip(images[idx], rng)
            lr = cosine_lr(base_lr, phase_epoch * steps_per_epoch + step, phase_epochs * steps_per_epoch, warmup)
            network.zero_grad()
            logits = network.forward(batch, mode=mode, training=True, backend=config.backend)
            loss, dlogits, ok = softmax_cross_entropy(logits, labels[idx], config.label_smoothing)
            network.backward(dlogits, mode=mode)
            optimizer.step(network.gradients(), lr)
            loss_sum += loss * len(idx)
            correct += ok
            seen += len(idx)
            rate = seen / (time.perf_counter() - t0)
            progress.advance(len(idx), loss_sum / seen, correct / seen)
            progress.update(f"epoch {epoch + 1}/{total_epochs} ({mode}) [{step + 1}/{steps_per_epoch}] "
                            f"loss {loss_sum / seen:.4f} acc {100 * correct / seen:.2f}% "
                            f"{rate:.0f} img/s lr {lr:.4g}")
        train_time = time.perf_counter() - t0
        progress.end_epoch()
        test_acc = evaluate(network, test_images, test_labels, mode, config.backend)
        record = dict(epoch=epoch + 1, phase=mode, loss=loss_sum / max(seen, 1), train_acc=correct / max(seen, 1),
                      test_acc=test_acc, images_per_s=seen / max(train_time, 1e-9), seconds=train_time)
        history.append(record)
        progress.update(f"epoch {epoch + 1}/{total_epochs} ({mode}) done: loss {record['loss']:.4f} "
                        f"train {100 * record['train_acc']:.2f}% test {100 * test_acc:.2f}% "
                        f"{record['images_per_s']:.0f} img/s {train_time:.0f} s", force=True)
        if ckpt:
            os.makedirs(checkpoint_dir, exist_ok=True)
            _save_checkpoint(ckpt, network, optimizer, dict(epoch=epoch, config=asdict(config), history=history))
    return network, history
