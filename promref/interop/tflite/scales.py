"""Float32 scales from which TFLite's Prepare derives exactly a model's integers.

A ``.tflite`` file stores float32 scales, not multipliers: LiteRT and TFLite
Micro derive each layer's (multiplier, shift) in ``Prepare`` with the
functions of :mod:`.prepare`.  :func:`plan_scales` searches float32 values
that reproduce the model's integers:

* the input and every layer output get one float32 scale each (shared by all
  readers of the tensor, so each is chosen once, by its producer, in order);
* conv / depthwise / 1x1 classifier: with ``s_in`` and ``s_out`` fixed, each
  channel's filter scale ``s_w[c]`` is searched among the float32 values
  around ``real(M, shift) * s_out / s_in`` (and the model's own
  ``weight_scale``) so that ``QuantizeMultiplier((double)s_in * s_w / s_out)``
  gives the model's pair;
* ADD: the input multipliers follow from the two input scales alone (they are
  checked); the output scale is searched for the output multiplier;
* the average pool keeps its input's scale (TFLite requires it).

One float32 ``s_w`` per channel has 24 significant bits and a multiplier 31,
so a multiplier that was not itself derived from float32 scales is hit with
probability about 1/128 per channel: such a model is refused
(:class:`TfliteExportError` naming layer and channel).  :func:`tflite_derived`
makes the explicit alternative: the same model with every multiplier, shift
and clamp re-derived by TFLite's rules from the float32-rounded scales, and
rounding "double" (LiteRT's).
"""
import copy

import numpy as np

from ... import arith
from ...errors import PromrefError
from ...validate import validate
from .prepare import FUSED_ACTIVATIONS, activation_range, add_parameters, conv_multipliers

__all__ = ["TfliteExportError", "ScalePlan", "plan_scales", "tflite_derived", "fused_activation"]

#: float32 neighbours (in ulps, each side) tried around a scale's ideal value
SEARCH_ULPS = 16


class TfliteExportError(PromrefError):
    """The model cannot be written as a .tflite file that LiteRT runs exactly like promref."""


class ScalePlan:
    """float32 scales for the file: ``tensor[name]`` per tensor, ``weight[layer]`` [Cout] per filter."""

    def __init__(self):
        self.tensor, self.weight = {}, {}


def _f32(x):
    return float(np.float32(x))


def _neighbours(value):
    """float32 values within SEARCH_ULPS of ``value`` (nearest first), all positive."""
    centre = np.float32(value)
    out, up, down = [centre], centre, centre
    for _ in range(SEARCH_ULPS):
        up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(0))
        out += [up, down]
    return [float(v) for v in out if np.isfinite(v) and v > 0]


def _conv_pair(s_in, s_w, s_out):
    m, s = conv_multipliers(s_in, [s_w], s_out)
    return int(m[0]), int(s[0])


def _weight_scales(layer, s_in, s_out):
    """float32 s_w [Cout] reproducing every channel's (multiplier, shift), or TfliteExportError."""
    hints = layer.weight_scale if layer.weight_scale is not None else [None] * len(layer.multiplier)
    found = []
    for c, (m, s, hint) in enumerate(zip(layer.multiplier.tolist(), layer.shift.tolist(), hints)):
        if m == 0:
            raise TfliteExportError(f"layer {layer.name!r} channel {c}: multiplier 0 has no TFLite scale")
        ideal = float(arith.multiplier_to_real(m, s)) * s_out / s_in
        candidates = ([] if hint is None else [_f32(hint)]) + _neighbours(ideal)
        match = next((w for w in candidates if _conv_pair(s_in, w, s_out) == (m, s)), None)
        if match is None:
            raise TfliteExportError(
                f"layer {layer.name!r} channel {c}: no float32 filter scale makes TFLite derive multiplier "
                f"{m}, shift {s} (input scale {s_in!r}, output scale {s_out!r}); the multipliers were not "
                "derived from float32 scales: export the explicit TFLite-derived variant instead "
                "(promref export tflite --tflite-derived)")
        found.append(match)
    return np.array(found, np.float32)


def _add_output_scale(layer, s_a, s_b):
    """float32 output scale of an ADD reproducing all three of its pairs, or TfliteExportError."""
    if layer.left_shift != arith.ADD_LEFT_SHIFT:
        raise TfliteExportError(f"layer {layer.name!r}: TFLite's ADD uses left shift {arith.ADD_LEFT_SHIFT}, "
                                f"the model {layer.left_shift}")
    target = list(zip(layer.multiplier.tolist(), layer.shift.tolist()))
    twice_max = 2.0 * max(s_a, s_b)
    ideal = twice_max / ((1 << arith.ADD_LEFT_SHIFT) * float(arith.multiplier_to_real(*target[2])))
    for s_out in [_f32(layer.out_scale)] + _neighbours(ideal):
        _, m, s = add_parameters(s_a, s_b, s_out)
        got = list(zip(m.tolist(), s.tolist()))
        if got[:2] != target[:2]:
            raise TfliteExportError(
                f"layer {layer.name!r}: TFLite derives the input multipliers {got[:2]} from the input scales "
                f"{s_a!r}, {s_b!r}; the model has {target[:2]} (use the TFLite-derived variant)")
        if got[2] == target[2]:
            return s_out
    raise TfliteExportError(f"layer {layer.name!r}: no float32 output scale makes TFLite derive the output "
                            f"multiplier {target[2]} (use the TFLite-derived variant)")


def plan_scales(model):
    """float32 scales for every tensor and filter of ``model`` -> :class:`ScalePlan` (or TfliteExportError)."""
    plan = ScalePlan()
    plan.tensor["input"] = _f32(model.input.scale)
    for layer in model.layers:
        if layer.op == "global_avgpool":
            plan.tensor[layer.name] = plan.tensor[layer.inputs[0]]
        elif layer.op == "add":
            s_a, s_b = (plan.tensor[i] for i in layer.inputs)
            plan.tensor[layer.name] = _add_output_scale(layer, s_a, s_b)
        else:
            s_in, s_out = plan.tensor[layer.inputs[0]], _f32(layer.out_scale)
            if not s_out > 0:
                raise TfliteExportError(f"layer {layer.name!r}: output scale {layer.out_scale!r} is not positive")
            plan.weight[layer.name] = _weight_scales(layer, s_in, s_out)
            plan.tensor[layer.name] = s_out
    return plan


def fused_activation(layer, scale):
    """The TFLite fused activation whose clamp at ``scale`` is the layer's [out_min, out_max], or None."""
    for name in FUSED_ACTIVATIONS:
        if activation_range(name, scale, layer.out_zero_point, -128, 127) == (layer.out_min, layer.out_max):
            return name
    return None


def _nearest_activation(layer, scale):
    """(name, lo, hi) of the fused activation whose TFLite clamp is closest to the layer's."""
    def distance(name):
        lo, hi = activation_range(name, scale, layer.out_zero_point, -128, 127)
        return abs(lo - layer.out_min) + abs(hi - layer.out_max)
    name = min(FUSED_ACTIVATIONS, key=distance)
    return (name, *activation_range(name, scale, layer.out_zero_point, -128, 127))


def tflite_derived(model):
    """The "TFLite-derived" twin of ``model`` -> (Model, number of layers whose integers changed).

    Every scale is rounded to float32; each multiplier and shift is the one TFLite
    derives from those scales (:func:`.prepare.conv_multipliers`,
    :func:`.prepare.add_parameters`); a clamp no fused activation expresses
    becomes the nearest one's; rounding becomes "double".  Weights, biases and
    zero points are unchanged.  The twin exports exactly (:func:`plan_scales`
    succeeds on it).
    """
    twin = copy.deepcopy(model)
    twin.rounding = "double"
    twin.input.scale = _f32(model.input.scale)
    scales, changed = {"input": twin.input.scale}, 0
    for layer in twin.layers:
        before = (layer.multiplier, layer.shift, layer.out_min, layer.out_max)
        s_in = scales[layer.inputs[0]]
        if layer.op == "global_avgpool":
            layer.out_scale = s_in
        elif layer.op == "add":
            layer.out_scale = _f32(layer.out_scale)
            _, layer.multiplier, layer.shift = add_parameters(s_in, scales[layer.inputs[1]], layer.out_scale)
        else:
            layer.out_scale = _f32(layer.out_scale)
            if layer.weight_scale is None:  # recover filter scales from the integers
                reals = arith.multiplier_to_real(layer.multiplier, layer.shift)
                layer.weight_scale = (reals * layer.out_scale / s_in).astype(np.float32)
            layer.weight_scale = np.asarray(layer.weight_scale, np.float32)
            layer.multiplier, layer.shift = conv_multipliers(s_in, layer.weight_scale, layer.out_scale)
        if layer.op != "global_avgpool" and fused_activation(layer, layer.out_scale) is None:
            _, layer.out_min, layer.out_max = _nearest_activation(layer, layer.out_scale)
        scales[layer.name] = layer.out_scale
        layer.cache.clear()
        after = (layer.multiplier, layer.shift, layer.out_min, layer.out_max)
        changed += any(not np.array_equal(a, b) for a, b in zip(before, after))
    twin.metadata = dict(twin.metadata, tflite_derived={
        "source": model.name, "source_rounding": model.rounding, "layers_changed": changed,
        "rule": "scales rounded to float32; multipliers, shifts and clamps derived as TFLite's Prepare does"})
    return validate(twin), changed
