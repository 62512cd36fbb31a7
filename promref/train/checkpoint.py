"""Training checkpoints: writing them atomically, and reading them back completely checked.

A checkpoint (``DIR/last.npz``) holds the network (``net/...``: parameters, batch-norm
statistics, activation ranges), the optimizer's velocity (``opt/...``) and a JSON ``meta``
record: ``epoch`` (the last finished epoch, -1 before the first), ``history`` (one record per
finished epoch), ``config`` (the run's TrainConfig) and, for a checkpoint written inside an
epoch, ``partial`` (:class:`EpochInProgress`).  Nothing of a checkpoint is used before all of
it has been checked: the bounded zip (promref.npzread), the meta record, the config against
the resuming run's, and every array's name, shape, dtype and finiteness.
"""
import json
import math
import os
from dataclasses import asdict, dataclass

import numpy as np

from .. import limits
from ..errors import CheckpointError
from ..fileio import loads_json
from ..limits import bounded_repr
from ..npzread import NpzReader
from .config import TrainConfig, build_network


@dataclass
class EpochInProgress:
    """How far a checkpoint written inside epoch ``epoch`` had come: ``steps`` training steps
    done, and the running figures of the epoch's record (loss summed over images, correct
    predictions, images seen, seconds of training so far, summed over processes)."""
    epoch: int
    steps: int
    loss_sum: float
    correct: int
    seen: int
    seconds: float


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _first(names, count=5):
    """The first ``count`` of a list of names, and '...' when there are more (error messages stay short)."""
    return f"{names[:count]}{'...' if len(names) > count else ''}"


def _partial(where, meta):
    """The meta record's ``partial`` entry, checked -> EpochInProgress, or None when it has none."""
    record = meta.get("partial")
    if record is None:
        return None
    names = set(EpochInProgress.__dataclass_fields__)
    if not isinstance(record, dict) or set(record) != names:
        raise CheckpointError(f"{where}: meta 'partial' must be a record of exactly {sorted(names)}")
    ints_ok = all(_is_int(record[k]) for k in ("epoch", "steps", "correct", "seen"))
    floats_ok = all(isinstance(record[k], (int, float)) and not isinstance(record[k], bool)
                    and math.isfinite(record[k]) for k in ("loss_sum", "seconds"))
    if not (ints_ok and floats_ok) or record["epoch"] != meta["epoch"] + 1 or record["steps"] < 1 \
            or not 0 <= record["correct"] <= record["seen"] or record["seconds"] < 0:
        raise CheckpointError(f"{where}: meta 'partial' {bounded_repr(record)} is not an epoch in progress "
                              f"after epoch {meta['epoch'] + 1}")
    return EpochInProgress(**record)


def save_checkpoint(path, network, optimizer, meta):
    """Write ``network``, ``optimizer`` and the JSON-able ``meta`` record to ``path``, atomically."""
    arrays = {f"net/{k}": v for k, v in network.state_dict().items()}
    arrays.update({f"opt/{k}": v for k, v in optimizer.state_dict().items()})
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)  # atomic: a crash never leaves half a checkpoint


def open_checkpoint(path):
    return NpzReader(path, CheckpointError, what="checkpoint", max_members=limits.MAX_CHECKPOINT_MEMBERS,
                     max_member_bytes=limits.MAX_CHECKPOINT_MEMBER_BYTES,
                     max_total_bytes=limits.MAX_CHECKPOINT_TOTAL_BYTES)


def read_meta(reader):
    """The checkpoint's meta record, its shape checked (``partial`` by :func:`_partial`)."""
    if "meta" not in reader or reader.size("meta") > limits.MAX_META_BYTES:
        raise CheckpointError(f"{reader.where}: no 'meta' member of at most {limits.MAX_META_BYTES} bytes")
    raw = reader.read("meta")
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError("it must be a 1-D uint8 array")
        meta = loads_json(raw.tobytes())
    except ValueError as e:
        raise CheckpointError(f"{reader.where}: member 'meta' is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or not _is_int(meta.get("epoch")) \
            or not isinstance(meta.get("history"), list) or not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{reader.where}: meta must hold an int 'epoch', a 'history' list and a 'config'")
    _partial(reader.where, meta)
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
        raise CheckpointError(f"{where}: does not match this network: missing {_first(missing)}, "
                              f"unexpected {_first(extra)}")
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


def load_checkpoint(path, network, config, steps_per_epoch):
    """Read and completely check ``path`` before anything of it is used; load it into ``network``.

    Checked: the bounded zip (promref.npzread), the meta record, the epoch
    against this run's epochs (and an epoch in progress against its steps), the stored
    config against ``config`` (every differing field is refused by name;
    :func:`_resume_differences`), every network and optimizer array's name, shape, dtype
    and finiteness.  ``steps_per_epoch``: this run's.  Returns (meta, EpochInProgress or
    None, optimizer state).
    """
    with open_checkpoint(path) as reader:
        meta = read_meta(reader)
        _refuse_differences(path, meta, config, _resume_differences(meta["config"], config),
                            "written by another configuration")
        total = config.epochs_float + config.epochs_qat
        partial = _partial(path, meta)
        first = -1 if partial else 0  # a checkpoint inside the first epoch has finished none
        if not first <= meta["epoch"] < total or len(meta["history"]) != meta["epoch"] + 1 \
                or (partial and partial.epoch >= total):
            raise CheckpointError(f"{path}: epoch {bounded_repr(meta['epoch'])} with {len(meta['history'])} "
                                  f"history records does not fit a run of {total} epochs")
        if partial and (partial.steps >= steps_per_epoch or partial.seen != partial.steps * config.batch_size):
            raise CheckpointError(f"{path}: {partial.steps} steps ({partial.seen} images) into epoch "
                                  f"{partial.epoch + 1} do not fit this run's {steps_per_epoch} steps of "
                                  f"{config.batch_size} images")
        velocity = _read_arrays(path, reader, network, with_optimizer=True)
    return meta, partial, velocity


def load_float_phase(path, network, config):
    """Load the float phase's final network from a (float-only or longer) run's checkpoint ``path``
    into ``network``, to start this run's QAT phase from it -> the float phase's history.

    Refused by name: a float-phase field (:data:`FLOAT_PHASE_FIELDS`) that differs from
    ``config`` (the QAT fields, ``scheme`` among them, may differ: the float phase does not
    depend on them), and a checkpoint whose float phase is unfinished or already past.
    """
    with open_checkpoint(path) as reader:
        meta = read_meta(reader)
        diff = [n for n in config_differences(meta["config"], config) if n in FLOAT_PHASE_FIELDS]
        _refuse_differences(path, meta, config, diff, "its float phase was trained with another configuration")
        done, wanted = meta["epoch"] + 1, config.epochs_float
        phases = [h.get("phase") if isinstance(h, dict) else None for h in meta["history"]]
        if done < wanted:
            raise CheckpointError(f"{path}: the float phase is unfinished: {done} of {wanted} float epochs "
                                  "(resume that run first)")
        if done > wanted or phases != ["float"] * wanted or meta.get("partial"):
            raise CheckpointError(f"{path}: holds {done} epochs ({phases.count('qat')} QAT)"
                                  f"{' and one in progress' if meta.get('partial') else ''}, not exactly the "
                                  f"{wanted} float epochs of a finished float phase")
        _read_arrays(path, reader, network, with_optimizer=False)
    return meta["history"]


def load_float_twin(path, config):
    """The float network of the finished float phase in checkpoint ``path`` (checked as for a fork):
    the twin a QAT fork of ``config`` started from."""
    network = build_network(config)
    load_float_phase(path, network, config)
    return network


def checkpoint_epochs(checkpoint_dir):
    """How many epochs the checkpoint ``checkpoint_dir/last.npz`` holds (0 when there is none)."""
    path = os.path.join(checkpoint_dir, "last.npz") if checkpoint_dir else None
    if not path or not os.path.exists(path):
        return 0
    with open_checkpoint(path) as reader:
        return read_meta(reader)["epoch"] + 1
