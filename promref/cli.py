"""The ``promref`` command line (also ``python -m promref``).

    promref demo [--weights W] [--image I]       classify a photo (the README's main job)
    promref infer WEIGHTS IMAGE... [--topk K]    top-k predictions per image (WEIGHTS: a file or
                                                 a registered name such as mbv2_prom)
    promref inspect WEIGHTS                      per-layer table: kind, shapes, format, bytes, ops
    promref evaluate WEIGHTS [OTHER] [--data DIR]  CIFAR-10 test top-1 with its 95 % interval, checked
                                                 against the model card; OTHER: McNemar's paired test
    promref random-model OUT.npz [--config ...]  write an untrained, calibrated model
    promref energy ...                           energy and storage report (see docs/energy.md)
    promref train ...                            QAT training on CIFAR-10
    promref conformance generate|check ...       golden vectors and the checker (docs/conformance.md)
    promref export tflite WEIGHTS OUT.tflite     a .tflite file LiteRT / TFLite Micro run bit for bit (docs/deploy.md)
    promref export tosa WEIGHTS OUT              a TOSA flatbuffer the TOSA reference model runs bit for bit (docs/deploy.md)
    promref export c WEIGHTS OUTDIR              a standalone C99 library of the network (docs/deploy.md)
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

from . import __version__
from .api import infer, predict
from . import limits
from .errors import PromrefError
from .fileio import loads_json, output_file, read_regular
from .format import load, save
from .model import tensor_shapes
from .registry import DEFAULT_MODEL, card_path, model_path, resolve


def _print_predictions(title, predictions):
    print(title)
    for rank, p in enumerate(predictions, 1):
        print(f"  {rank}. {p.label:<24s} p={p.probability:.4f}  logit={p.logit:4d}  (class {p.index})")


def cmd_infer(args):
    model = load(resolve(args.weights))
    results = {}
    for image in args.images:
        preds = infer(model, image, topk=args.topk, backend=args.backend)
        results[image] = [p._asdict() for p in preds]
        if not args.json:
            _print_predictions(image, preds)
    if args.json:
        print(json.dumps(results, indent=1, allow_nan=False))  # the softmax scale range keeps it finite
    return 0


def _layer_bytes(layer):
    """Bytes the layer's weights take in the file (ternary packed at 2 bits)."""
    if layer.weights is None:
        return 0
    return (layer.weights.size + 3) // 4 if layer.op == "pointwise_ternary" else layer.weights.size


def cmd_inspect(args):
    from .energy import layer_op_rows
    args.weights = resolve(args.weights)
    model = load(args.weights)
    shapes = tensor_shapes(model)
    ops = {row["name"]: row for row in layer_op_rows(model)}
    print(f"{model.name}\n  file: {args.weights} ({os.path.getsize(args.weights):,} bytes)   "
          f"rounding: {model.rounding}   input: {model.input.height}x{model.input.width}x3 "
          f"(scale {model.input.scale:.6g}, zero point {model.input.zero_point})   classes: {model.num_classes}")
    header = (f"{'layer':<14s} {'kind':<10s} {'op':<18s} {'weights':<8s} {'input':>14s} {'output':>14s} "
              f"{'w bytes':>9s} {'MACs':>12s} {'mults':>12s} {'adds':>12s}")
    print(header)
    print("-" * len(header))
    total = dict(bytes=0, macs=0, mults=0, adds=0)
    for layer in model.layers:
        row = ops.get(layer.name, {})
        nbytes = _layer_bytes(layer)
        values = dict(bytes=nbytes, macs=row.get("macs", 0), mults=row.get("multiplications", 0),
                      adds=row.get("additions", 0))
        for k in total:
            total[k] += values[k]
        shape_in = "x".join(map(str, shapes[layer.inputs[0]]))
        shape_out = "x".join(map(str, shapes[layer.name]))
        print(f"{layer.name:<14s} {layer.kind:<10s} {layer.op:<18s} {layer.weight_format:<8s} {shape_in:>14s} "
              f"{shape_out:>14s} {values['bytes']:>9,d} {values['macs']:>12,d} {values['mults']:>12,d} "
              f"{values['adds']:>12,d}")
    print("-" * len(header))
    print(f"{'total':<84s} {total['bytes']:>9,d} {total['macs']:>12,d} {total['mults']:>12,d} {total['adds']:>12,d}")
    return 0


def _cifar10_model(weights):
    from .errors import ShapeError
    model = load(weights)
    if model.num_classes != 10:
        raise ShapeError(f"{weights}: a CIFAR-10 model has 10 classes, this one has {model.num_classes}")
    return model


def _evaluate_one(model, images, labels, source, args):
    """Evaluate one model: prints its top-1 with a 95 % interval -> (accuracy, predictions)."""
    from .evaluate import evaluate_model
    from .stats import accuracy_interval, format_interval
    start = time.perf_counter()
    accuracy, predictions = evaluate_model(model, images, labels, backend=args.backend, quiet=args.quiet)
    seconds = time.perf_counter() - start
    correct = int((predictions == labels).sum())
    print(f"{model.name}\n  integer top-1 on {len(images):,} test images of {source.name}: {100 * accuracy:.2f}% "
          f"({correct:,} correct; {args.backend}, {seconds:.1f} s)\n"
          f"  {format_interval(accuracy_interval(correct, len(images)))}")
    return accuracy, predictions


def cmd_evaluate(args):
    from .data.cifar10 import load_cifar10
    from .evaluate import compare_with_card
    from .stats import mcnemar
    if args.limit < 0:
        raise PromrefError(f"--limit must be 0 (all) or a positive image count, not {args.limit}")
    args.weights = resolve(args.weights)
    models = [_cifar10_model(args.weights)] + ([_cifar10_model(resolve(args.other))] if args.other else [])
    images, labels, source = load_cifar10("test", root=args.data, return_source=True)
    if args.limit:
        images, labels = images[:args.limit], labels[:args.limit]
    accuracy, predictions = _evaluate_one(models[0], images, labels, source, args)
    if args.other:
        _, other = _evaluate_one(models[1], images, labels, source, args)
        test = mcnemar(predictions, other, labels)
        print(f"paired on the same {len(images):,} images: only the first right on {test.only_a:,}, only the "
              f"second on {test.only_b:,} (both {test.both:,}, neither {test.neither:,}); exact McNemar "
              f"test (binomial, two-sided) p = {test.p_value:.4g}")
    card_file = args.card or card_path(args.weights)
    if args.card is None and not os.path.exists(card_file):
        return 0
    try:
        card = loads_json(read_regular(card_file, PromrefError, "model card", max_bytes=limits.MAX_META_BYTES))
    except ValueError as e:  # PromrefError included: bounded size and depth, strict JSON
        raise PromrefError(f"{card_file}: cannot read the model card: {e}") from None
    same, message = compare_with_card(card, accuracy, len(images), source.name)
    print(f"  model card (first weights): {message[len('model card: '):]}" if args.other else f"  {message}")
    return 1 if same is False else 0


def cmd_random_model(args):
    from .synthetic import random_model
    if not (math.isfinite(args.width) and 0 < args.width <= 4):
        raise PromrefError(f"--width must be a number in (0, 4], not {args.width}")
    if not 0 <= args.seed < 2**32:
        raise PromrefError(f"--seed must be an integer in [0, 2**32 - 1], not {args.seed}")
    output_file(args.out, PromrefError, ".npz file")
    model = random_model(args.config, args.width, args.scheme, seed=args.seed, rounding=args.rounding)
    save(model, args.out)
    print(f"wrote {args.out}: {model.name} ({os.path.getsize(args.out):,} bytes)")
    return 0


def _demo_image(path):
    if path:
        return path, path
    try:
        from skimage import data  # a CC0 photo that ships inside the scikit-image wheel
    except ImportError:
        raise PromrefError("no --image given and scikit-image is not installed "
                           "(pip install 'promref[demo]' brings its sample photos)") from None
    return data.chelsea(), "scikit-image's chelsea.png (a cat)"


def cmd_demo(args):
    try:
        weights = resolve(args.weights) if args.weights else model_path(DEFAULT_MODEL)
    except PromrefError as e:  # only the default can be missing: a packaging fault, said loudly
        weights = None
        print(f"WARNING: {e}", file=sys.stderr)
    if weights is not None:
        model = load(weights)
        print(f"weights: {weights} ({os.path.getsize(weights):,} bytes) - {model.name}")
    else:
        from .synthetic import random_model
        model = random_model("cifar", 1.0, "prom", seed=0)
        print(f"weights: {DEFAULT_MODEL} not found; using an UNTRAINED random PROM MobileNetV2 (CIFAR config, "
              "width 1.0).\nIts predictions are meaningless: this only shows the integer engine running end to end.")
    image, name = _demo_image(args.image)
    spec = model.input
    from .preprocess import preprocess
    x = preprocess(image, height=spec.height, width=spec.width, resize=spec.resize, resample=spec.resample)[None]
    ternary = sum(layer.op == "pointwise_ternary" for layer in model.layers)
    print(f"model: {len(model.layers)} layers ({ternary} ternary pointwise), rounding '{model.rounding}'")
    outputs = {}
    for backend in ("numpy", "numba"):
        logits, trace = model.forward(x, backend=backend, trace=True)  # warm-up: numba compiles here
        times = []
        for _ in range(3):
            start = time.perf_counter()
            model.forward(x, backend=backend)
            times.append(time.perf_counter() - start)
        outputs[backend] = (logits, trace, sorted(times)[1])  # the median of three runs
    (_, ref_trace, ref_time), (fast_logits, fast_trace, fast_time) = outputs["numpy"], outputs["numba"]
    same = all(np.array_equal(ref_trace[k], fast_trace[k]) for k in ref_trace)
    _print_predictions(f"image: {name}", predict(model, fast_logits[0], topk=args.topk))
    print(f"numpy reference {ref_time * 1e3:.1f} ms, numba {fast_time * 1e3:.1f} ms; "
          f"all {len(ref_trace)} int8 layer outputs bit-identical: {'yes' if same else 'NO'}")
    return 0 if same else 1


def build_parser():
    parser = argparse.ArgumentParser(prog="promref", description="Integer-exact PROM MobileNetV2 reference.")
    parser.add_argument("--version", action="version", version=f"promref {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="classify a photo with the shipped weights (the README's main job)")
    p.add_argument("--weights", help=f"weights file or registered model name (default: {DEFAULT_MODEL})")
    p.add_argument("--image", help="image file (default: scikit-image's chelsea cat photo)")
    p.add_argument("--topk", type=int, default=5)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("infer", help="classify images")
    p.add_argument("weights", help="a weights file or a registered model name (mbv2_prom)")
    p.add_argument("images", nargs="+")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--backend", choices=("numba", "numpy"), default="numba")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_infer)

    p = sub.add_parser("inspect", help="per-layer table of a weights file")
    p.add_argument("weights")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("evaluate", help="CIFAR-10 test top-1 of a model with its 95%% interval, checked against "
                                        "its model card; with two models, McNemar's paired test")
    p.add_argument("weights", help="a weights file or a registered model name (mbv2_prom)")
    p.add_argument("other", nargs="?", help="a second weights file: both on the same images, McNemar's exact test")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--data", help="CIFAR-10 root (else $PROMREF_CIFAR10 or ~/.cache/promref/cifar10)")
    p.add_argument("--backend", choices=("numba", "numpy"), default="numba")
    p.add_argument("--limit", type=int, default=0, help="only the first N test images (0: all)")
    p.add_argument("--card", help="model card to compare with (default: WEIGHTS with .json, when it exists)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("random-model", help="write an untrained, calibrated random model")
    p.add_argument("out")
    p.add_argument("--config", choices=("cifar", "imagenet"), default="cifar")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--scheme", choices=("prom", "int8"), default="prom")
    p.add_argument("--rounding", choices=("single", "double"), default="single")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_random_model)

    export = sub.add_parser("export", help="write a model for another runtime (docs/deploy.md)")
    export_sub = export.add_subparsers(dest="runtime", required=True)
    from .interop.c.cli import register as register_c
    from .interop.tflite.cli import register as register_tflite
    from .interop.tosa.cli import register as register_tosa  # imports nothing of tosa-tools until run
    register_c(export_sub)
    register_tflite(export_sub)
    register_tosa(export_sub)

    from .conformance.cli import register as register_conformance
    from .energy.cli import register as register_energy
    from .train.cli import register as register_train
    register_energy(sub)
    register_conformance(sub)
    register_train(sub)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_words = argv  # what was typed, for the records that keep it (the training card's command)
    runner = lambda: args.func(args)  # noqa: E731
    try:
        return runner()
    except PromrefError as e:
        print(f"promref: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an unwritable, missing or directory output path
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"promref: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except RecursionError:
        print("promref: error: input nested too deeply", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
