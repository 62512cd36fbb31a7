"""Runs a model's layer list on a backend: int8 images in, int8 logits out.

Data flows one way: each layer reads the tensors it names, writes its own
int8 output, and a tensor is dropped as soon as no later layer reads it
(unless ``trace`` keeps them all).  A backend is an op table
({op name: kernel}); each kernel package exports its own as ``OPS``.
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


def get_backend(name):
    """The kernel package of the backend ``name`` (its op table is ``.OPS``; prefer :func:`op_table`)."""
    _check_backend(name)
    return BACKENDS[name]


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
