"""Write the golden-vector suite: ``generate(outdir)``.

Layout of a suite directory (docs/conformance.md is the full specification)::

    manifest.json                       every case: op, params, rounding, tensors
    ops/<op>/<case>/<tensor>.npy        per-op cases: inputs and the expected "y"
    models/<case>/weights.npz           full-model cases: the promref weights file
    models/<case>/x.npy                 the int8 input images [N, H, W, 3]
    models/<case>/<layer>.npy           every layer's expected int8 output

Every expected tensor is computed by promref's NumPy reference kernels
(:func:`promref.conformance.reference.reference_implementation`).
"""
import json
import os
import shutil
import tempfile
import zipfile

import numpy as np

from .. import __version__
from ..format import load, save
from ..progress import bar
from ..registry import DEFAULT_MODEL, available, model_path
from ..synthetic import random_model
from . import rounding as rules
from .cases import op_cases
from ..kernels.reference import ACCUMULATE
from ..kernels.reference.add import add_accumulate, add_centred_inputs
from .reference import forward_with_rule, make_layer, reference_implementation, RuleImplementation
from .suite import MANIFEST, SUITE_FORMAT, SUITE_VERSION, check_manifest, sha256_file, write_npy

#: the shipped model's weights file, None where this installation lacks it (promref/registry.py)
SHIPPED_WEIGHTS = model_path(DEFAULT_MODEL) if DEFAULT_MODEL in available() else None

#: the default random models: (config, width, scheme, rounding); small and fast
DEFAULT_RANDOM_MODELS = (
    ("cifar", 0.1, "prom", "single"),
    ("cifar", 0.1, "prom", "double"),
    ("cifar", 0.1, "int8", "single"),
    ("cifar", 0.1, "int8", "double"),
)
RANDOM_MODEL_SEED = 0
IMAGE_SEED = 1234
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


# ------------------------------------------------------------------ helpers


def _tensor_entry(suite_dir, rel, name, array, **extra):
    path = os.path.join(suite_dir, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    entry = {"name": name, "file": rel.replace(os.sep, "/")}
    entry.update(write_npy(path, array))
    entry.update(extra)
    return entry


def _requant_stages(op, inputs, params, rounding):
    """[(acc, multiplier, shift)] of every requantization a case performs (int64), and the final
    pre-clamp values ``zp + scale(acc)`` under ``rounding``."""
    if op == "requantize":
        stages = [(inputs["acc"].astype(np.int64), inputs["multiplier"], inputs["shift"])]
    elif op == "add":
        m, s = inputs["multiplier"], inputs["shift"]
        layer, zero_points = make_layer(op, inputs, params), (params["a_zero_point"], params["b_zero_point"])
        a, b = add_centred_inputs(inputs["a"], inputs["b"], layer, *zero_points)
        total = add_accumulate(inputs["a"], inputs["b"], layer, *zero_points, rounding)
        stages = [(a, m[0], s[0]), (b, m[1], s[1]), (total, m[2], s[2])]
    elif op in ACCUMULATE:
        layer = make_layer(op, inputs, params)
        stages = [(ACCUMULATE[op](inputs["x"], layer, params["in_zero_point"]), inputs["multiplier"],
                   inputs["shift"])]
    else:
        return [], None
    acc, m, s = stages[-1]
    return stages, rules.scale(rounding, acc, m, s) + params["out_zero_point"]


def _op_coverage(spec, expected):
    """What a case exercises: ties, saturation, and how many outputs each rounding rule would change."""
    op, params, rounding = spec["op"], spec["params"], spec["rounding"]
    inputs = dict(spec["inputs"])
    y = expected["y"]
    coverage = {"values": int(y.size)}
    if op == "global_avgpool":
        x = inputs["x"].astype(np.int64)
        total = x.sum(axis=(1, 2))
        count = x.shape[1] * x.shape[2]
        coverage["ties"] = int(np.sum((2 * np.abs(total)) % (2 * count) == count))
        return coverage
    stages, pre = _requant_stages(op, inputs, params, rounding)
    tie_rule = rules.exact_ties if rounding == "single" else rules.double_rounding_ties
    coverage["ties"] = int(sum(np.sum(tie_rule(acc, m, s)) for acc, m, s in stages))
    coverage["saturated_low"] = int(np.sum(pre < params["out_min"]))
    coverage["saturated_high"] = int(np.sum(pre > params["out_max"]))
    coverage["differs_under"] = {
        rule: int(np.sum(RuleImplementation(rule)(op, inputs, dict(params, rounding=rounding))["y"] != y))
        for rule in rules.RULES}
    return coverage


def _normalized_zip(src, dst):
    """Copy the .npz at ``src`` to ``dst`` with fixed timestamps, so equal models give equal bytes."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            info = zipfile.ZipInfo(item.filename, date_time=FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zout.writestr(info, zin.read(item.filename))


def model_inputs(model, count, seed=IMAGE_SEED):
    """``count`` deterministic int8 images [count, H, W, 3] for a model.

    Image 0 is uniform noise; image 1 a smooth colour ramp with saturated
    (-128 / 127) blocks; further images are noise again.
    """
    h, w = model.input.height, model.input.width
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        if i == 1:
            yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
            img = np.stack([(yy * 255) // max(h - 1, 1), (xx * 255) // max(w - 1, 1),
                            ((yy + xx) * 255) // max(h + w - 2, 1)], axis=-1) - 128
            img[: h // 4, : w // 4] = 127
            img[-(h // 4):, -(w // 4):] = -128
            images.append(img.astype(np.int8))
        else:
            images.append(rng.integers(-128, 128, size=(h, w, 3)).astype(np.int8))
    return np.stack(images)


# ------------------------------------------------------------------ cases


def _write_op_case(suite_dir, spec):
    base = f"ops/{spec['id']}"
    arrays = dict(spec["inputs"])
    params = dict(spec["params"], rounding=spec["rounding"])
    expected = reference_implementation(spec["op"], arrays, params)
    return {
        "id": spec["id"],
        "kind": "op",
        "op": spec["op"],
        "rounding": spec["rounding"],
        "description": spec["description"],
        "params": spec["params"],
        "inputs": [_tensor_entry(suite_dir, f"{base}/{name}.npy", name, a) for name, a in spec["inputs"]],
        "outputs": [_tensor_entry(suite_dir, f"{base}/{name}.npy", name, a) for name, a in expected.items()],
        "coverage": _op_coverage(spec, expected),
    }


def _write_model_case(suite_dir, case_name, weights_path, description, images, coverage_rules):
    base = f"models/{case_name}"
    os.makedirs(os.path.join(suite_dir, base), exist_ok=True)
    rel_weights = f"{base}/weights.npz"
    model = load(weights_path)
    x = model_inputs(model, images)
    dst = os.path.join(suite_dir, rel_weights)
    expected = reference_implementation("model", {"x": x}, {"weights": dst, "rounding": model.rounding})
    outputs = []
    for layer in model.layers:
        outputs.append(_tensor_entry(suite_dir, f"{base}/{layer.name}.npy", layer.name, expected[layer.name],
                                     op=layer.op, layer_kind=layer.kind, layer_inputs=list(layer.inputs)))
    differs = {}
    for rule in coverage_rules:
        trace = forward_with_rule(model, x, rule)
        differs[rule] = int(sum(np.sum(trace[n] != expected[n]) for n in expected))
    return {
        "id": f"model/{case_name}",
        "kind": "model",
        "op": "model",
        "rounding": model.rounding,
        "description": description,
        "params": {},
        "weights": {"file": rel_weights, "sha256": sha256_file(dst), "bytes": os.path.getsize(dst)},
        "model": {"name": model.name, "arch": model.arch, "layers": len(model.layers),
                  "input": {"height": model.input.height, "width": model.input.width,
                            "zero_point": model.input.zero_point},
                  "classes": model.num_classes},
        "inputs": [_tensor_entry(suite_dir, f"{base}/x.npy", "x", x)],
        "outputs": outputs,
        "coverage": {"values": int(sum(v.size for v in expected.values())), "differs_under": differs},
    }


def _unique(name, taken):
    out, i = name, 2
    while out in taken:
        out, i = f"{name}_{i}", i + 1
    taken.add(out)
    return out


def generate(outdir, weights=None, include_shipped=True, random_models=DEFAULT_RANDOM_MODELS,
             model_images=2, shipped_images=1, overwrite=False, log=None, quiet=True):
    """Write the conformance suite into ``outdir``; returns the manifest (a dict).

    weights: extra promref weights files to add as full-model cases;
    include_shipped: also add the shipped ``mbv2_prom`` (weights/mbv2_prom.npz) when it exists;
    random_models: (config, width, scheme, rounding) tuples of random models;
    model_images / shipped_images: input images per random / weights-file model.
    ``outdir`` must be empty or absent unless ``overwrite``; quiet=False: a progress bar on
    a terminal (over the op cases, then the model cases).
    """
    outdir = os.fspath(outdir)
    if os.path.isdir(outdir) and os.listdir(outdir):
        if not overwrite:
            raise FileExistsError(f"{outdir} is not empty (use overwrite=True / --force)")
        for sub in ("ops", "models", MANIFEST):
            target = os.path.join(outdir, sub)
            if os.path.isdir(target):
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.remove(target)
    os.makedirs(outdir, exist_ok=True)
    say = log or (lambda message: None)
    cases = []
    specs = list(op_cases())
    for spec in bar(None, "conformance op cases", unit="case", quiet=quiet, iterable=specs):
        cases.append(_write_op_case(outdir, spec))
    say(f"{len(cases)} op cases")

    taken = set()
    model_rules = ("single", "double", "half_even")
    with tempfile.TemporaryDirectory(prefix="promref-suite-") as tmp:
        for config, width, scheme, rounding in random_models:
            name = _unique(f"random_{config}_w{width:g}_{scheme}_{rounding}", taken)
            model = random_model(config, width, scheme, seed=RANDOM_MODEL_SEED, rounding=rounding)
            raw = os.path.join(tmp, f"{name}.npz")
            save(model, raw)
            os.makedirs(os.path.join(outdir, "models", name), exist_ok=True)
            _normalized_zip(raw, os.path.join(outdir, "models", name, "weights.npz"))
            cases.append(_write_model_case(
                outdir, name, os.path.join(outdir, "models", name, "weights.npz"),
                f"random_model({config!r}, {width}, {scheme!r}, seed={RANDOM_MODEL_SEED}, rounding={rounding!r}) "
                f"(untrained), {model_images} images, every layer's output", model_images, model_rules))
            say(f"model case {name}")
        files = list(weights or [])
        if include_shipped and SHIPPED_WEIGHTS and SHIPPED_WEIGHTS not in files:
            files.insert(0, SHIPPED_WEIGHTS)
        for path in files:
            stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
            name = _unique(stem, taken)
            os.makedirs(os.path.join(outdir, "models", name), exist_ok=True)
            dst = os.path.join(outdir, "models", name, "weights.npz")
            shutil.copyfile(path, dst)
            cases.append(_write_model_case(outdir, name, dst,
                                           f"weights file {os.path.basename(os.fspath(path))}, "
                                           f"{shipped_images} image(s), every layer's output",
                                           shipped_images, model_rules))
            say(f"model case {name}")

    manifest = {
        "format": SUITE_FORMAT,
        "format_version": SUITE_VERSION,
        "generator": f"promref {__version__}",
        "arrays": "NumPy .npy version 1.0, little-endian, C order; values start at data_offset",
        "rounding_modes": {"single": "one rounding, ties towards +infinity: (acc*M + 2**(30-shift)) >> (31-shift)",
                           "double": "SaturatingRoundingDoublingHighMul (ties towards +infinity) then "
                                     "RoundingDivideByPOT (ties away from zero): TFLite's reference kernels"},
        "ops": sorted({c["op"] for c in cases}),
        "cases": cases,
    }
    check_manifest(manifest, outdir)
    with open(os.path.join(outdir, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    return manifest
