"""Runs a model's layer list on a backend: int8 images in, int8 logits out.

Data flows one way: each layer reads the tensors it names, writes its own
int8 output, and a tensor is dropped as soon as no later layer reads it
(unless ``trace`` keeps them all).  A backend is an op table
({op name: kernel}); each kernel package exports its own as ``OPS``.

The 'numba' backend runs channel-major (:mod:`promref.kernels.fast`):
the input is converted once to ``[C, N, H, W]``, the layers run on that
layout, and a 1x1 convolution followed by the residual add that alone reads
it runs as one fused kernel (:func:`fusion_plan`).  With ``trace`` nothing is
fused and every traced tensor is converted back to NHWC, so the trace is
the reference's, value for value.
"""
import numpy as np

from . import arith
from .errors import PromrefError, ShapeError
from .kernels import fast, reference

#: backend name -> its kernel package (each exports the op table ``OPS``)
BACKENDS = {"numpy": reference, "numba": fast}


def _check_backend(name):
    if not isinstance(name, str) or name not in BACKENDS:
        raise PromrefError(f"unknown backend {name!r}; expected one of {tuple(BACKENDS)}")


def op_table(name):
    """The op table {op name: kernel} of the backend ``name`` ('numpy' or 'numba')."""
    _check_backend(name)
    return BACKENDS[name].OPS


def check_input(model, x):
    """x must be int8 [N, H, W, 3] with the model's input size; returns it C-contiguous."""
    spec = model.input
    expected = (spec.height, spec.width, 3)
    if not isinstance(x, np.ndarray):
        raise ShapeError(f"model input must be a numpy int8 array [N, {spec.height}, {spec.width}, 3], "
                         f"got {type(x).__name__}")
    if x.dtype != np.int8:
        raise ShapeError(f"model input must have dtype int8 (pixel - 128), got {x.dtype}")
    if x.ndim != 4 or x.shape[1:] != expected or x.shape[0] < 1:
        raise ShapeError(f"model input must have shape [N >= 1, {spec.height}, {spec.width}, 3], got {x.shape}")
    return np.ascontiguousarray(x)


def reader_counts(model):
    """{tensor name: number of layers that read it}.

    A layer that names a tensor twice (``add`` of x and x) reads it once: the
    count is what lets the engine free a tensor after its last reader, however
    many times that reader names it.
    """
    readers = {}
    for layer in model.layers:
        for name in set(layer.inputs):
            readers[name] = readers.get(name, 0) + 1
    return readers


def last_uses(model):
    """{tensor name: index of the last layer that reads it} (buffer lifetimes, e.g. for
    the C export's arena plan; the engine itself frees by :func:`reader_counts`)."""
    last = {}
    for i, layer in enumerate(model.layers):
        for name in layer.inputs:
            last[name] = i
    return last


def fusion_plan(model):
    """{index i of a 1x1 layer: the add layer i + 1 that the fast backend fuses into it}.

    Layer i (a ternary 1x1, or an int8 1x1 stride-1 conv2d) is fused with the
    add right after it when that add is the only reader of its output and adds
    it to another tensor (the residual, computed earlier): the add then happens
    in the 1x1 kernel's epilogue and layer i's output is never stored.
    """
    readers = reader_counts(model)
    plan = {}
    for i, (layer, after) in enumerate(zip(model.layers, model.layers[1:])):
        one_by_one = layer.op == "pointwise_ternary" or (
            layer.op == "conv2d" and layer.kernel == 1 and layer.stride == 1)
        if (one_by_one and after.op == "add" and layer.name in after.inputs and len(set(after.inputs)) == 2
                and readers[layer.name] == 1):
            plan[i] = after
    return plan


def _run_channel_major(model, x, rounding, trace):
    """The 'numba' backend's run: channel-major tensors, fused residual adds unless ``trace``."""
    ops = fast.CHANNEL_MAJOR_OPS
    tensors = {"input": fast.to_channel_major(x)}
    zero_points = {"input": model.input.zero_point}
    unread = reader_counts(model)
    plan = {} if trace else fusion_plan(model)
    layers, i = model.layers, 0
    while i < len(layers):
        layer = layers[i]
        inputs = [tensors[name] for name in layer.inputs]
        zps = [zero_points[name] for name in layer.inputs]
        done = [layer]
        if i in plan:
            add = plan[i]
            residual = next(name for name in add.inputs if name != layer.name)
            table = fast.residual_table(add, layer.out_zero_point, zero_points[residual], rounding,
                                        project_first=add.inputs[0] == layer.name)
            out = fast.FUSED_OPS[layer.op](inputs[0], layer, zps[0], rounding, residual=tensors[residual], table=table)
            done.append(add)
        elif layer.op == "add":
            out = ops["add"](inputs[0], inputs[1], layer, zps[0], zps[1], rounding)
        else:
            out = ops[layer.op](inputs[0], layer, zps[0], rounding)
        tensors[done[-1].name] = out
        zero_points[done[-1].name] = done[-1].out_zero_point
        for name in [name for step in done for name in set(step.inputs) if name != layer.name]:
            unread[name] -= 1
            if not unread[name] and not trace and name != "input":
                del tensors[name]   # its last reader has run
        i += len(done)
    logits = tensors[model.layers[-1].name]
    if trace:
        del tensors["input"]
        return logits, {name: fast.to_nhwc(t) if t.ndim == 4 else t for name, t in tensors.items()}
    return logits


def run(model, x, backend="numba", trace=False, rounding=None):
    """int8 [N, H, W, 3] -> int8 logits [N, classes] (and {name: int8 output} if trace).

    rounding: None runs the model's own mode; a mode name or a rounding rule
    (:func:`promref.arith.rounding_rule`, e.g. a peer's from
    :mod:`promref.conformance.rounding`) runs every requantization under it
    instead.  Rules other than promref's two modes run on the 'numpy' backend only.
    """
    ops = op_table(backend)
    if rounding is None:
        rounding = model.rounding
    try:
        arith.rounding_rule(rounding, modes_only=backend != "numpy")
    except ValueError as error:
        raise PromrefError(f"backend {backend!r}: {error}") from None
    if backend == "numba":
        return _run_channel_major(model, check_input(model, x), rounding, trace)
    tensors = {"input": check_input(model, x)}
    zero_points = {"input": model.input.zero_point}
    unread = reader_counts(model)
    for layer in model.layers:
        inputs = [tensors[name] for name in layer.inputs]
        zps = [zero_points[name] for name in layer.inputs]
        op = ops[layer.op]
        if layer.op == "add":
            out = op(inputs[0], inputs[1], layer, zps[0], zps[1], rounding)
        else:
            out = op(inputs[0], layer, zps[0], rounding)
        tensors[layer.name] = out
        zero_points[layer.name] = layer.out_zero_point
        for name in set(layer.inputs):
            unread[name] -= 1
            if not unread[name] and not trace and name != "input":
                del tensors[name]   # its last reader has run
    logits = tensors[model.layers[-1].name]
    if trace:
        del tensors["input"]
        return logits, tensors
    return logits
