"""How often do rounding rules disagree on real MobileNetV2 activations?

For every layer that requantizes (convolutions, the classifier, residual
adds), :func:`measure` takes the layer's int8 inputs from promref's own run
(the model's rounding mode), computes the accumulator once, and requantizes
it with every rule of :mod:`promref.conformance.rounding`; it counts the int8
outputs on which two rules disagree ("per layer": one rounding step apart,
same inputs).  It also runs the whole network once per rule and counts how
many logits and top-1 classes change ("end to end": differences propagate).

    python -m promref.conformance rounding            # 100 ImageNet samples, docs/conformance.md
"""
import glob
import os

import numpy as np

from ..kernels.reference import ACCUMULATE, OPS, requantize_output
from ..kernels.reference.add import add_accumulate
from ..preprocess import preprocess
from .reference import forward_with_rule
from . import rounding as rules

PAIRS = (("single", "double"), ("single", "half_even"), ("double", "half_even"),
         ("single", "float32_half_even"), ("single", "half_away"), ("double", "tosa_double"))
RULE_NAMES = ("single", "double", "half_even", "float32_half_even", "half_away", "tosa_double")
END_TO_END = ("single", "double", "half_even")
SHARED_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           os.pardir, "shared", "data")
DEFAULT_MODELS = (("imagenet", "1.0", "prom"), ("imagenet", "1.0", "int8"))


def default_images():
    """The ImageNet sample JPEGs of ../shared/data (else its demo photos), sorted; [] if absent."""
    for pattern in ("imagenet-samples/*.JPEG", "demo/*.*"):
        found = sorted(glob.glob(os.path.join(SHARED_DATA, pattern)))
        if found:
            return found
    return []


def load_images(model, paths):
    """Preprocess image files to the model's int8 input [N, H, W, 3]."""
    spec = model.input
    return np.stack([preprocess(p, height=spec.height, width=spec.width, resize=spec.resize,
                                resample=spec.resample) for p in paths])


def _empty_stats():
    return {"values": 0, "ties": 0, "differ": {f"{a}|{b}": 0 for a, b in PAIRS}}


def _layer_outputs(layer, inputs, zero_points):
    """{rule: int8 output} of one requantizing layer, and the number of exact ties (single rounding).

    Every output is the reference kernel's own: the accumulator is computed
    once, then requantized as the kernel does, under each rule."""
    if layer.op == "add":
        out = {rule: OPS["add"](*inputs, layer, *zero_points, rules.rule(rule)) for rule in RULE_NAMES}
        acc = add_accumulate(*inputs, layer, *zero_points, "single")
        m, s = layer.multiplier[2], layer.shift[2]
    else:
        acc = ACCUMULATE[layer.op](inputs[0], layer, zero_points[0])
        out = {rule: requantize_output(acc, layer, rules.rule(rule)) for rule in RULE_NAMES}
        m, s = layer.multiplier, layer.shift
    return out, int(rules.exact_ties(acc, m, s).sum())


def measure(model, x, stats=None, batch=8):
    """Accumulate disagreement counts for ``model`` on int8 images ``x`` into ``stats`` (returned).

    stats: {"per_kind": {kind: counts}, "all": counts, "end_to_end": {...}, "images": n}
    """
    stats = stats or {"per_kind": {}, "all": _empty_stats(), "images": 0,
                      "end_to_end": {rule: {"logits_differ": 0, "logits": 0, "top1_differ": 0}
                                     for rule in END_TO_END if rule != model.rounding}}
    for start in range(0, len(x), batch):
        xb = x[start:start + batch]
        tensors = {"input": xb}
        zero_points = {"input": model.input.zero_point}
        for layer in model.layers:
            ins = [tensors[n] for n in layer.inputs]
            zps = [zero_points[n] for n in layer.inputs]
            if layer.op == "global_avgpool":
                tensors[layer.name] = OPS["global_avgpool"](ins[0], layer, zps[0], None)
            else:
                out, ties = _layer_outputs(layer, ins, zps)
                tensors[layer.name] = out[model.rounding]
                for key in (layer.kind, None):
                    group = stats["all"] if key is None else stats["per_kind"].setdefault(key, _empty_stats())
                    group["values"] += int(out["single"].size)
                    group["ties"] += ties
                    for a, b in PAIRS:
                        group["differ"][f"{a}|{b}"] += int(np.sum(out[a] != out[b]))
            zero_points[layer.name] = layer.out_zero_point
        logits = tensors[model.layers[-1].name]
        for rule, e2e in stats["end_to_end"].items():
            other = forward_with_rule(model, xb, rule)[model.layers[-1].name]
            e2e["logits"] += int(logits.size)
            e2e["logits_differ"] += int(np.sum(other != logits))
            e2e["top1_differ"] += int(np.sum(np.argmax(other, axis=1) != np.argmax(logits, axis=1)))
        stats["images"] += len(xb)
    return stats


def measure_models(images, weights=(), configs=None, seed=0, log=None):
    """Measure random models (``configs``: (config, width, scheme) tuples) and weights files on
    image files; returns {model label: stats}."""
    from ..format import load
    from ..synthetic import random_model
    say = log or (lambda message: None)
    models = []
    for config, width, scheme in configs or DEFAULT_MODELS:
        label = f"random_model({config!r}, {float(width)}, {scheme!r}, seed={seed}), rounding 'single'"
        models.append((label, lambda c=config, w=float(width), s=scheme: random_model(c, w, s, seed=seed)))
    for path in weights or ():
        models.append((os.path.basename(path), lambda p=path: load(p)))
    results = {}
    for label, make in models:
        model = make()
        x = load_images(model, images)
        say(f"{label}: {len(x)} images {x.shape[1]}x{x.shape[2]}")
        stats = measure(model, x)
        stats["model"] = model.name
        stats["rounding"] = model.rounding
        results[label] = stats
    return results


def _pct(n, d):
    if not d:
        return "-"
    return "0" if n == 0 else f"{100.0 * n / d:.3g} %"


def format_table(results):
    """Markdown tables of :func:`measure_models` results."""
    lines = []
    header = "| layers | outputs | exact ties | " + " | ".join(f"{a} vs {b}" for a, b in PAIRS) + " |"
    for label, stats in results.items():
        lines += ["", f"**{label}** ({stats['images']} images, reference rounding '{stats['rounding']}')", "",
                  header, "|" + "---|" * (3 + len(PAIRS))]
        groups = list(stats["per_kind"].items()) + [("all", stats["all"])]
        for kind, g in groups:
            cells = [_pct(g["differ"][f"{a}|{b}"], g["values"]) for a, b in PAIRS]
            lines.append(f"| {kind} | {g['values']:,} | {_pct(g['ties'], g['values'])} | " + " | ".join(cells) + " |")
        lines.append("")
        for rule, e2e in stats["end_to_end"].items():
            lines.append(f"end to end with '{rule}' everywhere: {_pct(e2e['logits_differ'], e2e['logits'])} of "
                         f"logits differ, top-1 changes on {e2e['top1_differ']} of {stats['images']} images")
    return "\n".join(lines)
