"""Count the operations the NumPy reference kernels actually perform.

:func:`count_reference_ops` runs a real forward pass through
:func:`promref.engine.run` on the ``numpy`` backend, with two temporary
changes, undone on exit and made without touching a kernel's source:

* each kernel function of :mod:`promref.kernels.reference` is wrapped so that
  its activations (and the layer's weights and bias) reach it as a
  :class:`CountingArray`, an ndarray subclass whose ``__array_ufunc__`` counts
  every element operation (``add``, ``subtract``, ``multiply``,
  ``left_shift``, ...) by ufunc and dtype, and which layer ran it;
* :func:`promref.arith.requantize`, :func:`~promref.arith.scale_by_mode` and
  :func:`~promref.arith.global_average` are wrapped to count one
  *requantization*, *rescale* or *average* per element (their internals --
  multiply, rounding shift, zero point, clamp -- are one step each).

Counting rules (how a NumPy call becomes operations):

* an element-wise ufunc: one operation per output element;
* ``a @ b`` with inner size ``k``: ``k`` multiplications and ``k - 1``
  additions per output element;
* ``x.sum(axis)`` over ``k`` elements: ``k - 1`` additions per output (none
  for an empty selection, whose sum is 0);
* operations whose operands are all weights (the layer's weights or bias,
  or arrays computed from them alone) are *not* counted: they do not depend
  on the image (folding a zero point into a bias, centring weights) and a
  real implementation does them once, at load time.  Arrays of unknown origin
  (plain ndarrays inside a kernel) count as data.

Array functions are passed through only if they move data without
arithmetic (``np.pad``, ``np.broadcast_to``, ...); any other raises
:class:`TypeError`, so a kernel that starts using, say, ``np.einsum`` fails
loudly instead of going uncounted.

The patches are process-global while the ``with counting()`` block runs: do
not run other promref inference on other threads meanwhile.
"""
import contextlib
import copy
import functools
import threading
from collections import Counter, defaultdict

import numpy as np

from .. import arith
from ..engine import run
from ..kernels import reference as reference_kernels

_LOCK = threading.Lock()
_ACTIVE = None   # the _Tally of the running measurement


class _Tally:
    def __init__(self):
        self.by_layer = defaultdict(Counter)
        self.layer = None
        self.paused = 0

    def record(self, key, n):
        if self.paused or self.layer is None:
            return
        self.by_layer[self.layer][key] += int(n)


def _record(key, n):
    if _ACTIVE is not None:
        _ACTIVE.record(key, n)


class CountingArray(np.ndarray):
    """An ndarray whose element operations are counted while :func:`counting` is active.

    ``_data`` says whether the values depend on the image (True) or only on
    the weights (False); only operations with a data operand are counted.
    """
    _data = True

    def __array_finalize__(self, obj):
        self._data = getattr(obj, "_data", True)

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        data = any(_is_data(x) for x in inputs)
        args = [_plain(x) for x in inputs]
        if out is not None:
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*args, **kwargs)
        if data:
            _count_ufunc(ufunc, method, args, result, kwargs)
        if out is not None:
            for o in out:
                if isinstance(o, CountingArray) and data:
                    o._data = True
            return out[0] if len(out) == 1 else out
        return _wrap(result, data)

    def __array_function__(self, func, types, args, kwargs):
        if func not in _DATA_MOVEMENT:
            raise TypeError(f"promref.energy.measure: numpy.{func.__name__} is not instrumented; "
                            "teach CountingArray how many operations it performs")
        data = any(_is_data(x) for x in _leaves((args, kwargs)))
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)), data)


#: numpy functions that move or create data without arithmetic
_DATA_MOVEMENT = {np.pad, np.broadcast_to, np.ascontiguousarray, np.copy, np.concatenate, np.stack,
                  np.reshape, np.transpose, np.moveaxis, np.squeeze, np.expand_dims, np.shape, np.ndim,
                  np.size, np.result_type, np.copyto, np.empty_like, np.zeros_like}


def _is_data(x):
    if isinstance(x, CountingArray):
        return x._data
    return isinstance(x, np.ndarray) and x.ndim > 0


def _plain(x):
    return x.view(np.ndarray) if isinstance(x, CountingArray) else x


def _leaves(obj):
    if isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _leaves(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _leaves(item)
    else:
        yield obj


def _unwrap(obj):
    if isinstance(obj, CountingArray):
        return obj.view(np.ndarray)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(x) for x in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _wrap(result, data):
    if isinstance(result, tuple):
        return tuple(_wrap(r, data) for r in result)
    if isinstance(result, np.ndarray) and not isinstance(result, CountingArray):
        result = result.view(CountingArray)
        result._data = data
    return result


def _count_ufunc(ufunc, method, args, result, kwargs):
    name = ufunc.__name__
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    dtype = str(arrays[0].dtype) if arrays else type(args[0]).__name__
    if method == "__call__":
        n = int(np.size(result if not isinstance(result, tuple) else result[0]))
        if name == "matmul":
            k = args[0].shape[-1]
            _record(("multiply", dtype), n * k)
            _record(("add", dtype), n * max(k - 1, 0))
        else:
            _record((name, dtype), n)
    elif method == "reduce":
        if kwargs.get("where", True) is not True:
            raise TypeError("promref.energy.measure: reductions with where= are not instrumented")
        n_out = int(np.size(result))
        k = args[0].size // n_out if n_out else 0
        extra = 0 if kwargs.get("initial", np._NoValue) in (None, np._NoValue) else 1
        _record((name, dtype), n_out * max(k - 1 + extra, 0))
    else:
        raise TypeError(f"promref.energy.measure: {name}.{method} is not instrumented")


# ------------------------------------------------------------- patches


def _as_data(x):
    if isinstance(x, np.ndarray):
        x = x.view(CountingArray)
        x._data = True
    return x


def _as_weights(x):
    if isinstance(x, np.ndarray):
        x = x.view(CountingArray)
        x._data = False
    return x


def _counted_kernel(op, fn):
    n_inputs = 2 if op == "add" else 1

    @functools.wraps(fn)
    def kernel(*args):
        args = list(args)
        for i in range(n_inputs):
            args[i] = _as_data(args[i])
        layer = copy.copy(args[n_inputs])
        layer.weights = _as_weights(layer.weights)
        layer.bias = _as_weights(layer.bias)
        args[n_inputs] = layer
        tally = _ACTIVE
        previous, tally.layer = tally.layer, layer.name
        try:
            out = fn(*args)
        finally:
            tally.layer = previous
        return _plain(out)
    return kernel


def _counted_arith(key, fn, size):
    @functools.wraps(fn)
    def wrapper(*args):
        data = _is_data(args[0])
        n = size(*args)
        _ACTIVE.paused += 1
        try:
            result = fn(*[_plain(a) for a in args])
        finally:
            _ACTIVE.paused -= 1
        if data:
            _record(key, n)
        return _wrap(result, data)
    return wrapper


def _size_of_broadcast(*arrays):
    return np.broadcast(*[_plain(a) for a in arrays]).size


@contextlib.contextmanager
def counting():
    """Patch the reference kernels and arith to count; yields the tally
    (``tally.by_layer``: {layer name: Counter {(op, dtype): count}})."""
    global _ACTIVE
    if not _LOCK.acquire(blocking=False):
        raise RuntimeError("promref.energy.measure.counting() is already active (it cannot nest)")
    saved = []

    def patch(module, name, value):
        saved.append((module, name, getattr(module, name)))
        setattr(module, name, value)

    table = reference_kernels.OPS   # what the engine dispatches through
    kernels = dict(table)
    try:
        _ACTIVE = _Tally()
        for op, kernel in kernels.items():
            table[op] = _counted_kernel(op, kernel)
        patch(arith, "requantize", _counted_arith(("requantize", "int32"), arith.requantize,
                                                  lambda acc, m, s, *rest: _size_of_broadcast(acc, m, s)))
        patch(arith, "scale_by_mode", _counted_arith(("rescale", "int32"), arith.scale_by_mode,
                                                     lambda acc, m, s, *rest: _size_of_broadcast(acc, m, s)))
        patch(arith, "global_average", _counted_arith(("average", "int32"), arith.global_average,
                                                      lambda total, count: _size_of_broadcast(total)))
        yield _ACTIVE
    finally:
        table.update(kernels)
        for module, name, value in reversed(saved):
            setattr(module, name, value)
        _ACTIVE = None
        _LOCK.release()


def count_reference_ops(model, x):
    """Run the NumPy reference forward pass on int8 images ``x`` [N, H, W, 3],
    counting its operations -> (logits, {layer name: Counter {(op, dtype): n}}).

    Counts are for the whole batch (``N`` images)."""
    with counting() as tally:
        logits = run(model, x, backend="numpy")
    return logits, {name: Counter(c) for name, c in tally.by_layer.items()}


#: how raw (op, dtype) keys group into categories
CATEGORIES = {
    "multiply": "multiplications",
    "add": "additions", "subtract": "additions",
    "left_shift": "shifts", "right_shift": "shifts",
    "requantize": "requantizations", "rescale": "rescales", "average": "averages",
}


def summarize(counter):
    """Counter {(op, dtype): n} -> {category: n}: multiplications, additions
    (add and subtract), shifts, requantizations, rescales, averages, and any
    other ufunc under its own name (there should be none)."""
    out = Counter()
    for (op, _dtype), n in counter.items():
        out[CATEGORIES.get(op, op)] += n
    return dict(out)
