"""TFLite (LiteRT) and TensorFlow Lite Micro: read their int8 models, write promref's, run both.

* :func:`import_tflite` (``importer``, ``import_ops``, ``reader``): a quantized
  TFLite MobileNetV2 -> a promref :class:`~promref.Model` that reproduces
  LiteRT's reference kernels bit for bit.
* :func:`export_tflite` (``exporter``, ``export_ops``, ``scales``, ``writer``):
  a promref model in rounding mode "double" -> a ``.tflite`` file whose float32
  scales make TFLite derive exactly the model's integers, or a clear
  :class:`TfliteExportError`; :func:`tflite_derived` gives the explicit
  "TFLite-derived" twin of any model.
* ``runners``: run a promref model in LiteRT (``OpResolverType.BUILTIN_REF``)
  or in the TFLite Micro interpreter and return promref's trace format.
* ``prepare``: TFLite's Prepare-time arithmetic, shared by both directions.

Optional packages: ``tflite`` (the schema's generated accessors and builders),
``ai-edge-litert``, ``tflite-micro``; each imported only where used.
"""
from .exporter import build_tflite, export_tflite
from .importer import import_tflite
from .prepare import TfliteImportError
from .scales import TfliteExportError, tflite_derived

__all__ = ["import_tflite", "TfliteImportError", "export_tflite", "build_tflite", "TfliteExportError",
           "tflite_derived"]
