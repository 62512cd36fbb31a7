"""Run a promref model in LiteRT or TensorFlow Lite Micro -> promref's trace format.

A runner takes a promref :class:`~promref.Model` (rounding "double", integers
TFLite can derive: see :mod:`.scales`) and an int8 input batch
``x`` [N, H, W, 3] (``pixel - 128``), exports the model with
:func:`.exporter.build_tflite`, runs it, and returns ``{layer name: int8
array}`` with the shapes of ``model.forward(x, trace=True)[1]``: maps
[N, H, W, C], vectors [N, C].

* :func:`run_litert`: LiteRT (``ai-edge-litert``) with
  ``OpResolverType.BUILTIN_REF`` (TFLite's reference kernels, no XNNPACK) and
  ``experimental_preserve_all_tensors``, the whole batch in one invoke (the
  input is resized to N).  ``resolver="default"`` runs LiteRT's default
  optimized kernels (XNNPACK) instead, for measuring how they differ.
* :func:`run_tflm`: the TFLite Micro interpreter (``tflite-micro``) with
  ``InterpreterConfig.kPreserveAllTensors``, one image per invoke (TFLM has
  static shapes).
"""
import numpy as np

from ...errors import PromrefError
from .exporter import build_tflite

__all__ = ["run_litert", "run_tflm", "litert_from_bytes", "tflm_from_bytes", "trace_shapes"]


def trace_shapes(model, n):
    """{layer name: shape of its int8 output for a batch of n}."""
    from ...model import tensor_shapes
    return {name: (n, *shape) for name, shape in tensor_shapes(model).items() if name != "input"}


def _check_batch(model, x):
    spec = model.input
    if not (isinstance(x, np.ndarray) and x.dtype == np.int8 and x.ndim == 4
            and x.shape[1:] == (spec.height, spec.width, 3) and x.shape[0] >= 1):
        raise PromrefError(f"runner input must be int8 [N, {spec.height}, {spec.width}, 3]")
    return np.ascontiguousarray(x)


def litert_from_bytes(data, resolver="reference", preserve=True):
    """A LiteRT interpreter on .tflite bytes: reference kernels (BUILTIN_REF) or the default ones."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kind = OpResolverType.BUILTIN_REF if resolver == "reference" else OpResolverType.AUTO
    return Interpreter(model_content=bytes(data), experimental_op_resolver_type=kind,
                       experimental_preserve_all_tensors=preserve)


def run_litert(model, x, resolver="reference", export=None):
    """int8 [N, H, W, 3] -> {layer name: int8 output} computed by LiteRT."""
    x = _check_batch(model, x)
    export = export or build_tflite(model)
    interpreter = litert_from_bytes(export.data, resolver)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    shapes = trace_shapes(model, len(x))
    return {name: interpreter.get_tensor(t).reshape(shapes[name]).copy() for name, t in export.tensors.items()}


def tflm_from_bytes(data):
    """A TFLite Micro interpreter on .tflite bytes that keeps every tensor readable."""
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(bytes(data), arena_size=max(64 << 20, 40 * len(data)),
                                          intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)


def run_tflm(model, x, export=None):
    """int8 [N, H, W, 3] -> {layer name: int8 output} computed by TFLite Micro, image by image."""
    x = _check_batch(model, x)
    export = export or build_tflite(model)
    interpreter = tflm_from_bytes(export.data)
    shapes = trace_shapes(model, len(x))
    out = {name: np.empty(shape, np.int8) for name, shape in shapes.items()}
    for n in range(len(x)):
        interpreter.set_input(x[n:n + 1], 0)
        interpreter.invoke()
        for name, t in export.tensors.items():
            out[name][n] = np.asarray(interpreter.GetTensor(t, 0)["tensor_data"]).reshape(shapes[name][1:])
        interpreter.reset()
    return out
