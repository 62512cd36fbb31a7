"""Every foreign runtime promref checks itself against, in one table.

**The runner interface.**  A backend's runner is a function

    run(model, x) -> {layer name: int8 array}

* ``model``: a validated :class:`promref.model.Model` (its ``rounding`` says
  which mode the runtime must reproduce);
* ``x``: int8 ``[N, H, W, 3]``, promref's quantized images (``pixel - 128``);
* returns promref's trace format, exactly what
  ``model.forward(x, backend="numpy", trace=True)[1]`` returns: every layer's
  int8 output keyed by layer name, feature maps ``[N, H, W, C]`` (NHWC),
  vectors ``[N, C]``.  A runtime that exposes only some tensors returns those
  (the last layer, the logits, is required).

The runner exports the model to its runtime itself and raises a
:class:`~promref.errors.PromrefError` (naming the layer and the reason) when
the model cannot be represented exactly there -- never an inexact result.

A :class:`Backend` row adds ``requires``: the Python modules the runtime
needs; :func:`unavailable` says why a backend cannot run here (the tests skip
with that reason).  Adding a runtime adds one row to :data:`BACKENDS` and its
runner in ``promref/interop/<runtime>/``; ``promref conformance check
--backend NAME`` and tests/test_backends.py pick it up from here.
"""
import importlib
from dataclasses import dataclass

from ..errors import PromrefError

@dataclass(frozen=True)
class Backend:
    """One runtime: its runner (see the module docstring) and what it needs installed."""
    name: str
    description: str
    requires: tuple
    run: object
    #: model -> the nearest model this runtime represents exactly (identity where every
    #: validated model is; TFLite's twin with float32-derived multipliers): what the
    #: property tests export, so that they test the runtime, not only its refusals
    representable: object = None

    def representable_form(self, model):
        return self.representable(model) if self.representable else model


def _run_tosa(model, x):
    from ..interop.tosa import run_tosa
    return run_tosa(model, x)


def _run_onnxruntime(model, x):
    from ..interop.onnx import export as onnx_export
    session = onnx_export.ort_session(onnx_export.build_onnx(model, every_layer=True), threads=1)
    _, outputs = onnx_export.run_onnx(session, x)
    return {layer.name: outputs[layer.name] for layer in model.layers}


def _run_litert(model, x):
    from ..interop.tflite.runners import run_litert
    return run_litert(model, x)


def _run_tflm(model, x):
    from ..interop.tflite.runners import run_tflm
    return run_tflm(model, x)


def _tflite_twin(model):
    from ..interop.tflite.scales import tflite_derived
    return tflite_derived(model)[0]


BACKENDS = {
    "tosa": Backend("tosa", "TOSA 1.0 flatbuffer in the TOSA reference model (tosa-tools)",
                    ("tosa_serializer", "tosa_reference_model"), _run_tosa),
    "onnxruntime": Backend("onnxruntime", "exact integer ONNX export in ONNX Runtime (CPU)",
                           ("onnx", "onnxruntime"), _run_onnxruntime),
    # TFLite derives multipliers from float32 scales and rounds double: a model whose integer
    # parameters TFLite cannot derive is refused (TfliteExportError), see docs/deploy-tflite.md
    "tflite": Backend("tflite", "TFLite flatbuffer in LiteRT's reference kernels (BUILTIN_REF)",
                      ("tflite", "ai_edge_litert"), _run_litert, _tflite_twin),
    "tflm": Backend("tflm", "TFLite flatbuffer in the TensorFlow Lite Micro interpreter",
                    ("tflite", "tflite_micro"), _run_tflm, _tflite_twin),
}


def get_backend(name):
    """The :class:`Backend` called ``name``, or a PromrefError listing the known ones."""
    if name not in BACKENDS:
        raise PromrefError(f"unknown backend {name!r}; expected one of {tuple(BACKENDS)}")
    return BACKENDS[name]


def unavailable(name):
    """None if backend ``name`` can run here, else the reason (a missing package)."""
    for module in get_backend(name).requires:
        try:
            importlib.import_module(module)
        except ImportError as e:
            return f"backend {name!r} needs the Python module {module!r} ({e})"
    return None


def run_backend(name, model, x):
    """Run ``model`` on int8 ``x`` in backend ``name`` -> {layer name: int8 output}."""
    reason = unavailable(name)
    if reason:
        raise PromrefError(reason)
    return get_backend(name).run(model, x)


def backend_implementation(name):
    """A conformance-checker implementation running the suite's model cases in backend ``name``.

    Op cases (single ops on arbitrary tensors) are skipped: a backend runs
    whole models; tests/test_backends.py covers single layers as one-layer
    models.
    """
    from ..format import load
    from .check import PythonImplementation

    get_backend(name)
    reason = unavailable(name)
    if reason:
        raise PromrefError(reason)

    def run_case(op, inputs, params):
        if op != "model":
            raise NotImplementedError(f"backend {name!r} runs whole models, not single {op!r} cases")
        return run_backend(name, load(params["weights"]), inputs["x"])

    return PythonImplementation(run_case, supported_ops={"model"}, name=f"backend {name}")
