"""``promref train``: the demo, and the run that produces weights/mbv2_prom.npz.

    promref train --demo                      small DS net, 20,000 CIFAR-10 training images, < 10 min on 2 cores
    promref train --width 1.0 --out weights/mbv2_prom.npz --checkpoint-dir DIR [--resume]

Data: CIFAR-10 from --data, $PROMREF_CIFAR10 or ~/.cache/promref/cifar10 (see
promref.data.cifar10).  Long runs keep their checkpoints outside the
repository (--checkpoint-dir) and continue with --resume.
"""
import argparse
import json
import os
import platform
import math
import shlex
import sys
import tempfile
import time
from dataclasses import asdict

import numpy as np

from ..arith import ROUNDING_MODES
from ..errors import TrainArgumentError
from ..evaluate import evaluate_model
from ..format import save
from .units import MULTIPLIER_RULES
from ..format import load
from .card import model_card
from .memory import keep_freed_memory
from .checkpoint import checkpoint_epochs, load_float_twin
from .loop import Progress, TrainConfig, evaluate, predict, train

DEMO = dict(arch="dsnet", epochs_float=5, epochs_qat=2, batch_size=128, lr=0.1, lr_qat=0.01,
            nesterov=False, label_smoothing=0.0, warmup_epochs=1,
            train_subset=20_000, bn_recalibration_batches=50, weight_decay=5e-4)


def _cpu_name():
    """The CPU's model name (platform.processor() is empty on Linux, so read /proc/cpuinfo)."""
    if platform.processor():
        return platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return ""


def _hardware():
    cpu = " ".join(filter(None, (platform.machine(), _cpu_name())))
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()}"


def _portable_path(text, home, cwd):
    """An absolute path as a user would type it on any machine: ~/... under the home folder,
    relative under the working folder; anything else unchanged."""
    if not os.path.isabs(text):
        return text
    path = os.path.normpath(text)
    for root, shown in ((cwd, None), (home, "~")):
        if root and (path == root or path.startswith(root.rstrip(os.sep) + os.sep)):
            rel = os.path.relpath(path, root)
            return rel if shown is None else shown if rel == "." else f"{shown}/{rel}"
    return text


def user_command(argv, home=None, cwd=None):
    """The command line of this run for the model card, without this machine's paths.

    argv: the arguments after ``promref train``; ``--opt=/abs/path`` and ``--opt /abs/path``
    forms are both rewritten (:func:`_portable_path`).  home, cwd: default to this
    process's (for tests).
    """
    home = os.path.normpath(home or os.path.expanduser("~"))
    cwd = os.path.normpath(cwd or os.getcwd())
    words = []
    for arg in argv:
        flag, eq, value = arg.partition("=")
        if eq and flag.startswith("--"):
            words.append(f"{flag}={_portable_path(value, home, cwd)}")
        else:
            words.append(_portable_path(arg, home, cwd))
    return "promref train " + " ".join(_quote(w) for w in words)


def _quote(word):
    """shlex.quote, leaving a leading ``~/`` (also after ``--opt=``) unquoted so a shell expands it."""
    if word == "~":
        return word
    head, sep, rest = word.partition("~/")
    if sep and (head == "" or (head.startswith("--") and head.endswith("="))):
        return f"{shlex.quote(head) if head else ''}~/{shlex.quote(rest) if rest else ''}"
    return shlex.quote(word)


def register(subparsers):
    """Add ``train`` to the subcommands of ``promref`` (one argparse tree for the whole CLI).

    The model card records the command as typed: the top-level CLI passes its words as
    ``args.command_words`` (``["train", ...]``)."""
    p = subparsers.add_parser("train", help="QAT training on CIFAR-10 (docs/training.md)",
                              description=__doc__.splitlines()[0])
    add_arguments(p)
    p.set_defaults(func=lambda args: run(args, args.command_words[1:]))


def build_parser():
    """The stand-alone parser of :func:`main` (the same arguments as ``promref train``)."""
    p = argparse.ArgumentParser(prog="promref train", description=__doc__.splitlines()[0])
    add_arguments(p)
    return p


def add_arguments(p):
    """The arguments of ``promref train`` on parser ``p``."""
    p.add_argument("--demo", action="store_true",
                   help=f"small depthwise-separable net on a {DEMO['train_subset']:,}-image subset of the training set")
    p.add_argument("--data", help="CIFAR-10 root (else $PROMREF_CIFAR10 or ~/.cache/promref/cifar10)")
    defaults = TrainConfig()
    for name in ("arch", "width", "scheme", "epochs_float", "epochs_qat", "batch_size", "lr", "lr_qat",
                 "batch_stats_epochs_qat",
                 "nesterov", "label_smoothing", "weight_decay", "weight_decay_qat", "warmup_epochs",
                 "bn_recalibration_batches", "train_subset", "seed", "rounding", "multipliers", "backend"):
        value = getattr(defaults, name)
        kind = dict(action=argparse.BooleanOptionalAction) if isinstance(value, bool) else dict(type=type(value))
        p.add_argument("--" + name.replace("_", "-"), default=None, help=f"(default {value})", **kind)
    p.add_argument("--out", help="write the exported integer model here (.npz) and its model card (.json)")
    p.add_argument("--checkpoint-dir", help="keep last.npz here after every epoch (and every --checkpoint-every steps)")
    p.add_argument("--checkpoint-every", type=int, default=50, metavar="STEPS",
                   help="also checkpoint inside an epoch after every STEPS steps, so a stopped run loses at most "
                        "that many (default 50; 0: only at the end of each epoch)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir/last.npz")
    p.add_argument("--init-from", metavar="CHECKPOINT",
                   help="start the QAT phase from the finished float phase in this checkpoint (a float-only "
                        "run's last.npz with the same float-phase settings); --scheme and the QAT settings may differ")
    p.add_argument("--compare-with", action="append", default=[], metavar="WEIGHTS",
                   help="a trained twin (.npz, e.g. the int8 twin) to compare with on the same test images "
                        "(McNemar's paired test in the model card); repeatable")
    p.add_argument("--test-subset", type=int, default=0, help="evaluate on the first N test images (0: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bars (the log lines stay)")


def _number(name, value, lo, hi, integer=False, lo_open=False, hi_open=False):
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value) or value < lo or value > hi \
            or (lo_open and value == lo) or (hi_open and value == hi):
        kind = "an integer" if integer else "a number"
        span = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise TrainArgumentError(f"--{name.replace('_', '-')} must be {kind} in {span}, not {value!r}")


def check_config(config):
    """Refuse every out-of-range or unknown TrainConfig value (before any data is read or step taken)."""
    for name, choices in (("arch", ("mobilenetv2", "dsnet")), ("scheme", ("prom", "int8")),
                          ("rounding", ROUNDING_MODES), ("multipliers", MULTIPLIER_RULES),
                          ("backend", ("numba", "numpy"))):
        if getattr(config, name) not in choices:
            raise TrainArgumentError(f"--{name} must be one of {', '.join(choices)}, not {getattr(config, name)!r}")
    _number("width", config.width, 0, 4, lo_open=True)
    for name in ("epochs_float", "epochs_qat"):
        _number(name, getattr(config, name), 0, 10_000, integer=True)
    if config.epochs_float + config.epochs_qat < 1:
        raise TrainArgumentError("--epochs-float plus --epochs-qat must be at least 1")
    _number("batch_size", config.batch_size, 1, 65_536, integer=True)
    for name in ("lr", "lr_qat"):
        _number(name, getattr(config, name), 0, 100, lo_open=True)
    _number("momentum", config.momentum, 0, 1, hi_open=True)
    _number("label_smoothing", config.label_smoothing, 0, 1, hi_open=True)
    for name in ("weight_decay", "weight_decay_qat"):
        _number(name, getattr(config, name), 0, 1)
    _number("warmup_epochs", config.warmup_epochs, 0, max(config.epochs_float, 0), integer=True)
    _number("batch_stats_epochs_qat", config.batch_stats_epochs_qat, 0, max(config.epochs_qat, 0), integer=True)
    _number("bn_recalibration_batches", config.bn_recalibration_batches, 1, 1_000_000, integer=True)
    _number("train_subset", config.train_subset, 0, 10_000_000, integer=True)
    _number("seed", config.seed, 0, 2**32 - 1, integer=True)
    try:
        config.layout()
    except (ValueError, ZeroDivisionError, OverflowError) as e:
        raise TrainArgumentError(f"--width {config.width} gives no valid network: {e}") from None


def check_paths(args):
    """--out and --checkpoint-dir must be usable now, not after hours of training."""
    if args.resume and not args.checkpoint_dir:
        raise TrainArgumentError("--resume needs --checkpoint-dir")
    if args.init_from is not None and not os.path.isfile(args.init_from):
        raise TrainArgumentError(f"--init-from {args.init_from}: no such checkpoint file")
    for path in args.compare_with:
        if not os.path.isfile(path):
            raise TrainArgumentError(f"--compare-with {path}: no such weights file")
    if args.checkpoint_every < 0:
        raise TrainArgumentError(f"--checkpoint-every must be 0 (epochs only) or positive, not {args.checkpoint_every}")
    if args.test_subset < 0:
        raise TrainArgumentError(f"--test-subset must be 0 (all) or positive, not {args.test_subset}")
    if args.checkpoint_dir and os.path.exists(args.checkpoint_dir) and not os.path.isdir(args.checkpoint_dir):
        raise TrainArgumentError(f"--checkpoint-dir {args.checkpoint_dir}: exists and is not a directory")
    if args.out:
        if os.path.isdir(args.out):
            raise TrainArgumentError(f"--out {args.out}: is a directory; give the .npz file to write")
        parent = os.path.dirname(os.path.abspath(args.out))
        try:
            os.makedirs(parent, exist_ok=True)
            with tempfile.TemporaryFile(dir=parent):
                pass
        except OSError as e:
            raise TrainArgumentError(f"--out {args.out}: cannot write into {parent}: {e.strerror or e}") from None


def main(argv=None):
    """``promref train`` on its own: argv are the words after ``train``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return run(build_parser().parse_args(argv), argv)


def run(args, argv):
    """Train as ``args`` say; ``argv`` (the words after ``train``) goes into the model card."""
    from ..data.cifar10 import load_cifar10
    config = TrainConfig(**DEMO) if args.demo else TrainConfig()
    overrides = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__ and v is not None}
    for k, v in overrides.items():
        setattr(config, k, v)
    check_config(config)
    check_paths(args)
    if args.out and config.epochs_qat < 1:
        raise TrainArgumentError("--out writes the integer model of the QAT phase: a float-only run "
                                 "(--epochs-qat 0) has none; start its QAT phase with --init-from")
    if args.init_from is not None and config.epochs_qat < 1:
        raise TrainArgumentError("--init-from starts the QAT phase: it needs --epochs-qat of at least 1")
    *train_data, source = load_cifar10("train", root=args.data, return_source=True)
    test_data = load_cifar10("test", root=args.data)
    images = min(config.train_subset or len(train_data[0]), len(train_data[0]))
    if config.batch_size > images:
        raise TrainArgumentError(f"--batch-size {config.batch_size} is larger than the {images} training images: "
                                 "an epoch would take no step")
    if args.test_subset:
        test_data = (test_data[0][:args.test_subset], test_data[1][:args.test_subset])
    print(f"training {config.arch} (width {config.width}, scheme {config.scheme}) on "
          f"{config.train_subset or len(train_data[0])} images: {config.epochs_float} float + "
          f"{config.epochs_qat} QAT epochs, batch {config.batch_size}, seed {config.seed}", flush=True)
    resumed_after = checkpoint_epochs(args.checkpoint_dir) if args.resume else 0
    keep_freed_memory()  # ~25 % faster steps, the same bits (promref/train/memory.py)
    start = time.time()
    network, history = train(config, tuple(train_data), test_data, args.checkpoint_dir, args.resume,
                             progress=Progress(quiet=args.quiet), init_from=args.init_from,
                             checkpoint_every=args.checkpoint_every)
    wall = time.time() - start
    if config.epochs_qat == 0:  # no QAT phase: no integer model (its QAT phase is forked with --init-from)
        print(f"float network top-1: {100 * history[-1]['test_acc']:.2f}% on {len(test_data[0])} test images "
              f"of {source.name}")
        return 0
    twins = [(os.path.basename(path), load(path)) for path in args.compare_with]  # read before the export's minutes
    dataset = source.name  # "CIFAR-10 (JPEG copy)" for the project's shared copy
    kind = "PROM" if config.scheme == "prom" else "uniform int8"
    model = network.export(f"{kind} MobileNetV2 CIFAR-10 width {config.width}" if config.arch == "mobilenetv2"
                           else f"{kind} demo depthwise-separable net")
    labels = test_data[1].astype(np.int64)
    int_acc, int_pred = evaluate_model(model, *test_data, backend=config.backend, quiet=args.quiet)
    qat_acc = evaluate(network, test_data[0], labels, "qat", config.backend)
    float_pred = None
    if args.init_from:  # the float twin's own predictions, for the paired test
        float_pred = predict(load_float_twin(args.init_from, config), test_data[0], "float", config.backend)
    twin_preds = [(name, evaluate_model(twin, *test_data, backend=config.backend)[1]) for name, twin in twins]
    run = dict(command=user_command(argv), dataset=dataset, history=history, wall_time_s=round(wall, 1),
               resumed_after_epoch=resumed_after, hardware=_hardware(),
               float_phase_from=_portable_path(os.path.abspath(args.init_from), os.path.expanduser("~"),
                                               os.getcwd()) if args.init_from else None)
    card = model_card(model, asdict(config), run, labels, int_pred, float_pred, twin_preds)
    print(f"float network top-1: {100 * card['float_top1']:.2f}%   integer engine top-1: {100 * int_acc:.2f}% "
          f"(QAT forward: {100 * qat_acc:.2f}%) on {len(test_data[0])} test images of {dataset}")
    for test in card["paired_tests"]:
        print(f"McNemar {test['a']} vs {test['b']}: {test['only_a']} vs {test['only_b']} discordant images, "
              f"p = {test['p_value']:.3g}{' (differ)' if test['differ'] else ''}")
    if args.out:
        model.metadata.update(trained=True, float_top1=card["float_top1"], integer_top1=int_acc, dataset=dataset)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        save(model, args.out)
        with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
            json.dump(card, f, indent=1)
        print(f"wrote {args.out} ({os.path.getsize(args.out):,} bytes) and its model card")
    return 0
