"""Runs a model's layer list on a backend: int8 images in, int8 logits out.

Data flows one way: each layer reads the tensors it names, writes its own
int8 output, and a tensor is dropped as soon as no later layer reads it
(unless ``trace`` keeps them all).
"""
import importlib

import numpy as np

from .errors import PromrefError, ShapeError

BACKENDS = {"numpy": "promref.kernels.reference", "numba": "promref.kernels.fast"}


def get_backend(name):
    """The kernel module called ``name`` ('numpy' or 'numba')."""
    if name not in BACKENDS:
        raise PromrefError(f"unknown backend {name!r}; expected one of {tuple(BACKENDS)}")
    return importlib.import_module(BACKENDS[name])


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


def last_uses(model):
    """{tensor name: index of the last layer that reads it}."""
    last = {}
    for i, layer in enumerate(model.layers):
        for name in layer.inputs:
            last[name] = i
    return last


def run(model, x, backend="numba", trace=False):
    """int8 [N, H, W, 3] -> int8 logits [N, classes] (and {name: int8 output} if trace)."""
    kernels = get_backend(backend)
    tensors = {"input": check_input(model, x)}
    zero_points = {"input": model.input.zero_point}
    last = last_uses(model)
    for i, layer in enumerate(model.layers):
        inputs = [tensors[name] for name in layer.inputs]
        zps = [zero_points[name] for name in layer.inputs]
        op = getattr(kernels, layer.op)
        if layer.op == "add":
            out = op(inputs[0], inputs[1], layer, zps[0], zps[1], model.rounding)
        else:
            out = op(inputs[0], layer, zps[0], model.rounding)
        tensors[layer.name] = out
        zero_points[layer.name] = layer.out_zero_point
        if not trace:
            for name in layer.inputs:
                if last[name] == i and name != "input":
                    del tensors[name]
    logits = tensors[model.layers[-1].name]
    if trace:
        del tensors["input"]
        return logits, tensors
    return logits
